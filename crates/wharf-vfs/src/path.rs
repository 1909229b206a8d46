//! Virtual paths: the one normalized path type every protocol speaks after parsing.
//!
//! Protocol input (an FTP argument, an SFTP filename, a TFTP request) becomes a [`VPath`] in
//! exactly one place, [`VPath::resolve`]. A `VPath` is always absolute, never contains `.` or
//! `..` components, never contains a NUL or control byte, and never names anything above `/`.
//! Backends and the permission layer rely on these facts instead of re-checking them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest component (file or directory name) a path may hold, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;

/// Longest path, as given and once normalized, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// Why protocol input could not become a [`VPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The input held a NUL byte or another control character.
    #[error("path contains control character 0x{byte:02x}")]
    ControlCharacter {
        /// The offending byte.
        byte: u8,
    },
    /// The input was not valid UTF-8.
    #[error("path is not valid UTF-8")]
    NotUtf8,
    /// One component was longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("a path component is longer than {MAX_COMPONENT_LEN} bytes")]
    ComponentTooLong,
    /// The input or the normalized path was longer than [`MAX_PATH_LEN`] bytes.
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    PathTooLong,
    /// Resolving the path on storage met too many symbolic links (or a loop).
    #[error("too many levels of symbolic links")]
    TooManySymlinks,
    /// A name was required but the input was empty or a directory reference (`/`, `.`, `..`).
    #[error("a file name is required")]
    NotAName,
}

/// A normalized absolute virtual path such as `/` or `/firmware/phone.bin`.
///
/// Invariants: starts with `/`; components are separated by exactly one `/`; no trailing `/`
/// except for the root; no component is empty, `.` or `..`; no control bytes; length limits
/// hold. Construct it with [`VPath::resolve`], [`VPath::root`] or [`VPath::join`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VPath(String);

impl VPath {
    /// The root directory `/`.
    pub fn root() -> Self {
        VPath("/".to_owned())
    }

    /// Turns protocol input into a path, relative to `cwd` unless the input starts with `/`.
    ///
    /// `.` components are dropped and `..` removes the previous component, stopping at `/`
    /// (as a shell does at the root), so no input can name anything above `/`. A backslash is an
    /// ordinary character of a name, never a separator. Empty input means `cwd` itself.
    pub fn resolve(cwd: &VPath, input: &str) -> Result<VPath, PathError> {
        if input.len() > MAX_PATH_LEN {
            return Err(PathError::PathTooLong);
        }
        if let Some(byte) = input.bytes().find(|b| b.is_ascii_control()) {
            return Err(PathError::ControlCharacter { byte });
        }
        let mut parts: Vec<&str> =
            if input.starts_with('/') { Vec::new() } else { cwd.components().collect() };
        for part in input.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name if name.len() > MAX_COMPONENT_LEN => return Err(PathError::ComponentTooLong),
                name => parts.push(name),
            }
        }
        Self::from_components(&parts)
    }

    /// Like [`VPath::resolve`] for input that arrives as raw bytes (FTP, SFTP, TFTP).
    pub fn resolve_bytes(cwd: &VPath, input: &[u8]) -> Result<VPath, PathError> {
        if input.len() > MAX_PATH_LEN {
            return Err(PathError::PathTooLong);
        }
        if let Some(&byte) = input.iter().find(|b| b.is_ascii_control()) {
            return Err(PathError::ControlCharacter { byte });
        }
        let text = std::str::from_utf8(input).map_err(|_| PathError::NotUtf8)?;
        Self::resolve(cwd, text)
    }

    fn from_components(parts: &[&str]) -> Result<VPath, PathError> {
        let len: usize = parts.iter().map(|p| p.len() + 1).sum::<usize>().max(1);
        if len > MAX_PATH_LEN {
            return Err(PathError::PathTooLong);
        }
        let mut path = String::with_capacity(len);
        for part in parts {
            path.push('/');
            path.push_str(part);
        }
        if path.is_empty() {
            path.push('/');
        }
        Ok(VPath(path))
    }

    /// The path as text, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/`: `""` for the root, `a/b` for `/a/b`.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The names from the root down, `/a/b` gives `a`, `b`; the root gives none.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.relative().split('/').filter(|c| !c.is_empty())
    }

    /// How many components the path has (0 for the root).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The last component, `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() { None } else { self.0.rsplit('/').next() }
    }

    /// The containing directory, `None` for the root.
    pub fn parent(&self) -> Option<VPath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(VPath::root()),
            Some(idx) => Some(VPath(self.0[..idx].to_owned())),
            None => None,
        }
    }

    /// Appends one name. The name must be a plain name (no `/`, not `.` or `..`, no control
    /// characters, within the length limits).
    pub fn join(&self, name: &str) -> Result<VPath, PathError> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(PathError::NotAName);
        }
        if name.len() > MAX_COMPONENT_LEN {
            return Err(PathError::ComponentTooLong);
        }
        if let Some(byte) = name.bytes().find(|b| b.is_ascii_control()) {
            return Err(PathError::ControlCharacter { byte });
        }
        let mut parts: Vec<&str> = self.components().collect();
        parts.push(name);
        Self::from_components(&parts)
    }

    /// Whether `prefix` is this path or one of its ancestors (component-wise, so `/ab` does not
    /// start with `/a`).
    pub fn starts_with(&self, prefix: &VPath) -> bool {
        prefix.is_root()
            || self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }

    /// The rest of this path below `prefix`, as a path of its own (`/a/b/c` minus `/a` is
    /// `/b/c`). `None` when `prefix` is not an ancestor or the path itself.
    pub fn strip_prefix(&self, prefix: &VPath) -> Option<VPath> {
        if !self.starts_with(prefix) {
            return None;
        }
        if prefix.is_root() {
            return Some(self.clone());
        }
        let rest = &self.0[prefix.0.len()..];
        Some(if rest.is_empty() { VPath::root() } else { VPath(rest.to_owned()) })
    }

    /// This path placed below `base` (`/b/c` under `/a` is `/a/b/c`).
    pub fn under(&self, base: &VPath) -> Result<VPath, PathError> {
        let parts: Vec<&str> = base.components().chain(self.components()).collect();
        Self::from_components(&parts)
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VPath({:?})", self.0)
    }
}

