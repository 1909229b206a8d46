//! What a hook is told: the kinds of events, and the JSON document of one event (the body of
//! an HTTP delivery, the `WHARF_EVENT_JSON` of a command, and what the spool keeps).

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wharf_access::{AuditEvent, Operation, Outcome};

/// The events hooks can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An upload was published: complete, under its name. Never for an upload that did not
    /// end so.
    Upload,
    /// A download ended, however it ended (see the event's `outcome`).
    Download,
    /// A file was removed.
    Delete,
    /// A file or folder was renamed.
    Rename,
    /// A folder was made.
    Mkdir,
    /// A folder was removed.
    Rmdir,
    /// A login succeeded.
    Login,
    /// A login was refused.
    LoginFailed,
    /// The defender banned an address.
    Ban,
}

impl EventKind {
    /// The event's name (as in the configuration and the documents).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Upload => "upload",
            EventKind::Download => "download",
            EventKind::Delete => "delete",
            EventKind::Rename => "rename",
            EventKind::Mkdir => "mkdir",
            EventKind::Rmdir => "rmdir",
            EventKind::Login => "login",
            EventKind::LoginFailed => "login_failed",
            EventKind::Ban => "ban",
        }
    }

    /// The hook event an audit event is, if it is one: changes to the tree only when they
    /// happened, downloads however they ended, logins either way.
    pub fn of_audit(op: Operation, outcome: Outcome) -> Option<EventKind> {
        let done = outcome == Outcome::Ok;
        match op {
            Operation::Upload => done.then_some(EventKind::Upload),
            Operation::Download => Some(EventKind::Download),
            Operation::RemoveFile => done.then_some(EventKind::Delete),
            Operation::Rename => done.then_some(EventKind::Rename),
            Operation::MakeDir => done.then_some(EventKind::Mkdir),
            Operation::RemoveDir => done.then_some(EventKind::Rmdir),
            Operation::Login if done => Some(EventKind::Login),
            Operation::Login => Some(EventKind::LoginFailed),
            _ => None,
        }
    }
}

/// One event, as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEvent {
    /// Unique (128 random bits in hex): a receiver that sees an id twice has seen one event
    /// delivered twice (delivery is at least once).
    pub id: String,
    /// What happened.
    pub event: EventKind,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The session's number in its node (not for bans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// The user (as given, for refused logins; not for bans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `ftp`, `ftps`, `sftp` or `tftp` (not for bans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The client's address (the one a PROXY header named, behind a load balancer).
    pub address: IpAddr,
    /// The client's port (not for bans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The virtual path, as the user sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The new name of a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Bytes moved by a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The SHA-256 of an uploaded file's content (lowercase hex), when it was computed: with
    /// `hooks.upload_sha256`, for a whole file written in order from its first byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// How long the operation took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `ok`, `denied`, `aborted` or an error kind such as `not_found` (not for bans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why, for people: why a login was refused, what an address was banned for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How long a ban lasts, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_secs: Option<u64>,
}

impl HookEvent {
    fn new(event: EventKind, address: IpAddr) -> HookEvent {
        HookEvent {
            id: format!("{:032x}", rand::random::<u128>()),
            event,
            time: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
            session: None,
            user: None,
            protocol: None,
            address,
            port: None,
            path: None,
            to: None,
            size: None,
            sha256: None,
            duration_ms: None,
            outcome: None,
            detail: None,
            ban_secs: None,
        }
    }

    /// The hook event `audit` is, if it is one (see [`EventKind::of_audit`]).
    pub fn of_audit(audit: &AuditEvent<'_>) -> Option<HookEvent> {
        let kind = EventKind::of_audit(audit.op, audit.outcome)?;
        let actor = audit.actor;
        let mut event = HookEvent::new(kind, actor.peer.ip());
        event.session = Some(actor.session);
        event.user = Some(actor.user.clone());
        event.protocol = Some(actor.protocol.as_str().to_owned());
        event.port = Some(actor.peer.port());
        event.path = audit.path.map(|p| p.as_str().to_owned());
        event.to = audit.to.map(|p| p.as_str().to_owned());
        event.size = audit.bytes;
        event.sha256 = audit.sha256.map(str::to_owned);
        event.duration_ms = Some(u64::try_from(audit.duration.as_millis()).unwrap_or(u64::MAX));
        event.outcome = Some(audit.outcome.as_str().to_owned());
        event.detail = audit.detail.map(str::to_owned);
        Some(event)
    }

    /// The event of `address` being banned for `ban_time`, for `reason`.
    pub fn ban(address: IpAddr, ban_time: Duration, reason: &str) -> HookEvent {
        let mut event = HookEvent::new(EventKind::Ban, address);
        event.ban_secs = Some(ban_time.as_secs());
        event.detail = Some(reason.to_owned());
        event
    }

