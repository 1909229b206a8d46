//! How entries look in listings: `LIST` in the `ls -l` form every client parses, `NLST` names,
//! and the machine-readable facts of `MLSD`/`MLST` (RFC 3659). Pure formatting, no I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use wharf_access::Permissions;
use wharf_vfs::Metadata;

/// A fact `MLSD`/`MLST` can show (RFC 3659, section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlstFact {
    /// `type=file|dir`.
    Type,
    /// `size=` in bytes.
    Size,
    /// `modify=` as `YYYYMMDDHHMMSS`, UTC.
    Modify,
    /// `perm=`: what this user may do with the entry.
    Perm,
    /// `unique=`: identifies the file on its storage.
    Unique,
}

impl MlstFact {
    /// Every fact, in the order they are written.
    pub const ALL: [MlstFact; 5] =
        [MlstFact::Type, MlstFact::Size, MlstFact::Modify, MlstFact::Perm, MlstFact::Unique];

    /// The fact's name.
    pub fn name(self) -> &'static str {
        match self {
            MlstFact::Type => "type",
            MlstFact::Size => "size",
            MlstFact::Modify => "modify",
            MlstFact::Perm => "perm",
            MlstFact::Unique => "unique",
        }
    }

    /// The fact called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<MlstFact> {
        MlstFact::ALL.into_iter().find(|fact| fact.name().eq_ignore_ascii_case(name))
    }
}

/// The `MLST` line of `FEAT`: every fact, those enabled marked with `*`.
pub fn feat_mlst_line(enabled: &[MlstFact]) -> String {
    let mut line = String::from("MLST ");
    for fact in MlstFact::ALL {
        line.push_str(fact.name());
        if enabled.contains(&fact) {
            line.push('*');
        }
        line.push(';');
    }
    line
}

/// Whether `name` can be shown on a line of a listing: names with control characters would
/// break the line-based formats, and no command could name them anyway.
pub fn is_listable(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_control)
}

