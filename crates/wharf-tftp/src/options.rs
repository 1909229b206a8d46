//! Option negotiation (RFC 2347) for `blksize` (RFC 2348), `timeout` and `tsize` (RFC 2349)
//! and `windowsize` (RFC 7440). Pure: requested options and limits in, settings and the OACK
//! out.
//!
//! The server never invents an option the client did not ask for, and it answers only
//! options it understands with a value it accepts. Values outside what the RFCs allow
//! (`blksize 0`, `timeout 900`, `windowsize 0`, text where a number belongs) make the server
//! ignore that option, as RFC 2347 permits; a `blksize` or `windowsize` above the configured
//! maximum is lowered to it, which RFC 2348 and RFC 7440 allow the server to do.

use std::time::Duration;

use crate::packet::{MAX_BLOCK_SIZE, TransferMode, WireOption};

/// Block size without the `blksize` option (RFC 1350).
pub const DEFAULT_BLOCK_SIZE: u16 = 512;

/// Smallest block size RFC 2348 allows.
pub const MIN_BLOCK_SIZE: u16 = 8;

/// What a receiver's socket buffer holds unless it asks for more: Linux's default
/// (`net.core.rmem_default`, 212,992 bytes). RFC 7440 receivers ACK only after a whole window
/// (or on a gap), so a window sent in one burst must fit in it: whatever the receiver cannot
/// read while the burst arrives is dropped by its kernel, and a window that loses its tail
/// costs a whole retransmission timeout. Measured with atftp on loopback: three 64 KiB blocks
/// fit, four lose the last one about every other window, sixteen (what atftp asks for with
/// `--option "windowsize 16"`) ran at 0.25 MB/s.
pub const RECEIVE_BUFFER_BYTES: usize = 212_992;

/// What a receiver's kernel charges its socket buffer for one DATA packet of `block_size`
/// bytes: the datagram with its UDP/IP headers (IPv6's, the larger) and the kernel's
/// bookkeeping, in a buffer rounded up to a power of two while it is smaller than 16 KiB,
/// and in page fragments (about a quarter more) above. An estimate on the safe side.
pub fn receive_charge(block_size: u16) -> usize {
    const HEADERS: usize = crate::packet::DATA_HEADER_LEN + 8 + 40;
    const SHARED_INFO: usize = 320;
    const SKB: usize = 256;
    let datagram = usize::from(block_size) + HEADERS;
    if datagram + SHARED_INFO <= 16 * 1024 {
        (datagram + SHARED_INFO).next_power_of_two() + SKB
    } else {
        datagram + datagram / 4 + SKB
    }
}

/// The most blocks of `block_size` bytes in one window: what a default receive buffer holds
/// ([`RECEIVE_BUFFER_BYTES`] / [`receive_charge`]), at least one. 166 blocks of 512 bytes, 92
/// of 1468, 12 of 8192, 2 of 65464. Since blocks are kept until acknowledged, this also bounds
/// what one window holds in memory: less than [`RECEIVE_BUFFER_BYTES`].
pub fn window_cap(block_size: u16) -> u16 {
    let cap = RECEIVE_BUFFER_BYTES / receive_charge(block_size);
    u16::try_from(cap).unwrap_or(u16::MAX).max(1)
}

/// Largest `timeout` RFC 2349 allows, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 255;

/// Which way the data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A read request: the server sends.
    Read,
    /// A write request: the server receives.
    Write,
}

/// What the server allows clients to negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionLimits {
    /// Largest `blksize` granted.
    pub max_block_size: u16,
    /// Largest `windowsize` granted.
    pub max_window_size: u16,
}

/// The settings a transfer runs with once negotiation is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSettings {
    /// Bytes per DATA packet.
    pub block_size: u16,
    /// DATA packets sent before an ACK is awaited (1 = lock-step, RFC 1350).
    pub window_size: u16,
    /// Retransmission timeout the client asked for, if accepted.
    pub timeout: Option<Duration>,
    /// The size announced by a write request's `tsize`.
    pub announced_size: Option<u64>,
}

/// The outcome of negotiation: settings, and the options to confirm in an OACK (empty: no
/// OACK is sent, the transfer starts as in RFC 1350).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiation {
    /// What the transfer runs with.
    pub settings: TransferSettings,
    /// Accepted options, names lowercased, in the order the client sent them.
    pub accepted: Vec<(&'static str, String)>,
}

/// The options this server understands, as named in its OACKs.
const KNOWN_OPTIONS: [&str; 4] = ["blksize", "windowsize", "timeout", "tsize"];

