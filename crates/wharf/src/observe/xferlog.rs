//! The transfer log in the classic xferlog format (wu-ftpd, vsftpd, ProFTPD), which log
//! analyzers read:
//!
//! ```text
//! current-time transfer-time remote-host file-size filename transfer-type special-action-flag
//! direction access-mode username service-name authentication-method authenticated-user-id
//! completion-status
//! ```
//!
//! Wharf writes one line per download or upload on any protocol. Times are UTC; the
//! service-name field carries the protocol (`ftp`, `ftps`, `sftp`, `tftp`); the transfer type
//! is always `b` (the byte count is what left or reached the storage); whitespace in file
//! names is written as `_` so the line keeps its fields.

use time::OffsetDateTime;
use time::macros::format_description;

use super::record::AuditRecord;

/// The xferlog line for a transfer event at `now`; `None` for other events.
pub fn line(record: &AuditRecord, now: OffsetDateTime) -> Option<String> {
    if !record.is_transfer() {
        return None;
    }
    let when = now
        .format(format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
        ))
        .ok()?;
    let seconds = record.duration_ms.div_ceil(1000).max(1);
    let filename: String = record
        .path
        .as_deref()
        .unwrap_or("-")
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    let direction = if record.op == "download" { 'o' } else { 'i' };
    let access_mode = if record.user == "anonymous" || record.user == "ftp" { 'a' } else { 'r' };
    let status = if record.outcome == "ok" { 'c' } else { 'i' };
    let user = if record.user.is_empty() { "-" } else { &record.user };
    Some(format!(
        "{when} {seconds} {host} {size} {filename} b _ {direction} {access_mode} {user} {service} 0 * {status}",
        host = record.peer_ip(),
        size = record.bytes.unwrap_or(0),
        service = record.protocol,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_format() {
        let record = AuditRecord {
            session: 7,
            user: "acme".into(),
            protocol: "sftp".into(),
            peer: "[2001:db8::5]:40112".into(),
            op: "upload".into(),
            path: Some("/in box/report 1.csv".into()),
            bytes: Some(1_048_576),
            duration_ms: 2_300,
            outcome: "ok".into(),
            ..AuditRecord::default()
        };
        let now = OffsetDateTime::from_unix_timestamp(1_764_000_000).expect("time");
        assert_eq!(
            line(&record, now).expect("a transfer"),
            "Mon Nov 24 16:00:00 2025 3 2001:db8::5 1048576 /in_box/report_1.csv b _ i r acme sftp 0 * c"
        );
        let aborted =
            AuditRecord { op: "download".into(), outcome: "aborted".into(), ..record.clone() };
        let text = line(&aborted, now).expect("a transfer");
        assert!(text.ends_with(" o r acme sftp 0 * i"), "{text}");
        let login = AuditRecord { op: "login".into(), ..record };
        assert_eq!(line(&login, now), None);
    }
}
