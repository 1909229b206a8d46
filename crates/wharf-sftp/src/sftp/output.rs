//! The reply side of an SFTP session: replies from the request loop are gathered into large
//! channel writes.
//!
//! A 32 KiB `SSH_FXP_DATA` reply is 13 bytes longer than the client's 32 KiB SSH packets, so
//! sent on its own it would take two SSH packets, the second nearly empty. Small replies and
//! headers are therefore copied into one buffer that fills every SSH packet, while large read
//! payloads (OpenSSH reads 255 KiB at a time) go to russh as they are, slices of the
//! read-ahead blocks, without another copy. Replies are never held back waiting for more:
//! whatever is ready when the channel can take it goes out at once.
//!
//! The request loop never waits for this side (a stalled client must not stop it from reading
//! the channel, or russh's session would stall with it); it watches [`Replies::backlog`]
//! instead and stops starting new reads while too much is queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use russh::ChannelWriteHalf;
use russh::server::Msg;
use tokio::sync::{Notify, mpsc};

use super::codec::{DATA_HEADER_LEN, put_data_header};

/// Bytes of replies gathered before they are handed to the channel, at most.
const GATHER_LIMIT: usize = 512 * 1024;

/// Payloads at least this large are passed on as they are; smaller ones are copied into the
/// gathering buffer (a separate SSH packet for a few bytes would cost more than the copy).
const ZERO_COPY_MIN: usize = 64 * 1024;

/// Initial room of the gathering buffer: statuses, handles, headers, directory listings.
const GATHER_BUFFER: usize = 16 * 1024;

/// One reply.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A complete encoded packet, length included.
    Packet(Bytes),
    /// `SSH_FXP_DATA` for request `id`: `head` followed by `tail` (a read may straddle two
    /// read-ahead blocks; `tail` is empty otherwise).
    Data {
        /// Request id.
        id: u32,
        /// First part of the payload.
        head: Bytes,
        /// Rest of the payload.
        tail: Bytes,
    },
}

impl Reply {
    /// Bytes this reply takes on the wire.
    fn wire_len(&self) -> usize {
        match self {
            Reply::Packet(bytes) => bytes.len(),
            Reply::Data { head, tail, .. } => DATA_HEADER_LEN + head.len() + tail.len(),
        }
    }
}

/// Replies laid out for the channel: copied small parts and shared large payloads, in order.
#[derive(Debug, Default)]
struct Gathered {
    /// Parts ready to send, in order.
    parts: Vec<Bytes>,
    /// Small parts being gathered, to go after `parts`.
    small: BytesMut,
    /// Bytes gathered in all.
    len: usize,
}

impl Gathered {
    fn push(&mut self, reply: Reply) {
        self.len += reply.wire_len();
        match reply {
            Reply::Packet(bytes) => self.push_small(&bytes),
            Reply::Data { id, head, tail } => {
                if self.small.capacity() == 0 {
                    self.small.reserve(GATHER_BUFFER);
                }
                put_data_header(&mut self.small, id, head.len() + tail.len());
                self.push_payload(head);
                self.push_payload(tail);
            }
        }
    }

    fn push_small(&mut self, bytes: &[u8]) {
        if self.small.capacity() == 0 {
            self.small.reserve(GATHER_BUFFER.max(bytes.len()));
        }
        self.small.extend_from_slice(bytes);
    }

    fn push_payload(&mut self, payload: Bytes) {
        if payload.len() < ZERO_COPY_MIN {
            self.push_small(&payload);
            return;
        }
        if !self.small.is_empty() {
            self.parts.push(self.small.split().freeze());
        }
        self.parts.push(payload);
    }

    /// Everything gathered, in order.
    fn into_parts(mut self) -> Vec<Bytes> {
        if !self.small.is_empty() {
            self.parts.push(self.small.freeze());
        }
        self.parts
    }
}

#[derive(Debug, Default)]
struct Backlog {
    /// Bytes handed to the writer and not yet accepted by the channel.
    bytes: AtomicUsize,
    /// Signalled whenever the writer made progress.
    progressed: Notify,
}

