//! An audit event as the log writers and metrics see it: its fields, captured from `tracing`.

use std::fmt;

use serde::Serialize;
use tracing::field::{Field, Visit};

/// The fields of one audit event (see `wharf_access::audit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Session number.
    pub session: u64,
    /// User name.
    pub user: String,
    /// Protocol (`ftp`, `ftps`, `sftp`, `tftp`).
    pub protocol: String,
    /// Client address and port.
    pub peer: String,
    /// Operation (`login`, `download`, `upload`, ...).
    pub op: String,
    /// Path, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Rename target, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Bytes moved (transfers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// A published upload's SHA-256 (hex), when computed (`hooks.upload_sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// `ok`, `denied`, `aborted` or an error kind.
    pub outcome: String,
    /// Extra detail (never a password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditRecord {
    /// Captures the fields of `event`.
    pub fn from_event(event: &tracing::Event<'_>) -> AuditRecord {
        let mut record = AuditRecord::default();
        event.record(&mut record);
        record
    }

    /// The client's IP address (without the port).
    pub fn peer_ip(&self) -> &str {
        match self.peer.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => &self.peer,
        }
    }

    /// Whether this is a download or an upload.
    pub fn is_transfer(&self) -> bool {
        self.op == "download" || self.op == "upload"
    }
}

impl Visit for AuditRecord {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "session" => self.session = value,
            "bytes" => self.bytes = Some(value),
            "duration_ms" => self.duration_ms = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.record_u64(field, value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let value = value.to_owned();
        match field.name() {
            "user" => self.user = value,
            "protocol" => self.protocol = value,
            "peer" => self.peer = value,
            "op" => self.op = value,
            "path" => self.path = Some(value),
            "to" => self.to = Some(value),
            "sha256" => self.sha256 = Some(value),
            "outcome" => self.outcome = value,
            "detail" => self.detail = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Display-formatted fields (`%user`, `%peer`) arrive here.
        self.record_str(field, &format!("{value:?}"));
    }
}
