//! Audit events: one per operation, through `tracing`, so the audit log, the transfer log and
//! metrics are subscribers and no front-end formats its own log lines.
//!
//! Events are emitted with target [`AUDIT_TARGET`] and these fields: `session`, `user`,
//! `protocol`, `peer`, `op`, `path`, `to` (renames), `bytes` (transfers), `sha256` (a
//! published upload whose digest was computed, see [`AuditSink::upload_sha256`]),
//! `duration_ms` and `outcome` (`ok`, `aborted`, `denied`, or an error kind such as
//! `not_found`). Reads of metadata (stat, list, ...) are at `DEBUG`, everything else at `INFO`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use wharf_vfs::{ErrorKind, VPath};

use crate::protocol::Protocol;

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "wharf::audit";

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A login attempt.
    Login,
    /// The end of a session.
    Logout,
    /// Reading attributes.
    Stat,
    /// Listing a directory.
    List,
    /// Reading a file.
    Download,
    /// Writing a file.
    Upload,
    /// Renaming.
    Rename,
    /// Removing a file.
    RemoveFile,
    /// Creating a directory.
    MakeDir,
    /// Removing a directory.
    RemoveDir,
    /// Setting times.
    SetTimes,
    /// Setting mode bits.
    SetMode,
    /// Reading a symbolic link.
    ReadLink,
    /// Asking for free space.
    Space,
}

impl Operation {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::Logout => "logout",
            Operation::Stat => "stat",
            Operation::List => "list",
            Operation::Download => "download",
            Operation::Upload => "upload",
            Operation::Rename => "rename",
            Operation::RemoveFile => "remove_file",
            Operation::MakeDir => "make_dir",
            Operation::RemoveDir => "remove_dir",
            Operation::SetTimes => "set_times",
            Operation::SetMode => "set_mode",
            Operation::ReadLink => "read_link",
            Operation::Space => "space",
        }
    }

    fn is_metadata_read(self) -> bool {
        matches!(self, Operation::Stat | Operation::List | Operation::ReadLink | Operation::Space)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused by the rules or the login checks.
    Denied,
    /// Failed with this error.
    Failed(ErrorKind),
    /// A transfer stopped before its end (dropped connection, ABOR).
    Aborted,
}

impl Outcome {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed(kind) => kind.as_str(),
            Outcome::Aborted => "aborted",
        }
    }

    /// The outcome of an operation's result.
    pub fn of<T>(result: &Result<T, wharf_vfs::Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(err) => Outcome::of_error(err),
        }
    }

    /// The outcome of an operation that failed with `err`.
    pub fn of_error(err: &wharf_vfs::Error) -> Outcome {
        match err {
            wharf_vfs::Error::PermissionDenied => Outcome::Denied,
            err => Outcome::Failed(err.kind()),
        }
    }
}

/// Receives every audit event and every ban as it happens, besides `tracing`: the event
/// hooks. `tracing` subscribers are process-wide, a sink belongs to one server, so two servers
/// in one process (tests) do not see each other's events.
///
/// Called on the task (or the lock-free path) that did the work: an implementation must
/// return at once, never block or wait.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// An audit event has been emitted.
    fn event(&self, event: &AuditEvent<'_>);
    /// The defender banned `address` for `ban_time`; `reason` says what for.
    fn banned(&self, address: IpAddr, ban_time: Duration, reason: &str);
    /// Whether the sessions reporting here compute the SHA-256 of each whole-file upload as
    /// it is written (see [`crate::transfer::Upload`]), for [`AuditEvent::sha256`]. Asked
    /// once per upload, when it opens. None by default.
    fn upload_sha256(&self) -> bool {
        false
    }
}

/// Who is acting: the parts of an audit event that are the same for a whole session.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Session number, unique in this process.
    pub session: u64,
    /// User name (as given, for failed logins).
    pub user: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Client address.
    pub peer: SocketAddr,
    /// Where the session's events also go (the event hooks), if anywhere.
    pub sink: Option<Arc<dyn AuditSink>>,
}

/// One audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// Who.
    pub actor: &'a Actor,
    /// What.
    pub op: Operation,
    /// On which path (none for logins).
    pub path: Option<&'a VPath>,
    /// The new name of a rename.
    pub to: Option<&'a VPath>,
    /// Bytes moved (transfers).
    pub bytes: Option<u64>,
    /// The SHA-256 of a published upload's content, in lowercase hex: only when it was
    /// computed, which takes a sink that asks for it and the whole file written in order
    /// from its first byte by this one upload (see [`crate::transfer::Upload`]).
    pub sha256: Option<&'a str>,
    /// How long it took.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// Extra detail for people (never a password): why a login failed, for instance.
    pub detail: Option<&'a str>,
}

impl AuditEvent<'_> {
    /// Sends the event to the `tracing` subscribers and to the actor's sink.
    pub fn emit(&self) {
        if let Some(sink) = &self.actor.sink {
            sink.event(self);
        }
        let path = self.path.map(VPath::as_str);
        let to = self.to.map(VPath::as_str);
        let duration_ms = u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX);
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: AUDIT_TARGET,
                    $level,
                    session = self.actor.session,
                    user = %self.actor.user,
                    protocol = self.actor.protocol.as_str(),
                    peer = %self.actor.peer,
                    op = self.op.as_str(),
                    path,
                    to,
                    bytes = self.bytes,
                    sha256 = self.sha256,
                    duration_ms,
                    outcome = self.outcome.as_str(),
                    detail = self.detail,
                    "audit"
                )
            };
        }
        if self.op.is_metadata_read() {
            event!(tracing::Level::DEBUG);
        } else {
            event!(tracing::Level::INFO);
        }
    }
}
