//! From the file name a device sends to a virtual path: DOS-path folding, ordered regex
//! rewrite rules (in the spirit of tftp-hpa's `--map-file`), then [`VPath::resolve`].
//!
//! Order: the name must be UTF-8; with `dos_paths` it is lowercased and `\` becomes `/`; the
//! first remap rule whose pattern matches rewrites the matched part (later rules are not
//! tried); the result is resolved from `/`, so no rewrite can lead above the root or outside
//! the identity's mounts.
//!
//! Replacements name groups tftp-hpa's way: `\0` is the whole match, `\1`..`\9` the groups,
//! `\\` a backslash. A `$` is an ordinary character. Any other `\x` is refused when the
//! configuration is loaded, so a typo cannot silently produce a wrong name.

use serde::Deserialize;
use wharf_vfs::path::MAX_PATH_LEN;
use wharf_vfs::{PathError, VPath};

/// One rewrite rule as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemapRule {
    /// A regular expression (Rust `regex` syntax, linear time); `(?i)` makes it
    /// case-insensitive.
    pub pattern: String,
    /// What the matched part becomes; `\0`-`\9` insert groups, `\\` a backslash.
    pub replace: String,
}

/// Why a remap rule was refused.
#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    /// The pattern is not a valid regular expression.
    #[error("tftp.remap rule #{rule}: pattern `{pattern}` is invalid")]
    Pattern {
        /// Position of the rule, from 1.
        rule: usize,
        /// The pattern.
        pattern: String,
        /// The regex compiler's message.
        source: Box<regex::Error>,
    },
    /// The replacement uses an escape that does not exist or a group the pattern lacks.
    #[error("tftp.remap rule #{rule}: replacement `{replace}`: {reason}")]
    Replacement {
        /// Position of the rule, from 1.
        rule: usize,
        /// The replacement.
        replace: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    regex: regex::Regex,
    replacement: Vec<Piece>,
}

/// Turns requested file names into virtual paths.
#[derive(Debug, Clone, Default)]
pub struct FilenameMapper {
    dos_paths: bool,
    rules: Vec<CompiledRule>,
}

fn parse_replacement(replace: &str, groups: usize) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = replace.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => text.push('\\'),
            Some(digit @ '0'..='9') => {
                let group = digit as usize - '0' as usize;
                if group >= groups {
                    return Err(format!("\\{group} names a group the pattern does not have"));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Group(group));
            }
            Some(other) => return Err(format!("unknown escape \\{other} (use \\0-\\9 or \\\\)")),
            None => return Err("ends with a lone backslash".to_owned()),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

