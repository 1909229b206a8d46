//! Block numbers: 16 bits on the wire, unbounded inside the server.
//!
//! Transfers count blocks as `u64` from 1. On the wire the number is the low 16 bits, so after
//! block 65535 comes block 0 again (the rollover tftp-hpa, atftp and curl expect), which lets a
//! file of any size through at any block size.

/// The largest file offset a transfer may reach. Offsets are `i64` in the storage layer and in
/// every other protocol, so a transfer that would pass it is refused, never wrapped.
pub(crate) const MAX_OFFSET: u64 = i64::MAX as u64;

/// The file offset just past block `n` (counted from 1, so past any number of rollovers) of a
/// transfer with blocks of `block_size` bytes, when that block holds `len` bytes; `None` past
/// [`MAX_OFFSET`]. The one check of a client's block numbers against file offsets.
pub(crate) fn end_offset(n: u64, block_size: usize, len: usize) -> Option<u64> {
    let before = n.checked_sub(1)?.checked_mul(u64::try_from(block_size).ok()?)?;
    let end = before.checked_add(u64::try_from(len).ok()?)?;
    (end <= MAX_OFFSET).then_some(end)
}

/// The wire number of block `n`.
pub(crate) fn wire(n: u64) -> u16 {
    (n & 0xffff) as u16
}

/// How far `wire` lies after the block numbered `base` (mod 65536).
pub(crate) fn distance_after(base: u64, wire_number: u16) -> u64 {
    u64::from(wire_number.wrapping_sub(wire(base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_numbers_roll_over_to_zero() {
        assert_eq!(wire(1), 1);
        assert_eq!(wire(65_535), 65_535);
        assert_eq!(wire(65_536), 0);
        assert_eq!(wire(65_537), 1);
        assert_eq!(distance_after(65_535, 0), 1);
        assert_eq!(distance_after(65_530, 3), 9);
        assert_eq!(distance_after(10, 10), 0);
    }

    #[test]
    fn offsets_stop_at_i64_max() {
        assert_eq!(end_offset(1, 512, 0), Some(0));
        assert_eq!(end_offset(70_000, 512, 512), Some(70_000 * 512));
        let last_full = MAX_OFFSET / 65_464;
        assert_eq!(end_offset(last_full, 65_464, 65_464), Some(last_full * 65_464));
        assert_eq!(end_offset(last_full + 1, 65_464, 65_464), None);
        assert_eq!(
            end_offset(last_full + 1, 65_464, (MAX_OFFSET % 65_464) as usize),
            Some(MAX_OFFSET)
        );
        assert_eq!(end_offset(u64::MAX, 512, 512), None, "no overflow either");
        assert_eq!(end_offset(0, 512, 0), None);
        assert_eq!(distance_after(10, 9), 65_535);
    }
}
