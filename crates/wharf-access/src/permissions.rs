//! Permission rules: what a user may do, per virtual path prefix.

use std::fmt;

use serde::{Deserialize, Deserializer};
use wharf_vfs::VPath;

bitflags::bitflags! {
    /// Operations a rule can grant.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Permissions: u16 {
        /// See a directory's entries and their attributes.
        const LIST = 1 << 0;
        /// Read a file.
        const DOWNLOAD = 1 << 1;
        /// Create a new file.
        const UPLOAD = 1 << 2;
        /// Replace an existing file with a whole new upload.
        const OVERWRITE = 1 << 3;
        /// Append to or resume an existing file (writes in place).
        const APPEND = 1 << 4;
        /// Remove a file.
        const DELETE = 1 << 5;
        /// Rename or move (the source; the target needs upload, overwrite or mkdir).
        const RENAME = 1 << 6;
        /// Create a directory.
        const MKDIR = 1 << 7;
        /// Remove a directory.
        const RMDIR = 1 << 8;
        /// Change modification times and mode bits.
        const SETATTR = 1 << 9;
    }
}

impl Permissions {
    /// Reading only: list and download.
    pub const READ: Permissions = Permissions::LIST.union(Permissions::DOWNLOAD);

    /// The configuration names of each permission, in a stable order.
    pub const NAMES: [(&'static str, Permissions); 10] = [
        ("list", Permissions::LIST),
        ("download", Permissions::DOWNLOAD),
        ("upload", Permissions::UPLOAD),
        ("overwrite", Permissions::OVERWRITE),
        ("append", Permissions::APPEND),
        ("delete", Permissions::DELETE),
        ("rename", Permissions::RENAME),
        ("mkdir", Permissions::MKDIR),
        ("rmdir", Permissions::RMDIR),
        ("setattr", Permissions::SETATTR),
    ];

    /// Parses one name from configuration: a permission, `read` (list + download) or `*`.
    pub fn from_config_name(name: &str) -> Option<Permissions> {
        match name {
            "*" | "all" => Some(Permissions::all()),
            "read" => Some(Permissions::READ),
            "resume" => Some(Permissions::APPEND),
            _ => Permissions::NAMES.iter().find(|(n, _)| *n == name).map(|(_, p)| *p),
        }
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            Permissions::NAMES.iter().filter(|(_, p)| self.contains(*p)).map(|(n, _)| *n).collect();
        if names.is_empty() { f.write_str("none") } else { f.write_str(&names.join(",")) }
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let mut perms = Permissions::empty();
        for name in &names {
            perms |= Permissions::from_config_name(name).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown permission `{name}`, expected one of: *, read, list, download, upload, \
                     overwrite, append, delete, rename, mkdir, rmdir, setattr"
                ))
            })?;
        }
        Ok(perms)
    }
}

/// A user's rules: permissions per virtual path prefix, the most specific prefix winning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Sorted deepest prefix first.
    rules: Vec<(VPath, Permissions)>,
}

impl Rules {
    /// Builds the rules; paths with no rule above them get no permissions at all.
    pub fn new(rules: impl IntoIterator<Item = (VPath, Permissions)>) -> Rules {
        let mut rules: Vec<_> = rules.into_iter().collect();
        rules.sort_by(|a, b| b.0.depth().cmp(&a.0.depth()).then_with(|| a.0.cmp(&b.0)));
        rules.dedup_by(|a, b| a.0 == b.0);
        Rules { rules }
    }

    /// Everything, everywhere.
    pub fn allow_all() -> Rules {
        Rules::new([(VPath::root(), Permissions::all())])
    }

    /// The permissions that apply at `path`: those of the deepest rule at or above it.
    pub fn at(&self, path: &VPath) -> Permissions {
        self.rules
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map(|(_, perms)| *perms)
            .unwrap_or(Permissions::empty())
    }

    /// The rules, deepest first.
    pub fn iter(&self) -> impl Iterator<Item = &(VPath, Permissions)> {
        self.rules.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VPath {
        s.parse().expect("valid")
    }

    #[test]
    fn most_specific_prefix_wins() {
        let rules = Rules::new([
            (p("/"), Permissions::all()),
            (p("/firmware"), Permissions::READ),
            (p("/firmware/beta"), Permissions::empty()),
        ]);
        assert_eq!(rules.at(&p("/docs/a.txt")), Permissions::all());
        assert_eq!(rules.at(&p("/firmware")), Permissions::READ);
        assert_eq!(rules.at(&p("/firmware/x.bin")), Permissions::READ);
        assert_eq!(rules.at(&p("/firmware/beta/y.bin")), Permissions::empty());
        assert_eq!(
            rules.at(&p("/firmwareX")),
            Permissions::all(),
            "prefixes match whole components"
        );
    }

    #[test]
    fn no_rule_means_nothing() {
        let rules = Rules::new([(p("/uploads"), Permissions::UPLOAD)]);
        assert_eq!(rules.at(&p("/")), Permissions::empty());
        assert_eq!(rules.at(&p("/uploads/f")), Permissions::UPLOAD);
    }

    #[test]
    fn names_parse() {
        let perms: Permissions = serde_yaml::from_str("[list, download, resume]").expect("parses");
        assert_eq!(perms, Permissions::READ | Permissions::APPEND);
        let all: Permissions = serde_yaml::from_str("['*']").expect("parses");
        assert_eq!(all, Permissions::all());
        let err = serde_yaml::from_str::<Permissions>("[list, dowload]").expect_err("typo refused");
        assert!(err.to_string().contains("dowload"), "{err}");
        assert_eq!(Permissions::READ.to_string(), "list,download");
    }
}
