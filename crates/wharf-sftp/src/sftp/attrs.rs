//! File attributes as SFTP carries them, and the `ls -l` line (`longname`) of directory
//! listings, with OpenSSH's server's columns (the formatter is shared with FTP).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::FileAttributes;
use wharf_vfs::{FileKind, Metadata};

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK`: the type bits of a Unix mode.
const TYPE_DIR: u32 = 0o040_000;
const TYPE_FILE: u32 = 0o100_000;
const TYPE_SYMLINK: u32 = 0o120_000;

fn type_bits(kind: FileKind) -> u32 {
    match kind {
        FileKind::Dir => TYPE_DIR,
        FileKind::File => TYPE_FILE,
        FileKind::Symlink => TYPE_SYMLINK,
        FileKind::Other => 0,
    }
}

/// Seconds since 1970 as SFTP version 3 carries them (32 bits, unsigned).
pub(crate) fn unix_seconds(time: SystemTime) -> u32 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => u32::try_from(since.as_secs()).unwrap_or(u32::MAX),
        Err(_) => 0,
    }
}

/// The time SFTP seconds stand for.
pub(crate) fn system_time(seconds: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(seconds))
}

/// The attributes of `meta`.
pub(crate) fn file_attributes(meta: &Metadata) -> FileAttributes {
    FileAttributes {
        size: Some(meta.size),
        uid: Some(meta.uid),
        user: None,
        gid: Some(meta.gid),
        group: None,
        permissions: Some(type_bits(meta.kind) | (meta.mode & 0o7777)),
        atime: Some(unix_seconds(meta.accessed.or(meta.modified).unwrap_or(UNIX_EPOCH))),
        mtime: Some(unix_seconds(meta.modified.unwrap_or(UNIX_EPOCH))),
    }
}

/// The `ls -l` line for `name`, in the layout shared with FTP ([`wharf_vfs::ls::long_line`]).
/// Owner and group are the numeric ids, as OpenSSH's server shows ids it has no name for:
/// Wharf's users are not host accounts, so host names for them would mislead.
pub(crate) fn longname(name: &str, meta: &Metadata, now: SystemTime) -> String {
    wharf_vfs::ls::long_line(name, meta, &meta.uid.to_string(), &meta.gid.to_string(), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: FileKind, mode: u32, size: u64, modified: SystemTime) -> Metadata {
        Metadata {
            kind,
            size,
            modified: Some(modified),
            accessed: None,
            mode,
            nlink: 1,
            uid: 1000,
            gid: 100,
            id: None,
        }
    }

    #[test]
    fn longname_looks_like_openssh() {
        // 2024-03-05 14:07:00 UTC
        let modified = system_time(1_709_647_620);
        let now = modified + Duration::from_secs(3600);
        let line = longname("report.csv", &meta(FileKind::File, 0o644, 1234, modified), now);
        assert_eq!(line, "-rw-r--r--   1 1000     100          1234 Mar  5 14:07 report.csv");
        let old = modified + Duration::from_secs(400 * 24 * 3600);
        let line = longname("docs", &meta(FileKind::Dir, 0o755, 4096, modified), old);
        assert_eq!(line, "drwxr-xr-x   1 1000     100          4096 Mar  5  2024 docs");
        // The shared formatter shows a time before 1970 as its date (SFTP's own copy showed
        // every such time as the epoch).
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        let line = longname("old", &meta(FileKind::File, 0o600, 1, before), now);
        assert_eq!(line, "-rw-------   1 1000     100             1 Dec 31  1969 old");
    }

    #[test]
    fn attributes_carry_type_and_times() {
        let modified = system_time(1_000_000);
        let attrs = file_attributes(&meta(FileKind::Dir, 0o750, 0, modified));
        assert!(attrs.is_dir());
        assert_eq!(attrs.permissions, Some(0o040_750));
        assert_eq!(attrs.mtime, Some(1_000_000));
        assert_eq!(attrs.atime, Some(1_000_000), "atime falls back to mtime");
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
