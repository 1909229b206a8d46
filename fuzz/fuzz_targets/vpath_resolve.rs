//! Path resolution: whatever the working directory and the input, the result is normalized and
//! never names anything above `/`.
#![no_main]

use wharf_vfs::VPath;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    // The first part (up to a 0xff byte) becomes the working directory.
    let (cwd, rest) = match input.iter().position(|&b| b == 0xff) {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (&[][..], input),
    };
    let Ok(cwd) = VPath::resolve_bytes(&VPath::root(), cwd) else { return };
    let Ok(path) = VPath::resolve_bytes(&cwd, rest) else { return };
    let text = path.as_str();
    assert!(text.starts_with('/'));
    assert!(text.len() <= wharf_vfs::path::MAX_PATH_LEN);
    for component in path.components() {
        assert!(!component.is_empty() && component != "." && component != "..");
    }
    assert_eq!(VPath::resolve(&VPath::root(), text).ok().as_ref(), Some(&path));
});
