//! The SFTP subsystem: version 3 over one SSH channel, on the user's session.
//!
//! [`serve`] runs two halves side by side: the request loop ([`request_loop`]) reads requests
//! and carries them out through [`ops`], and the reply writer ([`output`]) sends the replies.

mod attrs;
mod codec;
mod extensions;
mod handles;
mod ops;
mod output;
mod read_ahead;
mod request_loop;

use std::time::Duration;

use russh::Channel;
use russh::server::Msg;
use wharf_access::{Session, Shutdown};

use self::ops::Operations;
use self::output::reply_queue;
use self::request_loop::{RequestLoop, SessionEnd};

/// What an SFTP session needs besides its channel and login.
#[derive(Debug, Clone)]
pub(crate) struct SubsystemSettings {
    /// Handles a session may hold at once.
    pub(crate) max_open_handles: usize,
    /// After this long without the client taking replies, the session ends.
    pub(crate) idle_timeout: Duration,
    /// The server's lifecycle.
    pub(crate) shutdown: Shutdown,
}

/// Serves SFTP on `channel` for `session` until the client leaves or the server stops, then
/// closes the channel.
pub(crate) async fn serve(channel: Channel<Msg>, session: Session, settings: SubsystemSettings) {
    let peer = session.peer();
    let (input, output) = channel.split();
    let (replies, writer) = reply_queue();
    let ops = Operations::new(session, settings.max_open_handles);
    let requests = RequestLoop::new(ops, replies, settings.shutdown, settings.idle_timeout);
    let (end, written) = tokio::join!(requests.run(input), writer.run(&output));
    match end {
        SessionEnd::ClientDone | SessionEnd::Shutdown => {
            tracing::debug!(%peer, reason = %end, "SFTP session ended");
        }
        SessionEnd::Protocol(_) | SessionEnd::Stalled(_) | SessionEnd::Closed(_) => {
            tracing::info!(%peer, reason = %end, "SFTP session ended");
        }
    }
    if written.is_ok() {
        // Best effort: the client may already be gone.
        let _ = output.eof().await;
        let _ = output.close().await;
    }
}
