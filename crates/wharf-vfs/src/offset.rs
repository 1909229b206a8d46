//! The one rule for byte offsets and lengths that come from clients (`REST`, `RANG`, SFTP
//! read and write offsets, TFTP block numbers): a file position is at most [`MAX_OFFSET`],
//! because the kernel's file offsets (`off_t`) and object stores' sizes are signed 64-bit.
//! Front-ends check a client's number with these functions once, where it enters, and refuse
//! it with their protocol's "invalid argument" reply ([`Error::InvalidOffset`]); nothing
//! downstream wraps or saturates a position.

use crate::error::Error;

/// The largest file position any backend accepts: `i64::MAX`.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// `offset` as a file position, or [`Error::InvalidOffset`] when it is past [`MAX_OFFSET`].
pub fn check_offset(offset: u64) -> Result<u64, Error> {
    if offset > MAX_OFFSET { Err(Error::InvalidOffset(offset)) } else { Ok(offset) }
}

/// Where `len` bytes starting at `offset` end (exclusive), or [`Error::InvalidOffset`] when
/// that is past [`MAX_OFFSET`] (or does not fit in 64 bits at all).
pub fn check_span(offset: u64, len: u64) -> Result<u64, Error> {
    match offset.checked_add(len) {
        Some(end) if end <= MAX_OFFSET => Ok(end),
        _ => Err(Error::InvalidOffset(offset)),
    }
}

/// The start and length of the inclusive byte range `first..=last` (FTP's `RANG`), or
/// [`Error::InvalidOffset`] when `last` is before `first` or past the largest position.
pub fn check_inclusive_range(first: u64, last: u64) -> Result<(u64, u64), Error> {
    if last < first || last >= MAX_OFFSET {
        return Err(Error::InvalidOffset(last));
    }
    Ok((first, last - first + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn offsets_up_to_i64_max_pass() {
        assert_eq!(check_offset(0).ok(), Some(0));
        assert_eq!(check_offset(MAX_OFFSET).ok(), Some(MAX_OFFSET));
        assert_eq!(
            check_offset(MAX_OFFSET + 1).map_err(|e| e.kind()),
            Err(ErrorKind::InvalidOffset)
        );
        assert_eq!(check_offset(u64::MAX).map_err(|e| e.kind()), Err(ErrorKind::InvalidOffset));
    }

    #[test]
    fn spans_may_not_end_past_the_largest_position_or_wrap() {
        assert_eq!(check_span(10, 5).ok(), Some(15));
        assert_eq!(check_span(MAX_OFFSET - 5, 5).ok(), Some(MAX_OFFSET));
        assert!(check_span(MAX_OFFSET - 5, 6).is_err());
        assert!(check_span(u64::MAX, 1).is_err(), "would wrap");
        assert!(check_span(1, u64::MAX).is_err(), "would wrap");
    }

    #[test]
    fn inclusive_ranges() {
        assert_eq!(check_inclusive_range(0, 0).ok(), Some((0, 1)));
        assert_eq!(check_inclusive_range(1000, 1999).ok(), Some((1000, 1000)));
        assert!(check_inclusive_range(5, 4).is_err(), "backwards");
        assert!(check_inclusive_range(0, u64::MAX).is_err(), "the length would overflow");
        assert!(check_inclusive_range(0, MAX_OFFSET).is_err(), "ends past the largest position");
        assert_eq!(check_inclusive_range(0, MAX_OFFSET - 1).ok(), Some((0, MAX_OFFSET)));
    }
}