fn parse_number(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Negotiates `requested` for a transfer in `direction` and `mode`.
///
/// `file_size` is the size of the file a read request sends; `tsize` is answered with it only
/// in octet mode, since the netascii size is unknown before the whole file is converted, and
/// only when it is not zero (see below).
pub fn negotiate(
    direction: Direction,
    mode: TransferMode,
    requested: &[WireOption<'_>],
    limits: OptionLimits,
    file_size: Option<u64>,
) -> Negotiation {
    let mut settings = TransferSettings {
        block_size: DEFAULT_BLOCK_SIZE,
        window_size: 1,
        timeout: None,
        announced_size: None,
    };
    let mut accepted: Vec<(&'static str, String)> = Vec::new();
    for option in requested {
        let Some(name) = KNOWN_OPTIONS.iter().find(|known| option.name.eq_ignore_ascii_case(known))
        else {
            continue;
        };
        // A repeated option counts once: the first acceptable occurrence wins.
        if accepted.iter().any(|(seen, _)| seen == name) {
            continue;
        }
        let Some(value) = parse_number(option.value) else { continue };
        let granted = match *name {
            "blksize" if value >= u64::from(MIN_BLOCK_SIZE) => {
                let size = value.min(u64::from(limits.max_block_size)).min(MAX_BLOCK_SIZE as u64);
                let size = u16::try_from(size).unwrap_or(DEFAULT_BLOCK_SIZE);
                settings.block_size = size;
                u64::from(size)
            }
            "windowsize" if value >= 1 => {
                let size = u16::try_from(value.min(u64::from(limits.max_window_size))).unwrap_or(1);
                settings.window_size = size;
                u64::from(size)
            }
            "timeout" if (1..=MAX_TIMEOUT_SECS).contains(&value) => {
                settings.timeout = Some(Duration::from_secs(value));
                value
            }
            "tsize" => match (direction, mode, file_size) {
                // An empty file's size is not announced: curl (7.88 at least) takes
                // `tsize 0` in an OACK for an illegal operation and aborts the download.
                (Direction::Read, TransferMode::Octet, Some(size)) if value == 0 && size > 0 => {
                    size
                }
                (Direction::Write, _, _) => {
                    settings.announced_size = Some(value);
                    value
                }
                _ => continue,
            },
            _ => continue,
        };
        accepted.push((name, granted.to_string()));
    }
    // A window fits what the receiver's socket buffer holds (and so bounds the memory of the
    // blocks kept for retransmission). RFC 7440 fixes the window for the whole transfer, so
    // this is where it starts small when blocks are large.
    let window_cap = window_cap(settings.block_size);
    if settings.window_size > window_cap {
        settings.window_size = window_cap;
        for (name, value) in &mut accepted {
            if *name == "windowsize" {
                *value = window_cap.to_string();
            }
        }
    }
    Negotiation { settings, accepted }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: OptionLimits = OptionLimits { max_block_size: 65_464, max_window_size: 64 };

    fn opts<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<WireOption<'a>> {
        pairs.iter().map(|(name, value)| WireOption { name, value }).collect()
    }

    fn read(pairs: &[(&str, &str)], size: Option<u64>) -> Negotiation {
        negotiate(Direction::Read, TransferMode::Octet, &opts(pairs), LIMITS, size)
    }

    fn accepted(n: &Negotiation) -> Vec<(&str, &str)> {
        n.accepted.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn no_options_means_rfc_1350() {
        let n = read(&[], Some(10));
        assert!(n.accepted.is_empty());
        assert_eq!(n.settings.block_size, 512);
        assert_eq!(n.settings.window_size, 1);
        assert_eq!(n.settings.timeout, None);
    }

    #[test]
    fn grants_valid_options_case_insensitively() {
        let n = read(
            &[("BLKSIZE", "1468"), ("tsize", "0"), ("Timeout", "3"), ("windowsize", "8")],
            Some(4096),
        );
        assert_eq!(
            accepted(&n),
            vec![("blksize", "1468"), ("tsize", "4096"), ("timeout", "3"), ("windowsize", "8")]
        );
        assert_eq!(n.settings.block_size, 1468);
        assert_eq!(n.settings.window_size, 8);
        assert_eq!(n.settings.timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn lowers_sizes_to_the_limits() {
        let limits = OptionLimits { max_block_size: 1024, max_window_size: 4 };
        let n = negotiate(
            Direction::Read,
            TransferMode::Octet,
            &opts(&[("blksize", "65464"), ("windowsize", "65535")]),
            limits,
            None,
        );
        assert_eq!(accepted(&n), vec![("blksize", "1024"), ("windowsize", "4")]);
        let n = read(&[("blksize", "99999999")], None);
        assert_eq!(accepted(&n), vec![("blksize", "65464")]);
    }

    #[test]
    fn windows_are_bounded_in_bytes() {
        let limits = OptionLimits { max_block_size: 65_464, max_window_size: 1024 };
        let n = negotiate(
            Direction::Read,
            TransferMode::Octet,
            &opts(&[("windowsize", "1000"), ("blksize", "65464")]),
            limits,
            None,
        );
        assert_eq!(accepted(&n), vec![("windowsize", "2"), ("blksize", "65464")]);
        assert_eq!(n.settings.window_size, 2);
        let n = negotiate(
            Direction::Read,
            TransferMode::Octet,
            &opts(&[("windowsize", "1000"), ("blksize", "1468")]),
            limits,
            None,
        );
        assert_eq!(n.settings.window_size, 92);
        // Without blksize: 512-byte blocks.
        let n = negotiate(
            Direction::Read,
            TransferMode::Octet,
            &opts(&[("windowsize", "1000")]),
            limits,
            None,
        );
        assert_eq!(n.settings.window_size, 166);
    }

    /// atftp's `--option "blksize 65464" --option "windowsize 16"` ran at 0.25 MB/s: 16 blocks
    /// of 64 KiB overrun its receive buffer in every window. The OACK now grants what fits.
    #[test]
    fn large_blocks_get_a_window_that_fits_a_receive_buffer() {
        let n = read(&[("blksize", "65464"), ("windowsize", "16")], Some(1 << 26));
        assert_eq!(accepted(&n), vec![("blksize", "65464"), ("windowsize", "2")]);
        assert_eq!(window_cap(8192), 12);
        assert_eq!(window_cap(1468), 92);
        assert_eq!(window_cap(8), 277);
        for block_size in [8u16, 512, 1024, 1468, 1500, 4096, 8192, 16_000, 32_768, 65_464] {
            let cap = usize::from(window_cap(block_size));
            assert!(cap * receive_charge(block_size) <= RECEIVE_BUFFER_BYTES, "{block_size}");
            assert!(cap * usize::from(block_size) < RECEIVE_BUFFER_BYTES, "{block_size}");
        }
    }

    #[test]
    fn ignores_absurd_values_and_unknown_options() {
        let n = read(
            &[
                ("blksize", "7"),
                ("blksize", "-1"),
                ("windowsize", "0"),
                ("timeout", "0"),
                ("timeout", "256"),
                ("timeout", "1.5"),
                ("tsize", "12"),
                ("multicast", "1"),
                ("blksize", "99999999999999999999999"),
                ("windowsize", ""),
            ],
            Some(5),
        );
        assert!(n.accepted.is_empty(), "{:?}", n.accepted);
        assert_eq!(n.settings.block_size, 512);
        assert_eq!(n.settings.window_size, 1);
    }

    #[test]
    fn the_first_of_repeated_options_wins() {
        let n = read(&[("blksize", "1024"), ("blksize", "2048")], None);
        assert_eq!(accepted(&n), vec![("blksize", "1024")]);
        assert_eq!(n.settings.block_size, 1024);
    }

    #[test]
    fn tsize_depends_on_direction_and_mode() {
        let netascii = negotiate(
            Direction::Read,
            TransferMode::Netascii,
            &opts(&[("tsize", "0")]),
            LIMITS,
            Some(100),
        );
        assert!(netascii.accepted.is_empty());
        let unknown_size = read(&[("tsize", "0")], None);
        assert!(unknown_size.accepted.is_empty());
        let empty_file = read(&[("tsize", "0"), ("blksize", "1024")], Some(0));
        assert_eq!(accepted(&empty_file), vec![("blksize", "1024")]);
        let write = negotiate(
            Direction::Write,
            TransferMode::Octet,
            &opts(&[("tsize", "123456")]),
            LIMITS,
            None,
        );
        assert_eq!(accepted(&write), vec![("tsize", "123456")]);
        assert_eq!(write.settings.announced_size, Some(123_456));
    }

    proptest! {
        #[test]
        fn settings_always_stay_in_range(
            pairs in prop::collection::vec(
                (prop_oneof![Just("blksize"), Just("windowsize"), Just("timeout"), Just("tsize")],
                 "[0-9]{0,8}"),
                0..8),
            max_block in 8u16..=65464,
            max_window in 1u16..=1024,
        ) {
            let requested: Vec<WireOption<'_>> =
                pairs.iter().map(|(n, v)| WireOption { name: n, value: v }).collect();
            let limits = OptionLimits { max_block_size: max_block, max_window_size: max_window };
            let n = negotiate(Direction::Read, TransferMode::Octet, &requested, limits, Some(1));
            prop_assert!(n.settings.block_size >= MIN_BLOCK_SIZE.min(512));
            prop_assert!(n.settings.block_size <= max_block.max(512));
            prop_assert!(n.settings.window_size >= 1 && n.settings.window_size <= max_window.max(1));
            prop_assert!(
                usize::from(n.settings.window_size) * usize::from(n.settings.block_size)
                    < RECEIVE_BUFFER_BYTES
            );
            if let Some(t) = n.settings.timeout {
                prop_assert!(t >= Duration::from_secs(1) && t <= Duration::from_secs(255));
            }
            // Every accepted option was requested.
            for (name, _) in &n.accepted {
                prop_assert!(pairs.iter().any(|(n, _)| n == name));
            }
        }
    }
}
