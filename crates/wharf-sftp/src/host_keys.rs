//! Host keys: loaded from the configured directory, generated there on first start.
//!
//! Keys are stored in OpenSSH's format under OpenSSH's names (`ssh_host_ed25519_key`, ...),
//! private files with mode 0600 beside a `.pub` file, so an operator can inspect them with
//! `ssh-keygen -l -f` and clients keep trusting the server across restarts. A private key file
//! that others can read is refused, as OpenSSH refuses it.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
use russh::keys::ssh_key::{self, LineEnding};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};

use crate::config::HostKeyType;

/// RSA modulus size for generated keys (NIST's recommendation beyond 2030).
const RSA_BITS: usize = 3072;

/// Why the host keys could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// The key directory could not be created or read.
    #[error("host key directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key file exists but could not be read.
    #[error("cannot read host key {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key file is not an OpenSSH private key.
    #[error("host key {path} is not an OpenSSH private key: {source}")]
    Parse {
        /// The key file.
        path: PathBuf,
        /// The parser's error.
        source: ssh_key::Error,
    },
    /// A key file can be read by other users.
    #[error(
        "host key {path} has mode {mode:04o}; it must not be accessible by group or others \
         (chmod 600 it)"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file holds a key of another type than its name says.
    #[error("host key {path} should hold a {expected} key but holds {found}")]
    WrongType {
        /// The key file.
        path: PathBuf,
        /// The type its name stands for.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// A key file is protected by a passphrase, which a server cannot type.
    #[error("host key {path} is encrypted with a passphrase; host keys must not be")]
    Encrypted {
        /// The key file.
        path: PathBuf,
    },
    /// Generating a key failed.
    #[error("cannot generate a {key_type} host key: {source}")]
    Generate {
        /// The type of key.
        key_type: &'static str,
        /// The error.
        source: ssh_key::Error,
    },
    /// A new key could not be written.
    #[error("cannot write host key {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The server's host keys, in order of preference.
pub struct HostKeys {
    keys: Vec<(HostKeyType, PrivateKey)>,
}

impl std::fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
    }
}

impl HostKeys {
    /// Loads the keys of `types` from `dir`, generating (and saving) those that are missing.
    /// Creates `dir` with mode 0700 when it does not exist. Blocking: call it off the async
    /// threads (generating an RSA key takes seconds).
    pub fn load_or_generate(dir: &Path, types: &[HostKeyType]) -> Result<HostKeys, HostKeyError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| HostKeyError::Directory { path: dir.to_owned(), source })?;
        let mut keys = Vec::with_capacity(types.len());
        for &key_type in types {
            let path = dir.join(key_type.file_name());
            let key = match fs::symlink_metadata(&path) {
                Ok(_) => load(&path, key_type)?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    let key = generate(key_type)?;
                    save(dir, &path, &key)?;
                    tracing::info!(path = %path.display(), "generated a new SSH host key");
                    key
                }
                Err(source) => return Err(HostKeyError::Read { path, source }),
            };
            keys.push((key_type, key));
        }
        Ok(HostKeys { keys })
    }

    /// SHA-256 fingerprints as `ssh-keygen -l` shows them: `ED25519 SHA256:...`.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|(kind, key)| format!("{} {}", kind.label(), key.fingerprint(HashAlg::Sha256)))
            .collect()
    }

    /// The types of the keys held, in order of preference.
    pub fn types(&self) -> Vec<HostKeyType> {
        self.keys.iter().map(|(kind, _)| *kind).collect()
    }

    /// The private keys, for the SSH server's configuration.
    pub(crate) fn private_keys(&self) -> Vec<PrivateKey> {
        self.keys.iter().map(|(_, key)| key.clone()).collect()
    }
}

fn algorithm(key_type: HostKeyType) -> Algorithm {
    match key_type {
        HostKeyType::Ed25519 => Algorithm::Ed25519,
        HostKeyType::EcdsaP256 => Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 },
        HostKeyType::Rsa => Algorithm::Rsa { hash: None },
    }
}