impl FilenameMapper {
    /// Compiles `rules`; `dos_paths` folds case and backslashes first.
    pub fn new(dos_paths: bool, rules: &[RemapRule]) -> Result<Self, RemapError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let regex = regex::Regex::new(&rule.pattern).map_err(|source| RemapError::Pattern {
                rule: index + 1,
                pattern: rule.pattern.clone(),
                source: Box::new(source),
            })?;
            let replacement =
                parse_replacement(&rule.replace, regex.captures_len()).map_err(|reason| {
                    RemapError::Replacement {
                        rule: index + 1,
                        replace: rule.replace.clone(),
                        reason,
                    }
                })?;
            compiled.push(CompiledRule { regex, replacement });
        }
        Ok(FilenameMapper { dos_paths, rules: compiled })
    }

    /// The name after DOS folding and the first matching rule, before path resolution.
    pub fn rewrite(&self, name: &str) -> String {
        let name =
            if self.dos_paths { name.to_lowercase().replace('\\', "/") } else { name.to_owned() };
        for rule in &self.rules {
            let Some(captures) = rule.regex.captures(&name) else { continue };
            let Some(whole) = captures.get(0) else { continue };
            let mut out = String::with_capacity(name.len() + 16);
            out.push_str(&name[..whole.start()]);
            for piece in &rule.replacement {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Group(group) => {
                        out.push_str(captures.get(*group).map_or("", |m| m.as_str()));
                    }
                }
            }
            out.push_str(&name[whole.end()..]);
            return out;
        }
        name
    }

    /// The virtual path for the file name `raw` of a request.
    pub fn map(&self, raw: &[u8]) -> Result<VPath, PathError> {
        if raw.len() > MAX_PATH_LEN {
            return Err(PathError::PathTooLong);
        }
        let name = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
        let path = VPath::resolve(&VPath::root(), &self.rewrite(name))?;
        if path.is_root() {
            return Err(PathError::NotAName);
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn mapper(dos: bool, rules: &[(&str, &str)]) -> FilenameMapper {
        let rules: Vec<RemapRule> = rules
            .iter()
            .map(|(p, r)| RemapRule { pattern: (*p).to_owned(), replace: (*r).to_owned() })
            .collect();
        FilenameMapper::new(dos, &rules).expect("valid rules")
    }

    fn mapped(m: &FilenameMapper, name: &str) -> Result<String, PathError> {
        m.map(name.as_bytes()).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn plain_names_resolve_from_the_root() {
        let m = mapper(false, &[]);
        assert_eq!(mapped(&m, "pxelinux.0").as_deref(), Ok("/pxelinux.0"));
        assert_eq!(mapped(&m, "/firmware//phone.bin").as_deref(), Ok("/firmware/phone.bin"));
        assert_eq!(mapped(&m, "../../etc/passwd").as_deref(), Ok("/etc/passwd"));
        assert_eq!(mapped(&m, "A\\B").as_deref(), Ok("/A\\B"));
        assert_eq!(mapped(&m, "/"), Err(PathError::NotAName));
        assert_eq!(mapped(&m, ".."), Err(PathError::NotAName));
        assert_eq!(m.map(b"\xff"), Err(PathError::NotUtf8));
    }

    #[test]
    fn the_first_matching_rule_rewrites_the_matched_part() {
        let m = mapper(
            false,
            &[
                (r"^/?pxelinux\.cfg/(.*)", r"/boot/pxe/\1"),
                (r"^/?(.*)\.BIN$", r"/firmware/\1.bin"),
                (r"^/?pxelinux", r"/never"),
                (r"phone", r"[\0]$1\\"),
            ],
        );
        assert_eq!(mapped(&m, "pxelinux.cfg/default").as_deref(), Ok("/boot/pxe/default"));
        assert_eq!(mapped(&m, "/pxelinux.cfg/01-aa").as_deref(), Ok("/boot/pxe/01-aa"));
        assert_eq!(mapped(&m, "IMAGE.BIN").as_deref(), Ok("/firmware/IMAGE.bin"));
        assert_eq!(mapped(&m, "my-phone-cfg").as_deref(), Ok("/my-[phone]$1\\-cfg"));
        assert_eq!(mapped(&m, "other").as_deref(), Ok("/other"));
    }

    #[test]
    fn rewrites_cannot_escape_the_root() {
        let m = mapper(false, &[("^(.*)$", r"../../\1")]);
        assert_eq!(mapped(&m, "x").as_deref(), Ok("/x"));
    }

    #[test]
    fn dos_paths_fold_case_and_backslashes_before_rules() {
        let m = mapper(true, &[(r"^boot/(.*)", r"/tftpboot/\1")]);
        assert_eq!(mapped(&m, "BOOT\\PXE\\Default").as_deref(), Ok("/tftpboot/pxe/default"));
        assert_eq!(mapped(&m, "..\\..\\etc\\passwd").as_deref(), Ok("/etc/passwd"));
    }

    #[test]
    fn bad_rules_are_refused_with_their_position() {
        let bad_regex = FilenameMapper::new(
            false,
            &[
                RemapRule { pattern: "ok".into(), replace: "fine".into() },
                RemapRule { pattern: "(".into(), replace: "x".into() },
            ],
        );
        assert!(matches!(&bad_regex, Err(RemapError::Pattern { rule: 2, .. })), "{bad_regex:?}");
        for replace in [r"\2", r"\q", "trailing\\"] {
            let err = FilenameMapper::new(
                false,
                &[RemapRule { pattern: "(a)".into(), replace: replace.into() }],
            );
            assert!(
                matches!(&err, Err(RemapError::Replacement { rule: 1, .. })),
                "{replace}: {err:?}"
            );
            if let Err(err) = err {
                assert!(err.to_string().contains("remap rule #1"), "{err}");
            }
        }
    }

    proptest! {
        #[test]
        fn mapped_paths_are_always_valid_and_absolute(name in "[a-zA-Z0-9./\\\\-]{1,80}") {
            let m = mapper(true, &[(r"^/?cfg/(.*)", r"/configs/\1")]);
            if let Ok(path) = m.map(name.as_bytes()) {
                prop_assert!(path.as_str().starts_with('/'));
                prop_assert!(!path.components().any(|c| c == ".." || c == "."));
                prop_assert!(!path.as_str().contains('\\'));
            }
        }
    }
}
