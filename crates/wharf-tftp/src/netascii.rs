//! Netascii (RFC 764, as used by RFC 1350): the text form of a transfer, converted to and from
//! the share's Unix line ends.
//!
//! On the wire a line ends with CR LF and a lone carriage return is CR NUL. Locally a line
//! ends with LF. So sending turns LF into CR LF and CR into CR NUL; receiving turns CR LF into
//! LF and CR NUL into CR. Every local file survives the round trip byte for byte. A CR followed
//! by anything else on the wire is not valid netascii; it is kept as it came rather than
//! dropped, so nothing a device sends is lost.

use bytes::{Bytes, BytesMut};

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;

/// Converts local bytes to netascii. Stateless: every byte converts on its own.
pub fn encode(local: &[u8]) -> Bytes {
    let extra = local.iter().filter(|&&b| b == CR || b == LF).count();
    if extra == 0 {
        return Bytes::copy_from_slice(local);
    }
    let mut out = BytesMut::with_capacity(local.len() + extra);
    let mut start = 0;
    for (i, &byte) in local.iter().enumerate() {
        let pair: &[u8] = match byte {
            LF => &[CR, LF],
            CR => &[CR, NUL],
            _ => continue,
        };
        out.extend_from_slice(&local[start..i]);
        out.extend_from_slice(pair);
        start = i + 1;
    }
    out.extend_from_slice(&local[start..]);
    out.freeze()
}

/// Converts netascii back to local bytes, packet by packet: a CR at the end of one packet is
/// held until the next packet says what it meant.
#[derive(Debug, Default)]
pub struct Decoder {
    pending_cr: bool,
}

impl Decoder {
    /// A decoder at the start of a transfer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the local form of `wire` to `out`.
    pub fn decode_into(&mut self, wire: &[u8], out: &mut BytesMut) {
        out.reserve(wire.len() + 1);
        let mut rest = wire;
        loop {
            if self.pending_cr {
                let Some((&first, tail)) = rest.split_first() else { return };
                self.pending_cr = false;
                rest = tail;
                match first {
                    LF => out.extend_from_slice(&[LF]),
                    NUL => out.extend_from_slice(&[CR]),
                    CR => {
                        // Not valid netascii: keep the first CR, the second decides later.
                        out.extend_from_slice(&[CR]);
                        self.pending_cr = true;
                        continue;
                    }
                    other => out.extend_from_slice(&[CR, other]),
                }
            }
            match rest.iter().position(|&b| b == CR) {
                None => {
                    out.extend_from_slice(rest);
                    return;
                }
                Some(at) => {
                    out.extend_from_slice(&rest[..at]);
                    rest = &rest[at + 1..];
                    self.pending_cr = true;
                }
            }
        }
    }

    /// Ends the transfer: a CR still held was a lone CR at the very end.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if std::mem::take(&mut self.pending_cr) {
            out.extend_from_slice(&[CR]);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut decoder = Decoder::new();
        let mut out = BytesMut::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, wire.len());
            decoder.decode_into(&wire[start..cut], &mut out);
            start = cut;
        }
        decoder.decode_into(&wire[start..], &mut out);
        decoder.finish(&mut out);
        out.to_vec()
    }

    #[test]
    fn encodes_line_ends_and_lone_carriage_returns() {
        assert_eq!(&encode(b"a\nb\rc")[..], b"a\r\nb\r\0c");
        assert_eq!(&encode(b"dos\r\n")[..], b"dos\r\0\r\n");
        assert_eq!(&encode(b"plain")[..], b"plain");
        assert_eq!(&encode(b"")[..], b"");
    }

    #[test]
    fn decodes_line_ends_across_packet_boundaries() {
        assert_eq!(decode_in_pieces(b"a\r\nb\r\0c", &[]), b"a\nb\rc");
        assert_eq!(decode_in_pieces(b"a\r\nb", &[2]), b"a\nb");
        assert_eq!(decode_in_pieces(b"a\r\0b", &[2]), b"a\rb");
        assert_eq!(decode_in_pieces(b"end\r", &[]), b"end\r");
        assert_eq!(decode_in_pieces(b"x\r\r\ny", &[2, 3]), b"x\r\ny");
        assert_eq!(decode_in_pieces(b"bad\rx", &[]), b"bad\rx");
        assert_eq!(decode_in_pieces(b"a\r", &[2, 2, 2]), b"a\r");
    }

    proptest! {
        #[test]
        fn round_trip_is_exact(
            local in prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), any::<u8>()], 0..400),
            mut cuts in prop::collection::vec(0usize..800, 0..6),
        ) {
            let wire = encode(&local);
            cuts.sort_unstable();
            prop_assert_eq!(decode_in_pieces(&wire, &cuts), local);
        }

        #[test]
        fn decoding_does_not_depend_on_packet_boundaries(
            wire in prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), any::<u8>()], 0..400),
            mut cuts in prop::collection::vec(0usize..400, 0..6),
        ) {
            cuts.sort_unstable();
            prop_assert_eq!(decode_in_pieces(&wire, &cuts), decode_in_pieces(&wire, &[]));
        }
    }
}
