//! ASCII type conversion (`TYPE A`): files are stored with Unix line ends (LF) and travel
//! with network line ends (CRLF).
//!
//! Both directions keep state across chunks, since a CR and its LF may arrive in different
//! reads. Downloads turn every LF that is not already preceded by CR into CRLF, so a file that
//! already holds CRLF is not doubled; uploads turn CRLF into LF and keep a CR that is not
//! followed by LF.

/// LF -> CRLF for data sent to the client.
#[derive(Debug, Default, Clone)]
pub struct ToNetwork {
    last_was_cr: bool,
}

impl ToNetwork {
    /// A converter at the start of a file.
    pub fn new() -> ToNetwork {
        ToNetwork::default()
    }

    /// Appends the network form of `input` to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &byte in input {
            if byte == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(byte);
            self.last_was_cr = byte == b'\r';
        }
    }

    /// How many bytes the network form of `input` has, without building it (ASCII `SIZE`).
    pub fn converted_len(&mut self, input: &[u8]) -> u64 {
        let mut len = input.len() as u64;
        for &byte in input {
            if byte == b'\n' && !self.last_was_cr {
                len += 1;
            }
            self.last_was_cr = byte == b'\r';
        }
        len
    }
}

/// CRLF -> LF for data received from the client.
#[derive(Debug, Default, Clone)]
pub struct FromNetwork {
    /// The previous chunk ended in CR, not yet written: an LF may follow.
    pending_cr: bool,
}

impl FromNetwork {
    /// A converter at the start of a file.
    pub fn new() -> FromNetwork {
        FromNetwork::default()
    }

    /// Appends the stored form of `input` to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 1);
        for &byte in input {
            if self.pending_cr {
                self.pending_cr = false;
                if byte != b'\n' {
                    out.push(b'\r');
                }
            }
            if byte == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(byte);
            }
        }
    }

    /// Appends what is still held back at the end of the upload (a final lone CR).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_network(chunks: &[&[u8]]) -> Vec<u8> {
        let mut conv = ToNetwork::new();
        let mut out = Vec::new();
        for chunk in chunks {
            conv.convert(chunk, &mut out);
        }
        out
    }

    fn from_network(chunks: &[&[u8]]) -> Vec<u8> {
        let mut conv = FromNetwork::new();
        let mut out = Vec::new();
        for chunk in chunks {
            conv.convert(chunk, &mut out);
        }
        conv.finish(&mut out);
        out
    }

    #[test]
    fn download_adds_cr_once() {
        assert_eq!(to_network(&[b"a\nb\r\nc\n"]), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_network(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(to_network(&[b"\n\n"]), b"\r\n\r\n");
    }

    #[test]
    fn upload_removes_cr_before_lf_only() {
        assert_eq!(from_network(&[b"a\r\nb\rc\r\n"]), b"a\nb\rc\n");
        assert_eq!(from_network(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(from_network(&[b"end\r"]), b"end\r");
        assert_eq!(from_network(&[b"\r", b"\r", b"\n"]), b"\r\n");
    }

    proptest! {
        #[test]
        fn round_trip_of_unix_text(text in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'a'), Just(b' '), any::<u8>()
                .prop_filter("no CR", |b| *b != b'\r')], 0..400),
            split in 0usize..400) {
            let split = split.min(text.len());
            let wire = to_network(&[&text[..split], &text[split..]]);
            prop_assert!(!wire.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
            let back = from_network(&[&wire]);
            prop_assert_eq!(&back, &text);
            let mut counter = ToNetwork::new();
            prop_assert_eq!(counter.converted_len(&text), wire.len() as u64);
        }

        #[test]
        fn chunking_never_changes_the_result(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&data[start..cut]);
                start = cut;
            }
            chunks.push(&data[start..]);
            prop_assert_eq!(to_network(&chunks), to_network(&[&data]));
            prop_assert_eq!(from_network(&chunks), from_network(&[&data]));
        }
    }
}
