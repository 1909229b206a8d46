//! The control-connection line decoder, fed the input in arbitrary pieces: it never panics and
//! never holds more than one over-long line's worth of bytes.
#![no_main]

use bytes::BytesMut;
use wharf_ftp::codec::{Decoded, LineDecoder};

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else { return };
    let piece = usize::from(split).max(1);
    let mut decoder = LineDecoder::new();
    let mut buf = BytesMut::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some(decoded) = decoder.decode(&mut buf) {
            if let Decoded::Line(line) = decoded {
                let _ = wharf_ftp::parse(&line);
            }
        }
        assert!(buf.len() <= 8 * 1024 + piece, "the decoder buffers without bound");
    }
});
