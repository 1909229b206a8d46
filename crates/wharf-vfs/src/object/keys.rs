//! Object keys of tree paths, relative to the backend's prefix (OpenDAL's `root`): a file
//! `a/b` is the key `a/b`, the folder `a/b` the prefix `a/b/`, the root the empty prefix.

use crate::path::VPath;

/// The key of the file `path`.
pub(super) fn file_key(path: &VPath) -> String {
    path.relative().to_owned()
}

/// The prefix of the folder `path` (its marker object's key), ending in `/`.
pub(super) fn dir_key(path: &VPath) -> String {
    if path.is_root() { "/".to_owned() } else { format!("{}/", path.relative()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders() {
        let path = VPath::resolve(&VPath::root(), "/a/b").expect("path");
        assert_eq!(file_key(&path), "a/b");
        assert_eq!(dir_key(&path), "a/b/");
        assert_eq!(dir_key(&VPath::root()), "/");
    }
}
