//! The request loop of one SFTP session: reads requests from the channel and answers them,
//! serving reads concurrently.
//!
//! OpenSSH's client keeps up to 64 requests in flight; answering them one at a time (as
//! russh-sftp's own loop does) makes every read wait for the one before it. Here:
//!
//! - requests are taken in the order they arrive; everything but a read is carried out before
//!   the next request is taken, so writes to a handle (and any other change) stay in order;
//! - a read only *starts* in order: it is served from read-ahead blocks and completes whenever
//!   its blocks are there, while the loop goes on with the next requests;
//! - replies go to the reply writer ([`super::output`]) without waiting for it.
//!
//! Work in progress is bounded: reads in flight ([`MAX_READS_IN_FLIGHT`]) and the bytes they
//! and unsent replies hold ([`DATA_BUDGET`]); while a bound is reached no new request is
//! started. Before a request is taken, the memory of its largest reply is reserved
//! ([`super::memory`]: the channel's floor, then the connection's budget) and travels with the
//! reply until the channel has it; a request that finds neither waits, in the loop, for the
//! channel's own replies to go out. The channel is still read meanwhile (up to
//! [`INPUT_LIMIT`] unprocessed bytes), because russh's connection task waits while a
//! channel's queue is full, and with it every reply. A client that stops reading replies
//! altogether is dropped after the idle timeout.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use russh::{ChannelMsg, ChannelReadHalf};
use russh_sftp::protocol::StatusCode;
use tokio::time::Instant;
use wharf_access::{Offense, Reservation, Shutdown};

use super::codec::{
    DATA_HEADER_LEN, FXP_INIT, FXP_READ, FrameDecoder, FrameError, MAX_PACKET_LEN, decode_request,
    is_request_type, request_id, status,
};
use super::extensions::version;
use super::memory::Allowance;
use super::read_ahead::MAX_READ_LEN;

use super::ops::{Answer, Operations};
use super::output::{ChannelClosed, Replies, Reply};

/// Reads being served at once, at most.
const MAX_READS_IN_FLIGHT: usize = 128;

/// Bytes that reads in flight may return plus replies not yet sent, at most, before the loop
/// waits for the client to catch up.
const DATA_BUDGET: usize = 4 * 1024 * 1024;

/// Received bytes not yet taken as requests, at most, before the loop stops reading the
/// channel (which makes russh stop reading the connection): room for a whole packet of the
/// largest size and the start of the next.
const INPUT_LIMIT: usize = 2 * MAX_PACKET_LEN;

/// Memory reserved for the reply to a read, beyond its data: enough for the status that
/// answers it instead when there is nothing to read or storage failed.
const READ_STATUS_ROOM: usize = 1024;

/// The most memory the reply to `frame` can take: for a read, the data it asks for (or a
/// status); for anything else, a whole packet (reserved before it is carried out, given back
/// down to the reply's size as soon as that is known).
fn reply_bound(frame: &[u8]) -> usize {
    if frame.first() != Some(&FXP_READ) {
        return MAX_PACKET_LEN;
    }
    // A read ends with the length it asks for; a malformed one is answered with a status.
    let asked = frame.last_chunk::<4>().map_or(0, |len| u32::from_be_bytes(*len).min(MAX_READ_LEN));
    (DATA_HEADER_LEN + asked as usize).max(READ_STATUS_ROOM)
}

/// Requests received and not yet taken; each is taken only once the memory of its reply is
/// reserved.
struct Intake {
    frames: FrameDecoder,
    /// A request waiting for memory for its reply.
    unpaid: Option<Bytes>,
    /// What the replies' memory is paid from.
    memory: Allowance,
}

impl Intake {
    fn new(memory: Allowance) -> Self {
        Intake { frames: FrameDecoder::default(), unpaid: None, memory }
    }

    /// The next request with the memory reserved for its reply; `None` when no whole request
    /// has arrived, or when the next one's reply cannot be paid for yet.
    fn next(&mut self) -> Result<Option<(Bytes, Reservation)>, FrameError> {
        let frame = match self.unpaid.take() {
            Some(frame) => frame,
            None => match self.frames.next_frame()? {
                Some(frame) => frame,
                None => return Ok(None),
            },
        };
        match self.memory.try_reserve(reply_bound(&frame)) {
            Some(memory) => Ok(Some((frame, memory))),
            None => {
                self.unpaid = Some(frame);
                Ok(None)
            }
        }
    }

    /// Whether a request is waiting for memory.
    fn is_waiting(&self) -> bool {
        self.unpaid.is_some()
    }

