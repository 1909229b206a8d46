//! Stored password hashes: argon2id for new hashes; bcrypt and sha512-crypt verified too, so
//! users can be imported from other servers without a password reset.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

/// A password as received from a client. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password received from a client.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password's bytes, for verification.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a stored hash was refused when the users file was loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFormatError {
    /// The scheme prefix is not one Wharf verifies.
    #[error(
        "unsupported password hash scheme (expected $argon2id$, $argon2i$, $2b$/$2a$/$2y$ or $6$)"
    )]
    UnknownScheme,
    /// The hash has a known prefix but is malformed.
    #[error("malformed {scheme} hash: {reason}")]
    Malformed {
        /// Which scheme the prefix announced.
        scheme: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A verified-format password hash from the users file.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// An argon2 PHC string (`$argon2id$v=19$m=...`).
    Argon2(String),
    /// A bcrypt hash (`$2b$12$...`).
    Bcrypt(String),
    /// A sha512-crypt hash (`$6$rounds=...$salt$hash`).
    Sha512Crypt(String),
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self {
            StoredHash::Argon2(_) => "argon2",
            StoredHash::Bcrypt(_) => "bcrypt",
            StoredHash::Sha512Crypt(_) => "sha512-crypt",
        };
        write!(f, "StoredHash({scheme})")
    }
}

impl StoredHash {
    /// Parses and checks a stored hash, so a broken one is reported when the file is loaded
    /// rather than as a mysterious failed login.
    pub fn parse(text: &str) -> Result<StoredHash, HashFormatError> {
        let text = text.trim();
        if text.starts_with("$argon2") {
            argon2::password_hash::phc::PasswordHash::new(text).map_err(|err| {
                HashFormatError::Malformed { scheme: "argon2", reason: err.to_string() }
            })?;
            Ok(StoredHash::Argon2(text.to_owned()))
        } else if ["$2a$", "$2b$", "$2y$", "$2x$"].iter().any(|p| text.starts_with(p)) {
            // bcrypt hashes are exactly 60 characters: prefix, cost, 53 of salt and hash.
            let cost_ok = text.get(4..6).and_then(|c| c.parse::<u32>().ok()).is_some();
            if text.len() != 60 || !cost_ok || text.as_bytes().get(6) != Some(&b'$') {
                return Err(HashFormatError::Malformed {
                    scheme: "bcrypt",
                    reason: "expected $2b$<cost>$ followed by 53 characters".to_owned(),
                });
            }
            Ok(StoredHash::Bcrypt(text.to_owned()))
        } else if text.starts_with("$6$") {
            sha_crypt::PasswordHashRef::new(text).map_err(|err| HashFormatError::Malformed {
                scheme: "sha512-crypt",
                reason: err.to_string(),
            })?;
            Ok(StoredHash::Sha512Crypt(text.to_owned()))
        } else {
            Err(HashFormatError::UnknownScheme)
        }
    }

    /// Whether `password` matches. The comparison inside each scheme is constant-time.
    /// This is slow on purpose (argon2 takes tens of milliseconds): call it off the async
    /// threads.
    pub fn verify(&self, password: &Password) -> bool {
        match self {
            StoredHash::Argon2(hash) => {
                argon2::Argon2::default().verify_password(password.expose(), hash.as_str()).is_ok()
            }
            StoredHash::Bcrypt(hash) => bcrypt::verify(password.expose(), hash).unwrap_or(false),
            StoredHash::Sha512Crypt(hash) => sha_crypt::ShaCrypt::default()
                .verify_password(password.expose(), hash.as_str())
                .is_ok(),
        }
    }

    /// A hash of a random password with default parameters, verified against when the user
    /// is unknown so that an unknown user costs as much time as a wrong password.
    pub fn decoy() -> &'static StoredHash {
        static DECOY: OnceLock<StoredHash> = OnceLock::new();
        DECOY.get_or_init(|| {
            let random: [u8; 16] = rand::random();
            let hash = argon2::Argon2::default()
                .hash_password_with_salt(&random, b"wharf-decoy-salt")
                .expect("argon2 with default parameters and a 16-byte salt cannot fail");
            StoredHash::Argon2(hash.to_string())
        })
    }
}

/// Hashes a new password as an argon2id PHC string with the library's recommended parameters.
pub fn hash_password(password: &Password) -> Result<String, argon2::password_hash::Error> {
    let hash = argon2::Argon2::default().hash_password(password.expose())?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let hash = hash_password(&Password::new("correct horse")).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        let stored = StoredHash::parse(&hash).expect("parses");
        assert!(stored.verify(&Password::new("correct horse")));
        assert!(!stored.verify(&Password::new("correct horse ")));
    }

    #[test]
    fn imported_bcrypt_and_sha512_crypt() {
        let bcrypt = bcrypt::hash("hunter2", 4).expect("hash");
        let stored = StoredHash::parse(&bcrypt).expect("bcrypt parses");
        assert!(stored.verify(&Password::new("hunter2")));
        assert!(!stored.verify(&Password::new("hunter3")));

        // `openssl passwd -6 -salt saltsalt hunter2`, with and without explicit rounds.
        for sha in [
            "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj.",
            "$6$rounds=5000$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj.",
        ] {
            let stored = StoredHash::parse(sha).expect("sha512-crypt parses");
            assert!(stored.verify(&Password::new("hunter2")), "{sha}");
            assert!(!stored.verify(&Password::new("hunter3")));
        }
    }

    #[test]
    fn malformed_hashes_are_refused_at_load() {
        assert_eq!(StoredHash::parse("plaintext"), Err(HashFormatError::UnknownScheme));
        assert!(matches!(
            StoredHash::parse("$2b$12$short"),
            Err(HashFormatError::Malformed { .. })
        ));
        assert!(matches!(
            StoredHash::parse("$argon2id$garbage"),
            Err(HashFormatError::Malformed { .. })
        ));
        assert!(matches!(StoredHash::parse("$6$"), Err(HashFormatError::Malformed { .. })));
    }

    #[test]
    fn password_is_never_printed() {
        assert_eq!(format!("{:?}", Password::new("s3cret")), "Password(<redacted>)");
    }
}
