//! The control-connection codec: raw bytes in, command lines out, with no I/O.
//!
//! Lines end in CRLF; a bare LF is accepted too, since some clients send it. Telnet command
//! sequences (RFC 854) that clients put before `ABOR` or send out of habit are removed:
//! `IAC IAC` is a literal 0xFF, `IAC WILL/WONT/DO/DONT <option>` and `IAC <command>` vanish,
//! and a lone `IAC` before an ordinary byte (left behind when the kernel took the urgent
//! `DM` byte out of band) is dropped without eating that byte.
//!
//! A line longer than [`MAX_LINE_LEN`] is reported once as [`Decoded::TooLong`] and the rest
//! of it is discarded up to its end, so a client cannot make the server buffer without bound.

use bytes::{Buf, BytesMut};

/// Longest command line accepted, in bytes, without its line ending.
pub const MAX_LINE_LEN: usize = 4096;

const IAC: u8 = 255;
const WILL: u8 = 251;
const DONT: u8 = 254;
/// Telnet commands are the byte values from 240 (SE) up; below that, IAC is stray.
const FIRST_TELNET_COMMAND: u8 = 240;

/// What the decoder found in the buffered bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// One command line, without its line ending or Telnet sequences.
    Line(Vec<u8>),
    /// A line exceeded [`MAX_LINE_LEN`]; it is being discarded up to its end.
    TooLong,
}

/// Splits the control connection's byte stream into command lines.
#[derive(Debug, Default)]
pub struct LineDecoder {
    /// Inside an over-long line that was already reported: drop bytes up to the next LF.
    discarding: bool,
}

impl LineDecoder {
    /// A decoder at the start of a line.
    pub fn new() -> LineDecoder {
        LineDecoder::default()
    }

    /// Takes the next complete line (or over-long line report) out of `buf`; `None` when more
    /// bytes are needed. Bytes of an incomplete line stay in `buf` unless they already exceed
    /// the limit.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Decoded> {
        loop {
            match buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let raw = buf.split_to(end + 1);
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let mut line = &raw[..end];
                    if let Some(stripped) = line.strip_suffix(b"\r") {
                        line = stripped;
                    }
                    if line.len() > MAX_LINE_LEN {
                        return Some(Decoded::TooLong);
                    }
                    return Some(Decoded::Line(strip_telnet(line)));
                }
                None => {
                    // One extra byte for a CR that may precede the coming LF.
                    if buf.len() > MAX_LINE_LEN + 1 {
                        buf.advance(buf.len());
                        if !self.discarding {
                            self.discarding = true;
                            return Some(Decoded::TooLong);
                        }
                    }
                    return None;
                }
            }
        }
    }

    /// Forgets a partly discarded line (after the stream under the codec was replaced).
    pub fn reset(&mut self) {
        self.discarding = false;
    }
}