    /// The event's fields as environment variables of a command (`WHARF_EVENT`, ...): the
    /// values are the event's own bytes, never interpreted.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("WHARF_EVENT", self.event.as_str().to_owned()),
            ("WHARF_EVENT_ID", self.id.clone()),
            ("WHARF_TIME", self.time.clone()),
            ("WHARF_ADDRESS", self.address.to_string()),
        ];
        let optional = [
            ("WHARF_SESSION", self.session.map(|s| s.to_string())),
            ("WHARF_USER", self.user.clone()),
            ("WHARF_PROTOCOL", self.protocol.clone()),
            ("WHARF_PORT", self.port.map(|p| p.to_string())),
            ("WHARF_PATH", self.path.clone()),
            ("WHARF_TO", self.to.clone()),
            ("WHARF_SIZE", self.size.map(|s| s.to_string())),
            ("WHARF_SHA256", self.sha256.clone()),
            ("WHARF_DURATION_MS", self.duration_ms.map(|d| d.to_string())),
            ("WHARF_OUTCOME", self.outcome.clone()),
            ("WHARF_DETAIL", self.detail.clone()),
            ("WHARF_BAN_SECS", self.ban_secs.map(|s| s.to_string())),
        ];
        vars.extend(optional.into_iter().filter_map(|(name, value)| Some((name, value?))));
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_happened_is_an_event() {
        use Operation::*;
        let failed = Outcome::Failed(wharf_vfs::ErrorKind::NotFound);
        assert_eq!(EventKind::of_audit(Upload, Outcome::Ok), Some(EventKind::Upload));
        assert_eq!(EventKind::of_audit(Upload, Outcome::Aborted), None);
        assert_eq!(EventKind::of_audit(Upload, failed), None);
        assert_eq!(EventKind::of_audit(Download, Outcome::Aborted), Some(EventKind::Download));
        assert_eq!(EventKind::of_audit(RemoveFile, Outcome::Denied), None);
        assert_eq!(EventKind::of_audit(Login, Outcome::Denied), Some(EventKind::LoginFailed));
        assert_eq!(EventKind::of_audit(Login, Outcome::Ok), Some(EventKind::Login));
        assert_eq!(EventKind::of_audit(Stat, Outcome::Ok), None);
    }

    #[test]
    fn the_document_round_trips_and_omits_what_does_not_apply() {
        let event =
            HookEvent::ban("192.0.2.7".parse().expect("ip"), Duration::from_secs(900), "login");
        let json = serde_json::to_string(&event).expect("json");
        assert!(json.contains("\"event\":\"ban\"") && json.contains("\"ban_secs\":900"), "{json}");
        assert!(!json.contains("\"path\""), "{json}");
        assert_eq!(serde_json::from_str::<HookEvent>(&json).expect("parses"), event);
        assert_eq!(event.id.len(), 32);
        let env = event.environment();
        assert!(env.contains(&("WHARF_ADDRESS", "192.0.2.7".to_owned())));
        assert!(!env.iter().any(|(name, _)| *name == "WHARF_PATH"));
    }

    #[test]
    fn an_uploads_sha256_reaches_the_document_and_the_environment_when_computed() {
        let actor = wharf_access::Actor {
            session: 3,
            user: "alice".to_owned(),
            protocol: wharf_access::Protocol::Ftp,
            peer: "127.0.0.1:40000".parse().expect("addr"),
            sink: None,
        };
        let path: wharf_vfs::VPath = "/in/a.bin".parse().expect("path");
        let digest = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        for sha256 in [Some(digest), None] {
            let audit = AuditEvent {
                actor: &actor,
                op: Operation::Upload,
                path: Some(&path),
                to: None,
                bytes: Some(5),
                sha256,
                duration: Duration::from_millis(1),
                outcome: Outcome::Ok,
                detail: None,
            };
            let event = HookEvent::of_audit(&audit).expect("an upload event");
            assert_eq!(event.sha256.as_deref(), sha256);
            let json = serde_json::to_string(&event).expect("json");
            assert_eq!(
                json.contains(&format!("\"sha256\":\"{digest}\"")),
                sha256.is_some(),
                "{json}"
            );
            assert_eq!(
                json.contains("sha256"),
                sha256.is_some(),
                "absent when not computed: {json}"
            );
            let env = event.environment();
            let var = env.iter().find(|(name, _)| *name == "WHARF_SHA256").map(|(_, v)| v.as_str());
            assert_eq!(var, sha256);
        }
    }
}