/// The time as calendar fields in UTC, when it is representable.
fn utc(time: SystemTime) -> Option<OffsetDateTime> {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok()?,
        Err(before) => -i64::try_from(before.duration().as_secs()).ok()?,
    };
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// `YYYYMMDDHHMMSS` in UTC, as `MDTM`, `MFMT` and the `modify` fact write times.
pub fn timestamp(time: SystemTime) -> Option<String> {
    let t = utc(time)?;
    Some(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// One `LIST` line, in the `ls -l` form shared with SFTP ([`wharf_vfs::ls::long_line`]).
/// Owner and group are always `ftp`: host account names mean nothing to a client.
pub fn list_line(name: &str, meta: &Metadata, now: SystemTime) -> String {
    wharf_vfs::ls::long_line(name, meta, "ftp", "ftp", now)
}

/// The `perm` fact (RFC 3659, 7.5.5) from this user's permissions at the entry.
pub fn perm_fact(meta: &Metadata, perms: Permissions) -> String {
    let letters: &[(char, Permissions)] = if meta.is_dir() {
        &[
            ('e', Permissions::empty()),
            ('l', Permissions::LIST),
            ('c', Permissions::UPLOAD),
            ('m', Permissions::MKDIR),
            ('p', Permissions::DELETE),
            ('d', Permissions::RMDIR),
            ('f', Permissions::RENAME),
        ]
    } else {
        &[
            ('r', Permissions::DOWNLOAD),
            ('w', Permissions::OVERWRITE),
            ('a', Permissions::APPEND),
            ('d', Permissions::DELETE),
            ('f', Permissions::RENAME),
        ]
    };
    letters
        .iter()
        .filter(|(_, needed)| perms.contains(*needed))
        .map(|(letter, _)| *letter)
        .collect()
}

/// The facts of one entry, each followed by `;` (`type=file;size=12;...;`).
pub fn facts(meta: &Metadata, perms: Permissions, enabled: &[MlstFact]) -> String {
    let mut out = String::with_capacity(96);
    for fact in MlstFact::ALL.into_iter().filter(|fact| enabled.contains(fact)) {
        let value = match fact {
            MlstFact::Type => Some(if meta.is_dir() { "dir" } else { "file" }.to_owned()),
            // A directory's size is the storage's bookkeeping, not something to download.
            MlstFact::Size => (!meta.is_dir()).then(|| meta.size.to_string()),
            MlstFact::Modify => meta.modified.and_then(timestamp),
            MlstFact::Perm => Some(perm_fact(meta, perms)),
            MlstFact::Unique => meta.id.map(|id| format!("{:x}g{:x}", id.device, id.inode)),
        };
        if let Some(value) = value {
            out.push_str(fact.name());
            out.push('=');
            out.push_str(&value);
            out.push(';');
        }
    }
    out
}

/// One `MLSD` line, or the fact line of `MLST`: facts, one space, the name.
pub fn mlsx_line(name: &str, meta: &Metadata, perms: Permissions, enabled: &[MlstFact]) -> String {
    let mut line = facts(meta, perms, enabled);
    line.push(' ');
    line.push_str(name);
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wharf_vfs::{FileId, FileKind};

    use super::*;

    fn file(size: u64, modified_secs: u64, mode: u32) -> Metadata {
        Metadata {
            kind: FileKind::File,
            size,
            modified: Some(UNIX_EPOCH + Duration::from_secs(modified_secs)),
            accessed: None,
            mode,
            nlink: 1,
            uid: 1000,
            gid: 1000,
            id: Some(FileId { device: 0x803, inode: 0x2a }),
        }
    }

    /// The layout itself is tested with the formatter (`wharf_vfs::ls`); here, that `LIST`
    /// shows `ftp` for owner and group whatever the host's ids are.
    #[test]
    fn list_lines_show_ftp_as_owner_and_group() {
        // 2021-03-04 12:34:56 UTC
        let meta = file(1234, 1_614_861_296, 0o644);
        let soon = UNIX_EPOCH + Duration::from_secs(1_614_861_296 + 86_400);
        assert_eq!(
            list_line("a b.txt", &meta, soon),
            "-rw-r--r--   1 ftp      ftp          1234 Mar  4 12:34 a b.txt"
        );
        let mut dir = Metadata::virtual_dir();
        dir.modified = meta.modified;
        assert!(list_line("d", &dir, soon).starts_with("dr-xr-xr-x   2 ftp      ftp "));
        // Set-id and sticky bits show as `ls` shows them (FTP's own copy left them out).
        let mut shared = file(0, 1_614_861_296, 0o1777);
        shared.kind = FileKind::Dir;
        assert!(list_line("tmp", &shared, soon).starts_with("drwxrwxrwt "));
    }

    #[test]
    fn mlsd_facts() {
        let meta = file(12, 1_614_861_296, 0o644);
        let line = mlsx_line("f.txt", &meta, Permissions::READ, &MlstFact::ALL);
        assert_eq!(line, "type=file;size=12;modify=20210304123456;perm=r;unique=803g2a; f.txt");
        let only = mlsx_line("f", &meta, Permissions::all(), &[MlstFact::Size, MlstFact::Perm]);
        assert_eq!(only, "size=12;perm=rwadf; f");
        let dir = Metadata::virtual_dir();
        assert_eq!(perm_fact(&dir, Permissions::all()), "elcmpdf");
        assert_eq!(perm_fact(&dir, Permissions::READ), "el");
    }

    #[test]
    fn feat_line_marks_enabled_facts() {
        assert_eq!(
            feat_mlst_line(&[MlstFact::Type, MlstFact::Size]),
            "MLST type*;size*;modify;perm;unique;"
        );
    }

    #[test]
    fn control_characters_are_not_listable() {
        assert!(is_listable("résumé 2024.pdf"));
        assert!(!is_listable("a\nb"));
        assert!(!is_listable(""));
    }
}