fn load(path: &Path, key_type: HostKeyType) -> Result<PrivateKey, HostKeyError> {
    let meta =
        fs::metadata(path).map_err(|source| HostKeyError::Read { path: path.into(), source })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(HostKeyError::Permissions { path: path.into(), mode });
    }
    let text = fs::read(path).map_err(|source| HostKeyError::Read { path: path.into(), source })?;
    let key = PrivateKey::from_openssh(&text)
        .map_err(|source| HostKeyError::Parse { path: path.into(), source })?;
    if key.is_encrypted() {
        return Err(HostKeyError::Encrypted { path: path.into() });
    }
    let expected = algorithm(key_type);
    let matches = match (&expected, key.algorithm()) {
        (Algorithm::Rsa { .. }, found) => found.is_rsa(),
        (expected, found) => *expected == found,
    };
    if !matches {
        return Err(HostKeyError::WrongType {
            path: path.into(),
            expected: key_type.config_name(),
            found: key.algorithm().to_string(),
        });
    }
    Ok(key)
}

fn generate(key_type: HostKeyType) -> Result<PrivateKey, HostKeyError> {
    let failed = |source| HostKeyError::Generate { key_type: key_type.config_name(), source };
    let mut rng = russh::keys::key::safe_rng();
    let mut key = match key_type {
        HostKeyType::Rsa => {
            let pair = RsaKeypair::random(&mut rng, RSA_BITS).map_err(failed)?;
            PrivateKey::new(KeypairData::from(pair), "").map_err(failed)?
        }
        other => PrivateKey::random(&mut rng, algorithm(other)).map_err(failed)?,
    };
    key.set_comment("wharf host key");
    Ok(key)
}

/// Writes the private key with mode 0600 (through a temporary file, so a crash never leaves a
/// truncated key under the real name) and its public half beside it.
fn save(dir: &Path, path: &Path, key: &PrivateKey) -> Result<(), HostKeyError> {
    let write_failed = |source| HostKeyError::Write { path: path.into(), source };
    let private =
        key.to_openssh(LineEnding::LF).map_err(|err| write_failed(std::io::Error::other(err)))?;
    let public =
        key.public_key().to_openssh().map_err(|err| write_failed(std::io::Error::other(err)))?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("host_key"),
        std::process::id()
    ));
    let result = (|| {
        let mut file =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.write_all(private.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        fs::write(path.with_extension("pub"), format!("{public}\n"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(write_failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_private_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("keys");
        let types = [HostKeyType::Ed25519, HostKeyType::EcdsaP256];
        let first = HostKeys::load_or_generate(&dir, &types).expect("generate");
        let second = HostKeys::load_or_generate(&dir, &types).expect("load");
        assert_eq!(first.fingerprints(), second.fingerprints());
        assert!(first.fingerprints()[0].starts_with("ED25519 SHA256:"));
        assert!(first.fingerprints()[1].starts_with("ECDSA SHA256:"));
        for kind in types {
            let mode = fs::metadata(dir.join(kind.file_name())).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{kind:?}");
            let public = fs::read_to_string(dir.join(kind.file_name()).with_extension("pub"))
                .expect("public half");
            assert!(russh::keys::PublicKey::from_openssh(public.trim()).is_ok(), "{public}");
        }
        let dir_mode = fs::metadata(&dir).expect("dir").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn unsafe_or_wrong_key_files_are_refused_by_name() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        HostKeys::load_or_generate(dir, &[HostKeyType::Ed25519]).expect("generate");
        let ed_path = dir.join(HostKeyType::Ed25519.file_name());

        fs::set_permissions(&ed_path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = HostKeys::load_or_generate(dir, &[HostKeyType::Ed25519]).expect_err("0644");
        assert!(matches!(err, HostKeyError::Permissions { mode: 0o644, .. }), "{err}");
        assert!(err.to_string().contains("ssh_host_ed25519_key"), "{err}");
        fs::set_permissions(&ed_path, fs::Permissions::from_mode(0o600)).expect("chmod");

        // An Ed25519 key under the ECDSA name.
        let ecdsa_path = dir.join(HostKeyType::EcdsaP256.file_name());
        fs::copy(&ed_path, &ecdsa_path).expect("copy");
        fs::set_permissions(&ecdsa_path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = HostKeys::load_or_generate(dir, &[HostKeyType::EcdsaP256]).expect_err("type");
        assert!(matches!(err, HostKeyError::WrongType { .. }), "{err}");

        fs::write(&ecdsa_path, "not a key").expect("write");
        let err = HostKeys::load_or_generate(dir, &[HostKeyType::EcdsaP256]).expect_err("junk");
        assert!(matches!(err, HostKeyError::Parse { .. }), "{err}");
    }
}
