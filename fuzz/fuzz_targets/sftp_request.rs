//! The SFTP request decoding path (framing, then request decoding) on arbitrary client bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let summary = wharf_sftp::decode_client_bytes(bytes);
    assert_eq!(summary.packets, summary.requests + summary.malformed);
});
