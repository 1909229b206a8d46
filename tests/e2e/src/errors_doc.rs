//! The error-mapping table of `docs/ERRORS.md`, parsed, so that the tests hold every
//! front-end to what the documentation says (and a change to either fails them).
//!
//! The table's rows look like
//! `` | `NotFound` | 550 No such file or directory | 2 `SSH_FX_NO_SUCH_FILE` | 1 file not found | ``:
//! the kind, the FTP reply code and text, the SFTP status number and name, the TFTP error code
//! and message.

use wharf_vfs::ErrorKind;

/// Where the page is, from this package.
pub const ERRORS_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ERRORS.md");

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    /// The shared error kind.
    pub kind: ErrorKind,
    /// FTP (and FTPS) reply code.
    pub ftp_code: u16,
    /// FTP reply text (before any `: reason`).
    pub ftp_text: String,
    /// SFTP status code.
    pub sftp_status: u32,
    /// SFTP status name (`SSH_FX_...`).
    pub sftp_name: String,
    /// TFTP error code.
    pub tftp_code: u16,
    /// TFTP error message.
    pub tftp_message: String,
}

/// The SFTP version 3 status names, by code.
pub const SFTP_STATUS_NAMES: [&str; 9] = [
    "SSH_FX_OK",
    "SSH_FX_EOF",
    "SSH_FX_NO_SUCH_FILE",
    "SSH_FX_PERMISSION_DENIED",
    "SSH_FX_FAILURE",
    "SSH_FX_BAD_MESSAGE",
    "SSH_FX_NO_CONNECTION",
    "SSH_FX_CONNECTION_LOST",
    "SSH_FX_OP_UNSUPPORTED",
];

fn kind_named(name: &str) -> Option<ErrorKind> {
    ErrorKind::ALL.into_iter().find(|kind| format!("{kind:?}") == name)
}

/// `"550 No such file"` → `(550, "No such file")`.
fn code_and_text(cell: &str) -> (u16, String) {
    let (code, text) = cell.split_once(' ').unwrap_or((cell, ""));
    let code = code.parse().unwrap_or_else(|_| panic!("no code at the start of `{cell}`"));
    (code, text.trim().to_owned())
}

/// Parses the error table out of `text` (the page's content).
pub fn parse_error_table(text: &str) -> Vec<ErrorRow> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        let Some(first) = cells.first() else { continue };
        let Some(kind) = first.strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        let Some(kind) = kind_named(kind) else { continue };
        assert_eq!(cells.len(), 4, "row of {kind:?} must have 4 cells: {line}");
        let (ftp_code, ftp_text) = code_and_text(cells[1]);
        let (sftp_status, sftp_name) = code_and_text(cells[2]);
        let (tftp_code, tftp_message) = code_and_text(cells[3]);
        rows.push(ErrorRow {
            kind,
            ftp_code,
            ftp_text,
            sftp_status: u32::from(sftp_status),
            sftp_name: sftp_name.trim_matches('`').to_owned(),
            tftp_code,
            tftp_message,
        });
    }
    rows
}

/// The table of `docs/ERRORS.md`.
pub fn error_table() -> Vec<ErrorRow> {
    let text = std::fs::read_to_string(ERRORS_DOC).expect("docs/ERRORS.md");
    parse_error_table(&text)
}

/// The documented row of `kind`.
pub fn documented(kind: ErrorKind) -> ErrorRow {
    error_table()
        .into_iter()
        .find(|row| row.kind == kind)
        .unwrap_or_else(|| panic!("docs/ERRORS.md has no row for {kind:?}"))
}

/// Panics unless `refusal` is exactly what `docs/ERRORS.md` documents for `kind` on the
/// refusal's protocol: the FTP code and text (a reason may follow), the SFTP status, the TFTP
/// code and message.
pub fn assert_refused_as(refusal: &crate::clients::Refusal, kind: ErrorKind, what: &str) {
    use crate::clients::Refusal;
    let row = documented(kind);
    match refusal {
        Refusal::Ftp { code, text } => {
            let first = text.lines().next().unwrap_or("");
            let shown = first.get(4..).unwrap_or(first);
            assert!(
                *code == row.ftp_code && shown.starts_with(&row.ftp_text),
                "{what}: FTP answered `{text}`, documented for {kind:?}: {} {}",
                row.ftp_code,
                row.ftp_text
            );
        }
        Refusal::Sftp { status, message } => assert_eq!(
            *status, row.sftp_status,
            "{what}: SFTP status {status} ({message}), documented for {kind:?}: {}",
            row.sftp_name
        ),
        Refusal::Tftp { code, message } => assert!(
            *code == row.tftp_code && *message == row.tftp_message,
            "{what}: TFTP error {code} `{message}`, documented for {kind:?}: {} {}",
            row.tftp_code,
            row.tftp_message
        ),
        Refusal::Failed(why) => panic!("{what}: no protocol answer ({why}), expected {kind:?}"),
    }
}
