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
//!
//! Each reply comes with the memory reserved for it ([`super::memory`]), given back once the
//! channel has taken the reply. Replies are handed to russh at most [`HANDOFF`] bytes at a
//! time, so what russh queues per connection (a bounded number of messages) stays bounded in
//! bytes whatever packet size the client announced.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use bytes::{Bytes, BytesMut};
use russh::ChannelWriteHalf;
use russh::server::Msg;
use tokio::sync::Notify;
use wharf_access::Reservation;

use super::codec::{DATA_HEADER_LEN, put_data_header};

/// Bytes of replies gathered before they are handed to the channel, at most.
const GATHER_LIMIT: usize = 512 * 1024;

/// Payloads at least this large are passed on as they are; smaller ones are copied into the
/// gathering buffer (a separate SSH packet for a few bytes would cost more than the copy).
const ZERO_COPY_MIN: usize = 64 * 1024;

/// Initial room of the gathering buffer: statuses, handles, headers, directory listings.
const GATHER_BUFFER: usize = 16 * 1024;

/// Most bytes handed to russh in one message: the SSH packet size OpenSSH's client and
/// libssh2 announce, so for them nothing changes, and a client announcing huge packets
/// cannot make one queued message hold a whole batch of replies.
pub(crate) const HANDOFF: usize = 32 * 1024;

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
    pub(crate) fn wire_len(&self) -> usize {
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
    /// The memory reserved for the replies gathered.
    memory: Vec<Reservation>,
}

