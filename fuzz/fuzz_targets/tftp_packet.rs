//! The pure TFTP packet parser: any datagram parses or is refused, never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|datagram: &[u8]| {
    let _ = wharf_tftp::packet::Packet::parse(datagram);
});
