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
//! started. The channel is still read meanwhile (up to [`INPUT_LIMIT`] unprocessed bytes),
//! because russh's connection task waits while a channel's queue is full, and with it every
//! reply. A client that stops reading replies altogether is dropped after the idle timeout.

use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use russh::{ChannelMsg, ChannelReadHalf};
use russh_sftp::protocol::StatusCode;
use tokio::time::Instant;
use wharf_access::{Offense, Shutdown};

use super::codec::{
    FXP_INIT, FrameDecoder, FrameError, MAX_PACKET_LEN, decode_request, is_request_type,
    request_id, status,
};
use super::extensions::version;

use super::ops::{Answer, Operations};
use super::output::{ChannelClosed, Replies, Reply};

/// Reads being served at once, at most.
const MAX_READS_IN_FLIGHT: usize = 128;

/// Bytes that reads in flight may return plus replies not yet sent, at most, before the loop
/// waits for the client to catch up.
const DATA_BUDGET: usize = 4 * 1024 * 1024;

/// Received bytes not yet taken as requests, at most, before the loop stops reading the
/// channel (which makes russh stop reading the connection).
const INPUT_LIMIT: usize = 4 * MAX_PACKET_LEN;

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
    frames: FrameDecoder,
    reads: FuturesUnordered<BoxFuture<'static, (Reply, usize)>>,
    /// Bytes the reads in flight may return.
    reserved: usize,
}

impl RequestLoop {
    pub(crate) fn new(
        ops: Operations,
        replies: Replies,
        shutdown: Shutdown,
        idle_timeout: Duration,
    ) -> Self {
        RequestLoop {
            ops,
            replies,
            shutdown,
            idle_timeout,
            stage: Stage::AwaitingInit,
            frames: FrameDecoder::default(),
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
                let Some(frame) = (match self.frames.next_frame() {
                    Ok(frame) => frame,
                    Err(err) => return err.into(),
                }) else {
                    break;
                };
                if let Err(end) = self.take(frame).await {
                    return end;
                }
            }
            if !input_open && self.reads.is_empty() && !self.frames.has_frame() {
                // The client sent its last request and every one is answered.
                return SessionEnd::ClientDone;
            }
            if self.stage == Stage::Draining && !self.ops.has_open_files() {
                return SessionEnd::Shutdown;
            }
            let waiting_for_client = !self.has_room() && self.replies.backlog() > 0;
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
                Some((reply, reserved)) = self.reads.next(), if !self.reads.is_empty() => {
                    self.reserved -= reserved;
                    if let Err(closed) = self.replies.send(reply) {
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
                message = channel.wait(), if input_open && self.frames.buffered() < INPUT_LIMIT => {
                    match message {
                        Some(ChannelMsg::Data { data }) => self.frames.push(&data),
                        Some(ChannelMsg::Eof | ChannelMsg::Close) | None => input_open = false,
                        // Window adjustments and requests already answered by the handler.
                        Some(_) => {}
                    }
                }
            }
        }
    }

    /// Takes one request: answers it, or starts it when it is a read.
    async fn take(&mut self, frame: bytes::Bytes) -> Result<(), SessionEnd> {
        if self.stage == Stage::AwaitingInit {
            if frame.first() != Some(&FXP_INIT) {
                return Err(SessionEnd::Protocol("the first request must be SSH_FXP_INIT".into()));
            }
            self.stage = Stage::Serving;
            if self.shutdown.is_draining() {
                self.stage = Stage::Draining;
            }
            return Ok(self.replies.packet(version())?);
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
                return Ok(self.replies.packet(status(id, code, &err.to_string()))?);
            }
        };
        match self.ops.answer(request).await {
            Answer::Now(reply) => self.replies.send(reply)?,
            Answer::Later { reply, reserved } => {
                self.reserved += reserved;
                self.reads.push(Box::pin(async move { (reply.await, reserved) }));
            }
        }
        Ok(())
    }
}
