//! File attributes as SFTP carries them, and the `ls -l` line (`longname`) of directory
//! listings, formatted as OpenSSH's server formats it (times in UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::FileAttributes;
use time::OffsetDateTime;
use wharf_vfs::{FileKind, Metadata};

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK`: the type bits of a Unix mode.
const TYPE_DIR: u32 = 0o040_000;
const TYPE_FILE: u32 = 0o100_000;
const TYPE_SYMLINK: u32 = 0o120_000;

/// `ls -l` shows the time of day for files changed within the last half year, else the year.
const RECENT: Duration = Duration::from_secs(365 * 24 * 60 * 60 / 2);

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

/// `drwxr-xr-x`-style type and permission letters.
fn mode_letters(kind: FileKind, mode: u32) -> String {
    let type_letter = match kind {
        FileKind::Dir => 'd',
        FileKind::File => '-',
        FileKind::Symlink => 'l',
        FileKind::Other => '?',
    };
    let mut letters = String::with_capacity(10);
    letters.push(type_letter);
    // (read bit, write bit, execute bit, special bit, letter when special and executable)
    let triads = [(0o400, 0o200, 0o100, 0o4000, 's'), (0o040, 0o020, 0o010, 0o2000, 's')];
    for (read, write, exec, special, special_letter) in triads {
        letters.push(if mode & read != 0 { 'r' } else { '-' });
        letters.push(if mode & write != 0 { 'w' } else { '-' });
        letters.push(match (mode & exec != 0, mode & special != 0) {
            (true, true) => special_letter,
            (false, true) => special_letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    letters.push(if mode & 0o004 != 0 { 'r' } else { '-' });
    letters.push(if mode & 0o002 != 0 { 'w' } else { '-' });
    letters.push(match (mode & 0o001 != 0, mode & 0o1000 != 0) {
        (true, true) => 't',
        (false, true) => 'T',
        (true, false) => 'x',
        (false, false) => '-',
    });
    letters
}

/// `Jan  5 13:07` for recent times, `Jan  5  2023` for others.
fn ls_time(modified: SystemTime, now: SystemTime) -> String {
    let seconds = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let Ok(when) = OffsetDateTime::from_unix_timestamp(seconds) else {
        return "Jan  1  1970".to_owned();
    };
    let month = when.month().to_string();
    let month = month.get(..3).unwrap_or("???");
    let recent = modified <= now && now.duration_since(modified).is_ok_and(|age| age < RECENT);
    if recent {
        format!("{month} {:>2} {:02}:{:02}", when.day(), when.hour(), when.minute())
    } else {
        format!("{month} {:>2}  {}", when.day(), when.year())
    }
}

/// The `ls -l` line for `name`, as OpenSSH's server writes it.
pub(crate) fn longname(name: &str, meta: &Metadata, now: SystemTime) -> String {
    format!(
        "{} {:>3} {:<8} {:<8} {:>8} {} {}",
        mode_letters(meta.kind, meta.mode),
        meta.nlink,
        meta.uid,
        meta.gid,
        meta.size,
        ls_time(meta.modified.unwrap_or(UNIX_EPOCH), now),
        name
    )
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
    }

    #[test]
    fn special_bits_show_like_ls() {
        assert_eq!(mode_letters(FileKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_letters(FileKind::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_letters(FileKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_letters(FileKind::Symlink, 0o777), "lrwxrwxrwx");
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
