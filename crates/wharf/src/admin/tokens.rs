//! API tokens: made by `wharf token create`, kept only as SHA-256 hashes in the tokens file.
//!
//! A token is 256 random bits (`wharf_` and 64 hex digits), so a plain SHA-256 is enough to
//! keep it: nothing can be guessed from the hash, and no slow hash is needed against
//! dictionary attacks on a secret nobody chose. The file is written beside and renamed, so a
//! server reading it never sees half a file.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read: lists, version, metrics.
    Read,
    /// Everything: read, and change (bans, reload).
    Admin,
}

impl Scope {
    /// Whether a token of this scope may do what needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || needed == Scope::Read
    }
}

/// One token as kept in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    /// Who or what holds it (named in the audit log of each call).
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// SHA-256 of the token, in hex.
    pub sha256: String,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// The tokens file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// The tokens.
    #[serde(default)]
    pub tokens: Vec<StoredToken>,
}

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not readable or not writable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// Not a tokens file.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        source: serde_yaml::Error,
    },
    /// A token of that name exists.
    #[error("a token named {0:?} exists already")]
    Exists(String),
    /// A name that cannot be one.
    #[error("token name {0:?}: use 1 to 64 letters, digits, `-`, `_` or `.`")]
    BadName(String),
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl TokensFile {
    /// Reads `path`; a file that does not exist holds no tokens.
    pub fn load(path: &Path) -> Result<TokensFile, TokenError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml::from_str(&text)
                .map_err(|source| TokenError::Parse { path: shown, source }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(TokensFile::default()),
            Err(source) => Err(TokenError::Io { path: shown, source }),
        }
    }

    /// Makes a token named `name` with `scope`, adds its hash to the file at `path`, and
    /// returns the token (shown once: only its hash is kept).
    pub fn create(path: &Path, name: &str, scope: Scope) -> Result<String, TokenError> {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(TokenError::BadName(name.to_owned()));
        }
        let mut file = TokensFile::load(path)?;
        if file.tokens.iter().any(|t| t.name == name) {
            return Err(TokenError::Exists(name.to_owned()));
        }
        let secret: [u8; 32] = rand::random();
        let token =
            format!("wharf_{}", secret.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        file.tokens.push(StoredToken {
            name: name.to_owned(),
            scope,
            sha256: hash(&token),
            created,
        });
        file.save(path)?;
        Ok(token)
    }

    fn save(&self, path: &Path) -> Result<(), TokenError> {
        let io = |source| TokenError::Io { path: path.display().to_string(), source };
        let text = serde_yaml::to_string(self).map_err(|err| io(std::io::Error::other(err)))?;
        crate::private_file::replace(path, text.as_bytes()).map_err(io)
    }
}

/// The tokens a server accepts, by hash.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<String, (String, Scope)>,
}

impl Tokens {
    /// The tokens of `file`.
    pub fn of(file: &TokensFile) -> Tokens {
        let by_hash = file
            .tokens
            .iter()
            .map(|t| (t.sha256.to_ascii_lowercase(), (t.name.clone(), t.scope)))
            .collect();
        Tokens { by_hash }
    }

    /// The name and scope of `token`, if it is one.
    pub fn check(&self, token: &str) -> Option<(&str, Scope)> {
        self.by_hash.get(&hash(token)).map(|(name, scope)| (name.as_str(), *scope))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_token_is_kept_only_as_its_hash_and_checks_with_its_scope() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api-tokens.yaml");
        let token = TokensFile::create(&path, "ci", Scope::Read).expect("create");
        let admin = TokensFile::create(&path, "ops", Scope::Admin).expect("create");
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(!text.contains(&token) && !text.contains(&admin), "{text}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let tokens = Tokens::of(&TokensFile::load(&path).expect("load"));
        assert_eq!(tokens.check(&token), Some(("ci", Scope::Read)));
        assert_eq!(tokens.check(&admin), Some(("ops", Scope::Admin)));
        assert_eq!(tokens.check("wharf_00"), None);
        assert!(matches!(
            TokensFile::create(&path, "ci", Scope::Admin),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            TokensFile::create(&path, "a b", Scope::Admin),
            Err(TokenError::BadName(_))
        ));
    }

    #[test]
    fn scopes() {
        assert!(Scope::Admin.allows(Scope::Admin) && Scope::Admin.allows(Scope::Read));
        assert!(Scope::Read.allows(Scope::Read) && !Scope::Read.allows(Scope::Admin));
    }
}