/// Removes Telnet command sequences from one line.
pub fn strip_telnet(line: &[u8]) -> Vec<u8> {
    if !line.contains(&IAC) {
        return line.to_vec();
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let byte = line[i];
        if byte != IAC {
            out.push(byte);
            i += 1;
            continue;
        }
        match line.get(i + 1).copied() {
            Some(IAC) => {
                out.push(IAC);
                i += 2;
            }
            Some(WILL..=DONT) => i += 3,
            Some(command) if command >= FIRST_TELNET_COMMAND => i += 2,
            // A stray IAC (or one at the end of the line): drop it alone.
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut LineDecoder, buf: &mut BytesMut) -> Vec<Decoded> {
        std::iter::from_fn(|| decoder.decode(buf)).collect()
    }

    fn line(text: &[u8]) -> Decoded {
        Decoded::Line(text.to_vec())
    }

    #[test]
    fn crlf_and_bare_lf_lines() {
        let mut decoder = LineDecoder::new();
        let mut buf = BytesMut::from(&b"USER a\r\nPASS b\nNOOP"[..]);
        assert_eq!(decode_all(&mut decoder, &mut buf), vec![line(b"USER a"), line(b"PASS b")]);
        assert_eq!(&buf[..], b"NOOP", "the incomplete line waits");
        buf.extend_from_slice(b"\r\n");
        assert_eq!(decoder.decode(&mut buf), Some(line(b"NOOP")));
    }

    #[test]
    fn telnet_sequences_are_removed() {
        assert_eq!(strip_telnet(b"\xff\xf4\xff\xf2ABOR"), b"ABOR");
        assert_eq!(strip_telnet(b"\xff\xfd\x01NOOP"), b"NOOP");
        assert_eq!(strip_telnet(b"a\xff\xffb"), b"a\xffb");
        // DM taken out of band leaves `IAC IP IAC` before the command.
        assert_eq!(strip_telnet(b"\xff\xf4\xffABOR"), b"ABOR");
        assert_eq!(strip_telnet(b"NOOP\xff"), b"NOOP");
    }

    #[test]
    fn over_long_line_is_reported_once_and_skipped() {
        let mut decoder = LineDecoder::new();
        let mut buf = BytesMut::from(&vec![b'x'; MAX_LINE_LEN + 10][..]);
        assert_eq!(decoder.decode(&mut buf), Some(Decoded::TooLong));
        assert!(buf.is_empty(), "the excess is not kept");
        buf.extend_from_slice(&vec![b'y'; MAX_LINE_LEN + 10]);
        assert_eq!(decoder.decode(&mut buf), None, "still the same line");
        buf.extend_from_slice(b"tail\r\nNOOP\r\n");
        assert_eq!(decoder.decode(&mut buf), Some(line(b"NOOP")));
    }

    #[test]
    fn line_exactly_at_the_limit_is_accepted() {
        let mut decoder = LineDecoder::new();
        let mut text = vec![b'a'; MAX_LINE_LEN];
        text.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&text[..]);
        assert_eq!(decoder.decode(&mut buf), Some(line(&vec![b'a'; MAX_LINE_LEN])));
        let mut long = vec![b'a'; MAX_LINE_LEN + 1];
        long.push(b'\n');
        let mut buf = BytesMut::from(&long[..]);
        assert_eq!(decoder.decode(&mut buf), Some(Decoded::TooLong));
        assert_eq!(decoder.decode(&mut buf), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn lines_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(
            proptest::collection::vec(
                any::<u8>()
                    .prop_filter("no line ends or IAC", |b| !matches!(*b, b'\r' | b'\n' | IAC)),
                0..120,
            ),
            1..12,
        )
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_the_lines(lines in lines_strategy(),
                                              cuts in proptest::collection::vec(1usize..64, 1..40)) {
            let mut wire = Vec::new();
            for line in &lines {
                wire.extend_from_slice(line);
                wire.extend_from_slice(b"\r\n");
            }
            let mut decoder = LineDecoder::new();
            let mut buf = BytesMut::new();
            let mut decoded = Vec::new();
            let mut rest = &wire[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap_or(&1)).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                while let Some(item) = decoder.decode(&mut buf) {
                    decoded.push(item);
                }
            }
            let expected: Vec<Decoded> = lines.into_iter().map(Decoded::Line).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn random_bytes_stay_bounded(chunks in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..3000), 0..8)) {
            let mut decoder = LineDecoder::new();
            let mut buf = BytesMut::new();
            for chunk in chunks {
                buf.extend_from_slice(&chunk);
                while let Some(item) = decoder.decode(&mut buf) {
                    if let Decoded::Line(line) = item {
                        prop_assert!(line.len() <= MAX_LINE_LEN);
                        prop_assert!(!line.contains(&b'\n'));
                    }
                }
                prop_assert!(buf.len() <= MAX_LINE_LEN + 1, "buffer bounded: {}", buf.len());
            }
        }
    }
}
