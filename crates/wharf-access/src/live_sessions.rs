//! The sessions open in this process, on every protocol, for operators: who is logged in,
//! from where, what each is transferring right now, and a way to end one.
//!
//! A session is listed from its login until it ends; its number is the `session` field of
//! its audit events. Each transfer it opens is listed under it until the transfer ends, with
//! the bytes moved so far (the same counter the audit event reports). Ending a session fires
//! its kill signal ([`Session::killed`](crate::Session::killed)), which every front-end
//! watches the way it watches the end of a shutdown's grace period: the connection closes,
//! an upload in progress is abandoned (never published), a download stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use wharf_vfs::VPath;

use crate::audit::{Actor, Operation};
use crate::protocol::Protocol;

/// The sessions open in this process.
#[derive(Debug, Default)]
pub struct LiveSessions {
    open: Mutex<HashMap<u64, Arc<LiveEntry>>>,
}

/// One open session, as the registry keeps it.
#[derive(Debug)]
pub(crate) struct LiveEntry {
    id: u64,
    user: String,
    protocol: Protocol,
    peer: SocketAddr,
    started: SystemTime,
    kill: CancellationToken,
    transfers: Mutex<Vec<Arc<TransferProgress>>>,
}

/// A transfer in progress: what the registry shows and the transfer's own byte counter.
#[derive(Debug)]
pub(crate) struct TransferProgress {
    op: Operation,
    path: VPath,
    started: SystemTime,
    bytes: AtomicU64,
}

impl TransferProgress {
    /// Counts `bytes` more moved.
    pub(crate) fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes moved so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A session's place in the registry: the session is listed while this lives.
#[derive(Debug)]
pub(crate) struct LiveTicket {
    registry: Weak<LiveSessions>,
    entry: Arc<LiveEntry>,
}

/// A transfer's place under its session: listed while this lives.
#[derive(Debug)]
pub(crate) struct TransferTicket {
    entry: Arc<LiveEntry>,
    progress: Arc<TransferProgress>,
}

/// A session as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The session number, as in its audit events.
    pub id: u64,
    /// The user logged in.
    pub user: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The client's address (the one a PROXY header carried, behind a load balancer).
    pub peer: SocketAddr,
    /// When the login succeeded.
    pub started: SystemTime,
    /// The transfers in progress, oldest first.
    pub transfers: Vec<LiveTransfer>,
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the server to the client.
    Download,
    /// From the client to the server.
    Upload,
}

impl Direction {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
        }
    }
}

