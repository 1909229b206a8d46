//! Object keys of tree paths, relative to the backend's prefix (OpenDAL's `root`): a file
//! `a/b` is the key `a/b`, the folder `a/b` the prefix `a/b/`, the root the empty prefix.

use crate::path::VPath;

/// The key of the file `path` of a tree whose keys start with `base` (empty, or ending in
/// `/`).
pub(super) fn file_key(base: &str, path: &VPath) -> String {
    format!("{base}{}", path.relative())
}

/// The prefix of the folder `path` (its marker object's key), ending in `/`; the tree's own
/// root is `base`, or `/` (OpenDAL's name for the root) when that is empty.
pub(super) fn dir_key(base: &str, path: &VPath) -> String {
    match (path.is_root(), base.is_empty()) {
        (true, true) => "/".to_owned(),
        (true, false) => base.to_owned(),
        (false, _) => format!("{base}{}/", path.relative()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders() {
        let path = VPath::resolve(&VPath::root(), "/a/b").expect("path");
        assert_eq!(file_key("", &path), "a/b");
        assert_eq!(dir_key("", &path), "a/b/");
        assert_eq!(dir_key("", &VPath::root()), "/");
        assert_eq!(file_key("acme/", &path), "acme/a/b");
        assert_eq!(dir_key("acme/", &path), "acme/a/b/");
        assert_eq!(dir_key("acme/", &VPath::root()), "acme/");
    }
}
