//! The reply side of an SFTP session: replies from the request loop are gathered into large
//! channel writes.
//!
//! A 32 KiB `SSH_FXP_DATA` reply is 13 bytes longer than the client's 32 KiB SSH packets, so
//! sent on its own it would take two SSH packets, the second nearly empty. Gathering whatever
//! replies are ready into one buffer fills every SSH packet and hands russh a few large writes
//! instead of many small ones. Replies are never held back waiting for more: whatever is ready
//! when the channel can take it goes out at once.
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

/// Replies gathered into one channel write, at most (eight 32 KiB SSH packets).
const GATHER_LIMIT: usize = 256 * 1024;

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

    fn encode_into(self, out: &mut BytesMut) {
        match self {
            Reply::Packet(bytes) => out.extend_from_slice(&bytes),
            Reply::Data { id, head, tail } => {
                put_data_header(out, id, head.len() + tail.len());
                out.extend_from_slice(&head);
                out.extend_from_slice(&tail);
            }
        }
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
            let mut gathered = BytesMut::with_capacity(first.wire_len().min(GATHER_LIMIT));
            first.encode_into(&mut gathered);
            while gathered.len() < GATHER_LIMIT {
                match self.queue.try_recv() {
                    Ok(reply) => reply.encode_into(&mut gathered),
                    Err(_) => break,
                }
            }
            let len = gathered.len();
            let sent = channel.data_bytes(gathered.freeze()).await;
            self.backlog.bytes.fetch_sub(len, Ordering::Relaxed);
            self.backlog.progressed.notify_one();
            if sent.is_err() {
                return Err(ChannelClosed);
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

    #[test]
    fn data_replies_are_header_then_both_parts() {
        let mut out = BytesMut::new();
        Reply::Data { id: 3, head: Bytes::from_static(b"ab"), tail: Bytes::from_static(b"cd") }
            .encode_into(&mut out);
        assert_eq!(&out[..], &[0, 0, 0, 13, 103, 0, 0, 0, 3, 0, 0, 0, 4, b'a', b'b', b'c', b'd']);
    }
}