/// The request loop's end: queues replies without waiting.
#[derive(Debug)]
pub(crate) struct Replies {
    queue: mpsc::UnboundedSender<Reply>,
    backlog: Arc<Backlog>,
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct ReplyWriter {
    queue: mpsc::UnboundedReceiver<Reply>,
    backlog: Arc<Backlog>,
}

/// The channel is gone; nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SFTP channel is closed")]
pub(crate) struct ChannelClosed;

/// A connected pair.
pub(crate) fn reply_queue() -> (Replies, ReplyWriter) {
    let (queue, receiver) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog::default());
    (Replies { queue, backlog: backlog.clone() }, ReplyWriter { queue: receiver, backlog })
}

impl Replies {
    /// Queues a reply.
    pub(crate) fn send(&self, reply: Reply) -> Result<(), ChannelClosed> {
        self.backlog.bytes.fetch_add(reply.wire_len(), Ordering::Relaxed);
        self.queue.send(reply).map_err(|_| ChannelClosed)
    }

    /// Queues an encoded packet.
    pub(crate) fn packet(&self, packet: Bytes) -> Result<(), ChannelClosed> {
        self.send(Reply::Packet(packet))
    }

    /// Bytes queued and not yet taken by the channel.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.bytes.load(Ordering::Relaxed)
    }

    /// Resolves when the writer has made progress since the last call.
    pub(crate) async fn progressed(&self) {
        self.backlog.progressed.notified().await
    }
}

impl ReplyWriter {
    /// Sends replies until the request loop is done (its [`Replies`] dropped) and everything
    /// queued is sent, or the channel closes.
    pub(crate) async fn run(
        mut self,
        channel: &ChannelWriteHalf<Msg>,
    ) -> Result<(), ChannelClosed> {
        while let Some(first) = self.queue.recv().await {
            let mut gathered = Gathered::default();
            gathered.push(first);
            while gathered.len < GATHER_LIMIT {
                match self.queue.try_recv() {
                    Ok(reply) => gathered.push(reply),
                    Err(_) => break,
                }
            }
            for part in gathered.into_parts() {
                let len = part.len();
                let sent = channel.data_bytes(part).await;
                self.backlog.bytes.fetch_sub(len, Ordering::Relaxed);
                self.backlog.progressed.notify_one();
                if sent.is_err() {
                    return Err(ChannelClosed);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_counts_wire_bytes() {
        let (replies, _writer) = reply_queue();
        replies.packet(Bytes::from_static(&[0; 28])).expect("open");
        replies
            .send(Reply::Data {
                id: 1,
                head: Bytes::from_static(&[1; 100]),
                tail: Bytes::from_static(&[2; 20]),
            })
            .expect("open");
        assert_eq!(replies.backlog(), 28 + DATA_HEADER_LEN + 120);
    }

    fn wire(gathered: Gathered) -> (Vec<usize>, Vec<u8>) {
        let parts = gathered.into_parts();
        let sizes = parts.iter().map(Bytes::len).collect();
        (sizes, parts.concat())
    }

    #[test]
    fn small_replies_share_one_buffer() {
        let mut gathered = Gathered::default();
        gathered.push(Reply::Packet(Bytes::from_static(b"status")));
        gathered.push(Reply::Data {
            id: 3,
            head: Bytes::from_static(b"ab"),
            tail: Bytes::from_static(b"cd"),
        });
        let (sizes, bytes) = wire(gathered);
        assert_eq!(sizes, [6 + DATA_HEADER_LEN + 4]);
        assert_eq!(
            &bytes[6..],
            &[0, 0, 0, 13, 103, 0, 0, 0, 3, 0, 0, 0, 4, b'a', b'b', b'c', b'd']
        );
    }

    #[test]
    fn large_payloads_are_passed_on_in_order() {
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        let mut gathered = Gathered::default();
        gathered.push(Reply::Packet(Bytes::from_static(b"ok")));
        gathered.push(Reply::Data { id: 1, head: big.clone(), tail: Bytes::from_static(b"z") });
        gathered.push(Reply::Packet(Bytes::from_static(b"end")));
        assert_eq!(gathered.len, 2 + DATA_HEADER_LEN + ZERO_COPY_MIN + 1 + 3);
        let (sizes, bytes) = wire(gathered);
        assert_eq!(sizes, [2 + DATA_HEADER_LEN, ZERO_COPY_MIN, 1 + 3]);
        let mut expected = b"ok".to_vec();
        expected.extend_from_slice(&[0, 1, 0, 10, 103, 0, 0, 0, 1, 0, 1, 0, 1]);
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"zend");
        assert_eq!(bytes, expected);
    }
}
