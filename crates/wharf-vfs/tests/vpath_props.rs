//! Property tests: whatever the input, a resolved path is normalized and never leaves `/`.

use proptest::prelude::*;
use wharf_vfs::VPath;

/// Path-like input: a mix of separators, dot components, backslashes and ordinary names.
fn hostile_input() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("".to_owned()),
        Just("..\\".to_owned()),
        Just("%2e%2e".to_owned()),
        "[a-zA-Z0-9 ._~\\\\-]{1,12}",
        "\\PC{1,6}",
    ];
    (any::<bool>(), prop::collection::vec(part, 0..40)).prop_map(|(absolute, parts)| {
        let joined = parts.join("/");
        if absolute { format!("/{joined}") } else { joined }
    })
}

fn check_normalized(path: &VPath) {
    let text = path.as_str();
    assert!(text.starts_with('/'));
    assert!(text.len() <= wharf_vfs::path::MAX_PATH_LEN);
    assert!(text == "/" || !text.ends_with('/'));
    for component in path.components() {
        assert!(!component.is_empty() && component != "." && component != "..", "{text}");
        assert!(component.len() <= wharf_vfs::path::MAX_COMPONENT_LEN);
        assert!(!component.bytes().any(|b| b.is_ascii_control()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn resolved_paths_are_normalized_and_inside_root(cwd in hostile_input(), input in hostile_input()) {
        let Ok(cwd) = VPath::resolve(&VPath::root(), &cwd) else { return Ok(()) };
        if let Ok(path) = VPath::resolve(&cwd, &input) {
            check_normalized(&path);
            // Normalizing again changes nothing, from any starting directory.
            prop_assert_eq!(&VPath::resolve(&VPath::root(), path.as_str()).expect("stable"), &path);
            prop_assert_eq!(&VPath::resolve(&cwd, path.as_str()).expect("stable"), &path);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(cwd in hostile_input(), input in prop::collection::vec(any::<u8>(), 0..300)) {
        let Ok(cwd) = VPath::resolve(&VPath::root(), &cwd) else { return Ok(()) };
        if let Ok(path) = VPath::resolve_bytes(&cwd, &input) {
            check_normalized(&path);
        }
    }

    #[test]
    fn dot_dot_cannot_climb_above_root(depth in 0usize..50, ups in 0usize..80, name in "[a-z]{1,8}") {
        let cwd = VPath::resolve(&VPath::root(), &vec!["d"; depth].join("/")).expect("cwd");
        let input = format!("{}{}", "../".repeat(ups), name);
        let path = VPath::resolve(&cwd, &input).expect("resolves");
        let expected_depth = depth.saturating_sub(ups) + 1;
        prop_assert_eq!(path.depth(), expected_depth);
        prop_assert_eq!(path.file_name(), Some(name.as_str()));
    }

    #[test]
    fn join_and_strip_round_trip(base in hostile_input(), rest in hostile_input()) {
        let (Ok(base), Ok(rest)) = (
            VPath::resolve(&VPath::root(), &base),
            VPath::resolve(&VPath::root(), &rest),
        ) else { return Ok(()) };
        if let Ok(full) = rest.under(&base) {
            prop_assert!(full.starts_with(&base));
            prop_assert_eq!(full.strip_prefix(&base), Some(rest));
        }
    }
}