impl AsRef<str> for VPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for VPath {
    type Err = PathError;

    /// Parses a path from configuration; relative input is taken from the root.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VPath::resolve(&VPath::root(), s)
    }
}

impl Serialize for VPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for VPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(cwd: &str, input: &str) -> Result<String, PathError> {
        let cwd: VPath = cwd.parse().expect("valid cwd");
        VPath::resolve(&cwd, input).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn relative_and_absolute_input() {
        assert_eq!(resolve("/home", "file.txt").as_deref(), Ok("/home/file.txt"));
        assert_eq!(resolve("/home", "/etc/passwd").as_deref(), Ok("/etc/passwd"));
        assert_eq!(resolve("/home", "").as_deref(), Ok("/home"));
        assert_eq!(resolve("/", "a//b///c/").as_deref(), Ok("/a/b/c"));
    }

    #[test]
    fn dot_dot_never_climbs_above_root() {
        assert_eq!(resolve("/a/b", "../../../../etc").as_deref(), Ok("/etc"));
        assert_eq!(resolve("/", "..").as_deref(), Ok("/"));
        assert_eq!(resolve("/a", "./b/./../c").as_deref(), Ok("/a/c"));
        assert_eq!(resolve("/a", "/../../x").as_deref(), Ok("/x"));
    }

    #[test]
    fn backslash_is_a_literal_character() {
        assert_eq!(resolve("/d", "..\\..\\x").as_deref(), Ok("/d/..\\..\\x"));
        assert_eq!(resolve("/", "..\\").as_deref(), Ok("/..\\"));
    }

    #[test]
    fn control_bytes_are_refused() {
        assert_eq!(resolve("/", "a\0b"), Err(PathError::ControlCharacter { byte: 0 }));
        assert_eq!(resolve("/", "a\nb"), Err(PathError::ControlCharacter { byte: b'\n' }));
        assert_eq!(resolve("/", "a\x7fb"), Err(PathError::ControlCharacter { byte: 0x7f }));
        assert_eq!(VPath::resolve_bytes(&VPath::root(), b"\xff\xfe"), Err(PathError::NotUtf8));
    }

    #[test]
    fn length_limits() {
        let long_name = "x".repeat(MAX_COMPONENT_LEN + 1);
        assert_eq!(resolve("/", &long_name), Err(PathError::ComponentTooLong));
        let ok_name = "x".repeat(MAX_COMPONENT_LEN);
        assert!(resolve("/", &ok_name).is_ok());
        let long_path = "abc/".repeat(2_500);
        assert_eq!(resolve("/", &long_path), Err(PathError::PathTooLong));
        // A deep cwd plus relative input can exceed the limit only once normalized.
        let deep = "/".to_owned() + &vec!["y".repeat(200); 20].join("/");
        assert_eq!(resolve(&deep, &"z".repeat(200)), Err(PathError::PathTooLong));
    }

    #[test]
    fn navigation_helpers() {
        let p: VPath = "/a/b/c".parse().expect("valid");
        assert_eq!(p.file_name(), Some("c"));
        assert_eq!(p.parent().map(|p| p.to_string()).as_deref(), Some("/a/b"));
        assert_eq!(VPath::root().parent(), None);
        assert_eq!(p.depth(), 3);
        let a: VPath = "/a".parse().expect("valid");
        let ab: VPath = "/ab".parse().expect("valid");
        assert!(p.starts_with(&a));
        assert!(!ab.starts_with(&a));
        assert_eq!(p.strip_prefix(&a).map(|p| p.to_string()).as_deref(), Some("/b/c"));
        assert_eq!(a.strip_prefix(&a), Some(VPath::root()));
        assert_eq!(ab.strip_prefix(&a), None);
        assert_eq!(VPath::root().join("n").map(|p| p.to_string()).as_deref(), Ok("/n"));
        assert_eq!(p.join(".."), Err(PathError::NotAName));
        assert_eq!(p.join("x/y"), Err(PathError::NotAName));
        let moved = "/b/c".parse::<VPath>().expect("valid").under(&a).expect("fits");
        assert_eq!(moved.as_str(), "/a/b/c");
    }
}
