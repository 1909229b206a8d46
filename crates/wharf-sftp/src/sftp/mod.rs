//! The SFTP subsystem: version 3 over one SSH channel, on the user's session.
//!
//! [`serve`] runs two halves side by side: the request loop ([`request_loop`]) reads requests
//! and carries them out through [`ops`], and the reply writer ([`output`]) sends the replies.

mod attrs;
mod codec;
mod extensions;
mod handles;
mod memory;
mod ops;
mod output;
mod read_ahead;
mod request_loop;

use std::time::Duration;

use russh::Channel;
use russh::server::Msg;
use wharf_access::{DescriptorBudget, Session, Shutdown};

pub(crate) use self::handles::{HANDLE_DESCRIPTOR_FLOOR, HandleDescriptors};
pub(crate) use self::memory::ConnectionMemory;

use self::ops::Operations;
use self::output::{ChannelClosed, reply_queue};
use self::request_loop::{RequestLoop, SessionEnd};

/// How long closing the channel may take.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What an SFTP session needs besides its channel and login.
#[derive(Debug, Clone)]
pub(crate) struct SubsystemSettings {
    /// Handles a session may hold at once.
    pub(crate) max_open_handles: usize,
    /// After this long without the client taking replies, the session ends.
    pub(crate) idle_timeout: Duration,
    /// The server's lifecycle.
    pub(crate) shutdown: Shutdown,
    /// The process's descriptor budget, which open handles take their files from.
    pub(crate) descriptors: DescriptorBudget,
}

/// Serves SFTP on `channel` for `session` until the client leaves or the server stops, then
/// closes the channel. Its buffers are paid from `memory`, shared by the connection's
/// channels.
pub(crate) async fn serve(
    channel: Channel<Msg>,
    session: Session,
    settings: SubsystemSettings,
    memory: ConnectionMemory,
    descriptors: HandleDescriptors,
) {
    let peer = session.peer();
    let (input, output) = channel.split();
    let (replies, writer) = reply_queue();
    let reply_memory = memory.replies();
    let ops = Operations::new(session, settings.max_open_handles, memory, descriptors);
    let shutdown = settings.shutdown.clone();
    let requests =
        RequestLoop::new(ops, replies, reply_memory, settings.shutdown, settings.idle_timeout);
    let requests = requests.run(input);
    let writing = writer.run(&output);
    tokio::pin!(requests, writing);
    let mut written = None;
    let end = loop {
        // The request loop first: the writer relies on seeing, in the same poll, every reply
        // the loop queued (see `output`).
        tokio::select! {
            biased;
            end = &mut requests => break end,
            result = &mut writing, if written.is_none() => written = Some(result),
        }
    };
    // The last replies get as long to go out as a client may stay silent. russh never wakes a
    // writer waiting for window space on a closed channel, so the wait must be bounded.
    let written = match written {
        Some(result) => result,
        None => tokio::select! {
            result = tokio::time::timeout(settings.idle_timeout, &mut writing) => {
                result.unwrap_or(Err(ChannelClosed))
            }
            () = shutdown.terminated() => Err(ChannelClosed),
        },
    };
    match end {
        SessionEnd::ClientDone | SessionEnd::Shutdown => {
            tracing::debug!(%peer, reason = %end, "SFTP session ended");
        }
        SessionEnd::Protocol(_) | SessionEnd::Stalled(_) | SessionEnd::Closed(_) => {
            tracing::info!(%peer, reason = %end, "SFTP session ended");
        }
    }
    if written.is_ok() {
        // Best effort, and bounded: the client may be gone or not reading.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            let _ = output.eof().await;
            let _ = output.close().await;
        })
        .await;
    }
}

/// What the request decoding path made of a stream of client bytes (see
/// [`crate::decode_client_bytes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeSummary {
    /// Whole packets cut from the stream.
    pub packets: usize,
    /// Packets decoded into requests.
    pub requests: usize,
    /// Packets refused as malformed (answered with a status, the session goes on).
    pub malformed: usize,
    /// Why the stream could not be followed any further (the session would end), if so.
    pub stopped: Option<String>,
}

/// Runs `bytes` through the framing and request decoding a session applies to what a client
/// sends, without a connection or storage.
pub(crate) fn decode_client_bytes(bytes: &[u8]) -> DecodeSummary {
    let mut decoder = codec::FrameDecoder::default();
    decoder.push(bytes);
    let mut summary = DecodeSummary::default();
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => {
                summary.packets += 1;
                let _ = codec::request_id(&frame);
                match codec::decode_request(frame) {
                    Ok(_) => summary.requests += 1,
                    Err(_) => summary.malformed += 1,
                }
            }
            Ok(None) => return summary,
            Err(err) => {
                summary.stopped = Some(err.to_string());
                return summary;
            }
        }
    }
}
