//! The `ls -l` line of a directory entry, as FTP's `LIST` and SFTP's `longname` show it.
//!
//! Why here: the line is a Unix listing convention, not a protocol. It is drawn from
//! [`Metadata`] alone (type, mode, links, size, modification time), which this crate owns,
//! and involves no user or permission, so `wharf-access` has nothing to add to it. Both
//! front-ends depend on this crate already; each passes what its protocol shows in the owner
//! and group columns. Times are shown in UTC: the server's time zone means nothing to a
//! client elsewhere.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::metadata::{FileKind, Metadata};

/// Half of an average Gregorian year, in seconds: `ls` shows the time of day for entries
/// modified less than this long ago, and the year for older ones and for future ones (a clock
/// that was wrong, or a time set by a client), so that no line can be mistaken for this year.
const RECENT_SECS: u64 = 31_556_952 / 2;

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// One `ls -l` line: mode, links, owner, group, size, date, name, in the column layout of
/// OpenSSH's server (`%3u` links, owner and group at least 8 wide, `%8` size), which FTP clients
/// parse as well. An entry without a modification time shows the epoch. The name is written
/// as it is: callers keep names with control characters out of line-based listings.
pub fn long_line(name: &str, meta: &Metadata, owner: &str, group: &str, now: SystemTime) -> String {
    format!(
        "{} {:>3} {:<8} {:<8} {:>8} {} {}",
        mode_letters(meta.kind, meta.mode),
        meta.nlink,
        owner,
        group,
        meta.size,
        date(meta.modified.unwrap_or(UNIX_EPOCH), now),
        name
    )
}