/// A transfer in progress, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTransfer {
    /// Upload or download.
    pub direction: Direction,
    /// The virtual path.
    pub path: VPath,
    /// Bytes moved so far.
    pub bytes: u64,
    /// When the transfer began.
    pub started: SystemTime,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveSessions {
    /// Lists the session of `actor`, which just logged in.
    pub(crate) fn register(self: &Arc<Self>, actor: &Actor) -> LiveTicket {
        let entry = Arc::new(LiveEntry {
            id: actor.session,
            user: actor.user.clone(),
            protocol: actor.protocol,
            peer: actor.peer,
            started: SystemTime::now(),
            kill: CancellationToken::new(),
            transfers: Mutex::new(Vec::new()),
        });
        lock(&self.open).insert(entry.id, entry.clone());
        LiveTicket { registry: Arc::downgrade(self), entry }
    }

    /// The open sessions, in the order they logged in.
    pub fn list(&self) -> Vec<LiveSession> {
        let entries: Vec<Arc<LiveEntry>> = lock(&self.open).values().cloned().collect();
        let mut sessions: Vec<LiveSession> = entries.iter().map(|entry| entry.snapshot()).collect();
        sessions.sort_by_key(|session| session.id);
        sessions
    }

    /// The open session numbered `id`, if there is one.
    pub fn get(&self, id: u64) -> Option<LiveSession> {
        let entry = lock(&self.open).get(&id).cloned();
        entry.map(|entry| entry.snapshot())
    }

    /// Ends the session numbered `id`; whether it was open.
    pub fn kill(&self, id: u64) -> bool {
        let entry = lock(&self.open).get(&id).cloned();
        entry.map(|entry| entry.kill.cancel()).is_some()
    }

    /// Ends every open session of `user`; how many there were.
    pub fn kill_user(&self, user: &str) -> usize {
        let entries: Vec<Arc<LiveEntry>> =
            lock(&self.open).values().filter(|entry| entry.user == user).cloned().collect();
        for entry in &entries {
            entry.kill.cancel();
        }
        entries.len()
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        lock(&self.open).len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LiveEntry {
    fn snapshot(&self) -> LiveSession {
        let transfers = lock(&self.transfers)
            .iter()
            .map(|progress| LiveTransfer {
                direction: match progress.op {
                    Operation::Upload => Direction::Upload,
                    _ => Direction::Download,
                },
                path: progress.path.clone(),
                bytes: progress.bytes(),
                started: progress.started,
            })
            .collect();
        LiveSession {
            id: self.id,
            user: self.user.clone(),
            protocol: self.protocol,
            peer: self.peer,
            started: self.started,
            transfers,
        }
    }
}

impl LiveTicket {
    /// The session's kill signal.
    pub(crate) fn kill_signal(&self) -> &CancellationToken {
        &self.entry.kill
    }

    /// Lists a transfer of `op` on `path` under the session.
    pub(crate) fn transfer(&self, op: Operation, path: VPath) -> TransferTicket {
        let progress = Arc::new(TransferProgress {
            op,
            path,
            started: SystemTime::now(),
            bytes: AtomicU64::new(0),
        });
        lock(&self.entry.transfers).push(progress.clone());
        TransferTicket { entry: self.entry.clone(), progress }
    }
}

impl Drop for LiveTicket {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            let mut open = lock(&registry.open);
            // Only this session's own entry: the number is never reused, but be exact.
            if open.get(&self.entry.id).is_some_and(|entry| Arc::ptr_eq(entry, &self.entry)) {
                open.remove(&self.entry.id);
            }
        }
    }
}

impl TransferTicket {
    /// The transfer's byte counter.
    pub(crate) fn progress(&self) -> &TransferProgress {
        &self.progress
    }
}

impl Drop for TransferTicket {
    fn drop(&mut self) {
        lock(&self.entry.transfers).retain(|progress| !Arc::ptr_eq(progress, &self.progress));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(session: u64, user: &str) -> Actor {
        Actor {
            session,
            user: user.to_owned(),
            protocol: Protocol::Sftp,
            peer: "192.0.2.7:50000".parse().expect("address"),
            sink: None,
        }
    }

    #[test]
    fn sessions_and_their_transfers_are_listed_while_they_last() {
        let registry = Arc::new(LiveSessions::default());
        let first = registry.register(&actor(7, "carol"));
        let second = registry.register(&actor(9, "dave"));
        let upload = first.transfer(
            Operation::Upload,
            VPath::resolve(&VPath::root(), "/in/a.bin").expect("path"),
        );
        upload.progress().add(1000);
        upload.progress().add(24);

        let listed = registry.list();
        assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), [7, 9]);
        assert_eq!(listed[0].transfers.len(), 1);
        assert_eq!(listed[0].transfers[0].bytes, 1024);
        assert_eq!(listed[0].transfers[0].direction, Direction::Upload);
        assert_eq!(listed[0].transfers[0].path.as_str(), "/in/a.bin");
        assert!(listed[1].transfers.is_empty());

        drop(upload);
        assert!(registry.get(7).expect("still open").transfers.is_empty());
        drop(first);
        assert_eq!(registry.get(7), None);
        drop(second);
        assert!(registry.is_empty());
    }

    #[test]
    fn killing_fires_the_signal_of_that_session_only() {
        let registry = Arc::new(LiveSessions::default());
        let carol = registry.register(&actor(1, "carol"));
        let carol_again = registry.register(&actor(2, "carol"));
        let dave = registry.register(&actor(3, "dave"));

        assert!(registry.kill(3));
        assert!(dave.kill_signal().is_cancelled());
        assert!(!carol.kill_signal().is_cancelled());
        assert!(!registry.kill(42), "no such session");

        assert_eq!(registry.kill_user("carol"), 2);
        assert!(carol.kill_signal().is_cancelled() && carol_again.kill_signal().is_cancelled());
        assert_eq!(registry.kill_user("nobody"), 0);
    }
}
