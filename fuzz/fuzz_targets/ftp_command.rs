//! The pure FTP command parser: any line of bytes parses or is refused, never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|line: &[u8]| {
    let _ = wharf_ftp::parse(line);
});
