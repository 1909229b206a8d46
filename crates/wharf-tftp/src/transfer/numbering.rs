//! Block numbers: 16 bits on the wire, unbounded inside the server.
//!
//! Transfers count blocks as `u64` from 1. On the wire the number is the low 16 bits, so after
//! block 65535 comes block 0 again (the rollover tftp-hpa, atftp and curl expect), which lets a
//! file of any size through at any block size.

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
        assert_eq!(distance_after(10, 9), 65_535);
    }
}