/// `drwxr-xr-x`: the type letter, then read, write and execute for owner, group and others,
/// with set-user-id, set-group-id and sticky shown in the execute column (`s`/`t` when the
/// execute bit is set too, `S`/`T` when not), as `ls` does. A type Wharf does not name (a
/// socket, a device) is `?`, which `ls` uses for a type it does not know.
fn mode_letters(kind: FileKind, mode: u32) -> String {
    let type_letter = match kind {
        FileKind::Dir => 'd',
        FileKind::File => '-',
        FileKind::Symlink => 'l',
        FileKind::Other => '?',
    };
    // (shift of the read/write/execute triad, its special bit, the special's letter)
    let triads = [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')];
    let mut letters = String::with_capacity(10);
    letters.push(type_letter);
    for (shift, special, special_letter) in triads {
        let bits = (mode >> shift) & 0o7;
        letters.push(if bits & 0o4 != 0 { 'r' } else { '-' });
        letters.push(if bits & 0o2 != 0 { 'w' } else { '-' });
        letters.push(match (bits & 0o1 != 0, mode & special != 0) {
            (true, true) => special_letter,
            (false, true) => special_letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    letters
}

/// The date column: `Mar  4 12:34` when recent, `Mar  4  2021` otherwise (UTC).
fn date(modified: SystemTime, now: SystemTime) -> String {
    let Some(when) = utc(modified) else { return "Jan  1  1970".to_owned() };
    let month = MONTHS[usize::from(u8::from(when.month())) - 1];
    let recent = now.duration_since(modified).is_ok_and(|age| age.as_secs() < RECENT_SECS);
    if recent {
        format!("{month} {:>2} {:02}:{:02}", when.day(), when.hour(), when.minute())
    } else {
        format!("{month} {:>2}  {}", when.day(), when.year())
    }
}

/// The time as calendar fields in UTC, before 1970 too; `None` past what a calendar holds.
fn utc(time: SystemTime) -> Option<OffsetDateTime> {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok()?,
        Err(before) => -i64::try_from(before.duration().as_secs()).ok()?,
    };
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// 2021-03-04 12:34:56 UTC.
    const MODIFIED: u64 = 1_614_861_296;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn entry(kind: FileKind, mode: u32, nlink: u64, size: u64) -> Metadata {
        Metadata {
            kind,
            size,
            modified: Some(at(MODIFIED)),
            accessed: None,
            mode,
            nlink,
            uid: 1000,
            gid: 100,
            id: None,
        }
    }

    fn line(meta: &Metadata, now: SystemTime) -> String {
        long_line("a b.txt", meta, "ftp", "ftp", now)
    }

    #[test]
    fn recent_entries_show_the_time_of_day() {
        let meta = entry(FileKind::File, 0o644, 1, 1234);
        assert_eq!(
            line(&meta, at(MODIFIED + 86_400)),
            "-rw-r--r--   1 ftp      ftp          1234 Mar  4 12:34 a b.txt"
        );
        // Modified this very second, and one second short of half a year ago.
        assert!(line(&meta, at(MODIFIED)).ends_with(" Mar  4 12:34 a b.txt"));
        assert!(line(&meta, at(MODIFIED + RECENT_SECS - 1)).ends_with(" Mar  4 12:34 a b.txt"));
    }

    #[test]
    fn old_and_future_entries_show_the_year() {
        let meta = entry(FileKind::File, 0o644, 1, 1234);
        assert_eq!(
            line(&meta, at(MODIFIED + RECENT_SECS)),
            "-rw-r--r--   1 ftp      ftp          1234 Mar  4  2021 a b.txt"
        );
        assert!(line(&meta, at(1_700_000_000)).ends_with(" Mar  4  2021 a b.txt"));
        // A time ahead of the clock is not "recent".
        assert!(line(&meta, at(MODIFIED - 60)).ends_with(" Mar  4  2021 a b.txt"));
    }

    #[test]
    fn times_without_a_recent_date_fall_back_to_calendar_fields() {
        let mut meta = entry(FileKind::File, 0o600, 1, 0);
        meta.modified = None;
        assert!(line(&meta, at(MODIFIED)).ends_with(" Jan  1  1970 a b.txt"));
        // 1969-12-31 23:59:00 UTC, one minute before the epoch.
        meta.modified = UNIX_EPOCH.checked_sub(Duration::from_secs(60));
        assert!(line(&meta, at(MODIFIED)).ends_with(" Dec 31  1969 a b.txt"));
    }

    #[test]
    fn single_digit_days_and_times_are_padded() {
        let mut meta = entry(FileKind::File, 0o644, 1, 7);
        // 2024-01-05 03:07:00 UTC
        meta.modified = Some(at(1_704_424_020));
        assert_eq!(
            long_line("x", &meta, "ftp", "ftp", at(1_704_424_020 + 60)),
            "-rw-r--r--   1 ftp      ftp             7 Jan  5 03:07 x"
        );
    }

    #[test]
    fn modes_show_type_permissions_and_special_bits() {
        let cases = [
            (FileKind::File, 0o644, "-rw-r--r--"),
            (FileKind::File, 0o000, "----------"),
            (FileKind::Dir, 0o755, "drwxr-xr-x"),
            (FileKind::Dir, 0o1777, "drwxrwxrwt"),
            (FileKind::Dir, 0o1770, "drwxrwx--T"),
            (FileKind::File, 0o4755, "-rwsr-xr-x"),
            (FileKind::File, 0o4644, "-rwSr--r--"),
            (FileKind::File, 0o2755, "-rwxr-sr-x"),
            (FileKind::File, 0o2644, "-rw-r-Sr--"),
            (FileKind::Symlink, 0o777, "lrwxrwxrwx"),
            (FileKind::Other, 0o600, "?rw-------"),
            // Type bits above the permission mask are not shown twice.
            (FileKind::File, 0o100_644, "-rw-r--r--"),
        ];
        for (kind, mode, letters) in cases {
            assert_eq!(mode_letters(kind, mode), letters, "{kind:?} {mode:o}");
        }
    }

    #[test]
    fn links_sizes_and_owners_keep_their_columns() {
        let now = at(MODIFIED + 60);
        let dir = entry(FileKind::Dir, 0o755, 12, 4096);
        assert_eq!(
            long_line("docs", &dir, "1000", "100", now),
            "drwxr-xr-x  12 1000     100          4096 Mar  4 12:34 docs"
        );
        // Wider values widen their column rather than being cut.
        let big = entry(FileKind::File, 0o640, 1234, 12_345_678_901);
        assert_eq!(
            long_line("big.iso", &big, "a-long-owner", "grp", now),
            "-rw-r----- 1234 a-long-owner grp      12345678901 Mar  4 12:34 big.iso"
        );
        let empty = entry(FileKind::File, 0o644, 1, 0);
        assert_eq!(
            long_line("empty", &empty, "ftp", "ftp", now),
            "-rw-r--r--   1 ftp      ftp             0 Mar  4 12:34 empty"
        );
    }

    #[test]
    fn names_are_written_as_they_are() {
        let meta = entry(FileKind::File, 0o644, 1, 5);
        let now = at(MODIFIED + 60);
        for name in ["two  spaces", " leading", "trailing ", "résumé 2024.pdf", "-rw-r--r--"] {
            let text = long_line(name, &meta, "ftp", "ftp", now);
            assert_eq!(
                text.strip_suffix(name),
                Some("-rw-r--r--   1 ftp      ftp             5 Mar  4 12:34 ")
            );
        }
    }
}