impl Gathered {
    fn push(&mut self, (reply, memory): (Reply, Reservation)) {
        self.memory.push(memory);
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

    /// Everything gathered, in order, and the memory reserved for it.
    fn into_parts(mut self) -> (Vec<Bytes>, Vec<Reservation>) {
        if !self.small.is_empty() {
            self.parts.push(self.small.freeze());
        }
        (self.parts, self.memory)
    }
}

#[derive(Debug, Default)]
struct Backlog {
    /// Bytes handed to the writer and not yet accepted by the channel.
    bytes: AtomicUsize,
    /// Signalled whenever the writer made progress.
    progressed: Notify,
}

/// Replies between the request loop and the writer.
///
/// Both ends run in one task (see [`super::serve`]), polled request loop first and writer
/// second, so the writer sees every reply queued during a poll without being woken. A wake
/// would cost more than it looks: tokio treats a task that wakes itself as yielding and hands
/// it to the other worker thread, so every request would bounce the session between threads.
/// Only the end of the queue wakes the writer, which by then may be polled on its own.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    replies: VecDeque<(Reply, Reservation)>,
    /// The request loop is done: nothing more will be queued.
    closed: bool,
    /// The writer stopped (the channel closed): nothing more can be sent.
    writer_gone: bool,
    /// The writer, to wake when the queue is closed.
    writer: Option<Waker>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Nothing panics while holding the lock; a poisoned lock still holds valid replies.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The request loop's end: queues replies without waiting.
#[derive(Debug)]
pub(crate) struct Replies {
    queue: Arc<Queue>,
    backlog: Arc<Backlog>,
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct ReplyWriter {
    queue: Arc<Queue>,
    backlog: Arc<Backlog>,
}

/// The channel is gone; nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SFTP channel is closed")]
pub(crate) struct ChannelClosed;

/// A connected pair.
pub(crate) fn reply_queue() -> (Replies, ReplyWriter) {
    let queue = Arc::new(Queue::default());
    let backlog = Arc::new(Backlog::default());
    let replies = Replies { queue: queue.clone(), backlog: backlog.clone() };
    (replies, ReplyWriter { queue, backlog })
}

impl Replies {
    /// Queues a reply, with the memory reserved for it (kept until the channel has it).
    pub(crate) fn send(&self, reply: Reply, memory: Reservation) -> Result<(), ChannelClosed> {
        let mut state = self.queue.lock();
        if state.writer_gone {
            return Err(ChannelClosed);
        }
        self.backlog.bytes.fetch_add(reply.wire_len(), Ordering::Relaxed);
        state.replies.push_back((reply, memory));
        Ok(())
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

impl Drop for Replies {
    fn drop(&mut self) {
        let writer = {
            let mut state = self.queue.lock();
            state.closed = true;
            state.writer.take()
        };
        if let Some(writer) = writer {
            writer.wake();
        }
    }
}

impl Drop for ReplyWriter {
    fn drop(&mut self) {
        self.queue.lock().writer_gone = true;
    }
}

impl ReplyWriter {
    /// The replies queued so far, up to [`GATHER_LIMIT`] bytes of them; `None` once the request
    /// loop is done and everything is taken.
    fn next_batch(&self) -> impl Future<Output = Option<Gathered>> + '_ {
        std::future::poll_fn(|cx| {
            let mut state = self.queue.lock();
            let Some(first) = state.replies.pop_front() else {
                if state.closed {
                    return Poll::Ready(None);
                }
                state.writer = Some(cx.waker().clone());
                return Poll::Pending;
            };
            let mut gathered = Gathered::default();
            gathered.push(first);
            while gathered.len < GATHER_LIMIT {
                match state.replies.pop_front() {
                    Some(reply) => gathered.push(reply),
                    None => break,
                }
            }
            Poll::Ready(Some(gathered))
        })
    }

    /// Sends replies until the request loop is done (its [`Replies`] dropped) and everything
    /// queued is sent, or the channel closes.
    pub(crate) async fn run(self, channel: &ChannelWriteHalf<Msg>) -> Result<(), ChannelClosed> {
        while let Some(gathered) = self.next_batch().await {
            let (parts, memory) = gathered.into_parts();
            let mut memory = Some(memory);
            let count = parts.len();
            for (index, part) in parts.into_iter().enumerate() {
                let len = part.len();
                let sent = hand_off(channel, part).await;
                self.backlog.bytes.fetch_sub(len, Ordering::Relaxed);
                if index + 1 == count {
                    // Given back before the loop hears of the progress, so that it finds the
                    // memory free when it looks.
                    drop(memory.take());
                }
                self.backlog.progressed.notify_one();
                if sent.is_err() {
                    return Err(ChannelClosed);
                }
            }
        }
        Ok(())
    }
}

/// Hands `part` to the channel in messages of at most [`HANDOFF`] bytes.
async fn hand_off(channel: &ChannelWriteHalf<Msg>, mut part: Bytes) -> Result<(), russh::Error> {
    while !part.is_empty() {
        let piece = part.split_to(part.len().min(HANDOFF));
        channel.data_bytes(piece).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use wharf_access::SessionBudget;

    use super::*;

    /// Memory that costs nothing, for replies in tests.
    fn free() -> Reservation {
        SessionBudget::fixed(0).empty()
    }

    #[test]
    fn backlog_counts_wire_bytes() {
        let (replies, _writer) = reply_queue();
        replies.send(Reply::Packet(Bytes::from_static(&[0; 28])), free()).expect("open");
        replies
            .send(
                Reply::Data {
                    id: 1,
                    head: Bytes::from_static(&[1; 100]),
                    tail: Bytes::from_static(&[2; 20]),
                },
                free(),
            )
            .expect("open");
        assert_eq!(replies.backlog(), 28 + DATA_HEADER_LEN + 120);
    }

    fn wire(gathered: Gathered) -> (Vec<usize>, Vec<u8>) {
        let (parts, _memory) = gathered.into_parts();
        let sizes = parts.iter().map(Bytes::len).collect();
        (sizes, parts.concat())
    }

    #[test]
    fn small_replies_share_one_buffer() {
        let mut gathered = Gathered::default();
        gathered.push((Reply::Packet(Bytes::from_static(b"status")), free()));
        gathered.push((
            Reply::Data { id: 3, head: Bytes::from_static(b"ab"), tail: Bytes::from_static(b"cd") },
            free(),
        ));
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
        gathered.push((Reply::Packet(Bytes::from_static(b"ok")), free()));
        gathered.push((
            Reply::Data { id: 1, head: big.clone(), tail: Bytes::from_static(b"z") },
            free(),
        ));
        gathered.push((Reply::Packet(Bytes::from_static(b"end")), free()));
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