    /// Whether nothing is left to take.
    fn is_empty(&self) -> bool {
        self.unpaid.is_none() && !self.frames.has_frame()
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionEnd {
    /// The client closed the channel (or the connection).
    #[error("the client ended the session")]
    ClientDone,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Shutdown,
    /// The client broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The client stopped reading replies.
    #[error("the client stopped reading replies for {0:?}")]
    Stalled(Duration),
    /// The reply channel is gone.
    #[error(transparent)]
    Closed(#[from] ChannelClosed),
}

impl From<FrameError> for SessionEnd {
    fn from(err: FrameError) -> Self {
        SessionEnd::Protocol(err.to_string())
    }
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for `SSH_FXP_INIT`.
    AwaitingInit,
    /// Serving requests.
    Serving,
    /// Serving until no file is open any more (the server is draining).
    Draining,
}

/// One SFTP session's request loop.
pub(crate) struct RequestLoop {
    ops: Operations,
    replies: Replies,
    shutdown: Shutdown,
    idle_timeout: Duration,
    stage: Stage,
    intake: Intake,
    reads: FuturesUnordered<BoxFuture<'static, (Reply, usize, Reservation)>>,
    /// Bytes the reads in flight may return.
    reserved: usize,
}

impl RequestLoop {
    pub(crate) fn new(
        ops: Operations,
        replies: Replies,
        memory: Allowance,
        shutdown: Shutdown,
        idle_timeout: Duration,
    ) -> Self {
        RequestLoop {
            ops,
            replies,
            shutdown,
            idle_timeout,
            stage: Stage::AwaitingInit,
            intake: Intake::new(memory),
            reads: FuturesUnordered::new(),
            reserved: 0,
        }
    }

    /// Whether another request may be started now.
    fn has_room(&self) -> bool {
        self.reads.len() < MAX_READS_IN_FLIGHT
            && self.reserved + self.replies.backlog() < DATA_BUDGET
    }

    /// Serves the session until it ends; returns why.
    pub(crate) async fn run(mut self, mut channel: ChannelReadHalf) -> SessionEnd {
        let end = self.serve(&mut channel).await;
        // Whatever was open is abandoned: uploads are not published, downloads are aborted.
        self.ops.abandon_all();
        end
    }

    async fn serve(&mut self, channel: &mut ChannelReadHalf) -> SessionEnd {
        let mut input_open = true;
        // Since when the loop has been waiting for the client to take replies.
        let mut stalled_since: Option<Instant> = None;
        loop {
            while self.has_room() {
                let (frame, memory) = match self.intake.next() {
                    Ok(Some(next)) => next,
                    // Nothing more for now (or its reply waits for this channel's replies
                    // to go out, which frees memory).
                    Ok(None) => break,
                    Err(err) => return err.into(),
                };
                if let Err(end) = self.take(frame, memory).await {
                    return end;
                }
            }
            if !input_open && self.reads.is_empty() && self.intake.is_empty() {
                // The client sent its last request and every one is answered.
                return SessionEnd::ClientDone;
            }
            if self.stage == Stage::Draining && !self.ops.has_open_files() {
                return SessionEnd::Shutdown;
            }
            // Nothing more is taken until the client takes replies. (A request waiting for
            // memory with nothing of this channel's in flight or queued cannot be: the
            // channel's floor, all free then, holds any reply.)
            let blocked = !self.has_room() || self.intake.is_waiting();
            let waiting_for_client = blocked && self.replies.backlog() > 0;
            match (waiting_for_client, stalled_since) {
                (true, None) => stalled_since = Some(Instant::now()),
                (false, Some(_)) => stalled_since = None,
                _ => {}
            }
            let stall_deadline = stalled_since.map(|since| since + self.idle_timeout);
            tokio::select! {
                biased;
                () = self.shutdown.terminated() => return SessionEnd::Shutdown,
                () = self.shutdown.draining(), if self.stage == Stage::Serving => {
                    self.stage = Stage::Draining;
                }
                Some((reply, reserved, memory)) = self.reads.next(), if !self.reads.is_empty() => {
                    self.reserved -= reserved;
                    if let Err(closed) = self.send(reply, memory) {
                        return closed.into();
                    }
                }
                () = self.replies.progressed(), if waiting_for_client => {
                    stalled_since = None;
                }
                () = tokio::time::sleep_until(stall_deadline.unwrap_or_else(Instant::now)),
                    if stall_deadline.is_some() => {
                    return SessionEnd::Stalled(self.idle_timeout);
                }
                message = channel.wait(), if input_open && self.intake.frames.buffered() < INPUT_LIMIT => {
                    match message {
                        Some(ChannelMsg::Data { data }) => self.intake.frames.push(&data),
                        Some(ChannelMsg::Eof | ChannelMsg::Close) | None => input_open = false,
                        // Window adjustments and requests already answered by the handler.
                        Some(_) => {}
                    }
                }
            }
        }
    }

    /// Queues `reply` with its memory, given back down to the reply's size.
    fn send(&self, reply: Reply, mut memory: Reservation) -> Result<(), ChannelClosed> {
        let len = reply.wire_len();
        if !memory.try_resize(len) {
            // `reply_bound` holds every reply this crate makes; this would be a bug, and the
            // reply goes out anyway rather than leave the client waiting.
            tracing::warn!(len, reserved = memory.bytes(), "an SFTP reply outgrew its reservation");
        }
        self.replies.send(reply, memory)
    }

    /// Takes one request, whose reply's `memory` is reserved: answers it, or starts it when
    /// it is a read.
    async fn take(&mut self, frame: Bytes, memory: Reservation) -> Result<(), SessionEnd> {
        if self.stage == Stage::AwaitingInit {
            if frame.first() != Some(&FXP_INIT) {
                return Err(SessionEnd::Protocol("the first request must be SSH_FXP_INIT".into()));
            }
            self.stage = Stage::Serving;
            if self.shutdown.is_draining() {
                self.stage = Stage::Draining;
            }
            return Ok(self.send(Reply::Packet(version()), memory)?);
        }
        let id = request_id(&frame);
        let known = frame.first().is_some_and(|&kind| is_request_type(kind));
        let request = match decode_request(frame) {
            Ok(request) => request,
            Err(err) => {
                // A request of a known type that does not decode is malformed; an unknown
                // type is only a client trying an extension.
                if known || id.is_none() {
                    self.ops.report(Offense::ProtocolError);
                }
                let Some(id) = id else { return Err(SessionEnd::Protocol(err.to_string())) };
                // Version 3 answers requests it does not know with OP_UNSUPPORTED.
                let code = if known { StatusCode::BadMessage } else { StatusCode::OpUnsupported };
                return Ok(self.send(Reply::Packet(status(id, code, &err.to_string())), memory)?);
            }
        };
        match self.ops.answer(request).await {
            Answer::Now(reply) => self.send(reply, memory)?,
            Answer::Later { reply, reserved } => {
                self.reserved += reserved;
                self.reads.push(Box::pin(async move { (reply.await, reserved, memory) }));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::memory::{ConnectionMemory, test_budget};
    use super::*;

    fn read_request(len: u32) -> Vec<u8> {
        let mut frame = vec![FXP_READ];
        frame.extend_from_slice(&7u32.to_be_bytes()); // id
        frame.extend_from_slice(&1u32.to_be_bytes()); // handle "1"
        frame.push(b'1');
        frame.extend_from_slice(&0u64.to_be_bytes()); // offset
        frame.extend_from_slice(&len.to_be_bytes());
        frame
    }

    #[test]
    fn a_read_reserves_what_it_asks_for_and_anything_else_a_packet() {
        assert_eq!(reply_bound(&read_request(1)), READ_STATUS_ROOM);
        assert_eq!(reply_bound(&read_request(32 * 1024)), DATA_HEADER_LEN + 32 * 1024);
        let largest = DATA_HEADER_LEN + MAX_READ_LEN as usize;
        assert_eq!(reply_bound(&read_request(u32::MAX)), largest, "capped like the read");
        assert_eq!(reply_bound(&[FXP_READ]), READ_STATUS_ROOM, "malformed: a status");
        assert_eq!(reply_bound(&[FXP_INIT, 0, 0, 0, 3]), MAX_PACKET_LEN);
        assert!(largest <= MAX_PACKET_LEN && READ_STATUS_ROOM <= MAX_PACKET_LEN);
    }

    #[test]
    fn a_request_is_taken_only_once_its_reply_is_paid_for() {
        let budget = test_budget(1024 * 1024);
        // Other channels of the connection hold the whole budget: only the floor is left.
        let _hog = budget.try_reserve(1024 * 1024).expect("all of it");
        let mut intake = Intake::new(ConnectionMemory::new(budget.clone()).replies());
        for _ in 0..3 {
            intake.frames.push(&framed(&read_request(MAX_READ_LEN)));
        }
        let (_, first) = intake.next().expect("frame").expect("paid by the floor");
        let (_, second) = intake.next().expect("frame").expect("the floor holds two");
        assert!(intake.next().expect("frame").is_none(), "the third waits");
        assert!(intake.is_waiting() && !intake.is_empty());
        assert!(intake.next().expect("frame").is_none(), "still waiting");
        drop(first);
        let (third, _) = intake.next().expect("frame").expect("paid once a reply has gone");
        assert_eq!(third.first(), Some(&FXP_READ));
        assert!(intake.is_empty());
        drop(second);
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut packet = (body.len() as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(body);
        packet
    }
}
