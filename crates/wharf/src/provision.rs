//! First start of the embedded default: create the data directory and a users file with the
//! `demo` user, whose random password is shown once and stored only as a hash.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use wharf_access::{Password, hash_password};

/// The demo account created at first start.
#[derive(Debug, Clone)]
pub struct DemoAccount {
    /// Its name.
    pub user: String,
    /// Its password, in clear, to be shown once.
    pub password: String,
}

/// Name of the demo user.
pub const DEMO_USER: &str = "demo";

/// Name of the identity TFTP clients on loopback are mapped onto.
pub const TFTP_IDENTITY: &str = "tftp";

/// Creates `users_file` with the demo user and the loopback TFTP identity unless it exists.
/// Returns the demo account when it was just created.
pub fn provision_users(users_file: &Path) -> anyhow::Result<Option<DemoAccount>> {
    if users_file.exists() {
        return Ok(None);
    }
    if let Some(dir) = users_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let password: String =
        rand::rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect();
    let hash = hash_password(&Password::new(password.clone()))
        .map_err(|err| anyhow::anyhow!("hashing the demo password: {err}"))?;
    let text = format!(
        "# Users of this Wharf instance, created at first start. Edit freely; `wharf hash-password`\n\
         # makes password hashes. Every key is described in config/wharf.example.yaml.\n\
         users:\n\
         \x20 - name: {DEMO_USER}\n\
         \x20   password: \"{hash}\"\n\
         \x20   home: /\n\
         \x20 # What TFTP clients on loopback are mapped onto: read-only, the whole share.\n\
         \x20 - name: {TFTP_IDENTITY}\n\
         \x20   passwordless: true\n\
         \x20   home: /\n\
         \x20   protocols: [tftp]\n\
         \x20   permissions:\n\
         \x20     /: [read]\n"
    );
    // Created exclusively and private: it holds a password hash.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(users_file)
        .with_context(|| format!("creating {}", users_file.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", users_file.display()))?;
    Ok(Some(DemoAccount { user: DEMO_USER.to_owned(), password }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_a_private_users_file_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("state/users.yaml");
        let account = provision_users(&path).expect("provision").expect("created");
        assert_eq!(account.user, "demo");
        assert_eq!(account.password.len(), 20);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("$argon2id$"));
        assert!(!text.contains(&account.password), "only the hash is stored");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let file: wharf_access::UsersFile = serde_yaml::from_str(&text).expect("valid users file");
        let db = wharf_access::UserDb::from_configs(file.users).expect("valid users");
        let demo = db.get("demo").expect("demo");
        assert!(demo.password.as_ref().expect("hash").verify(&Password::new(account.password)));
        assert!(provision_users(&path).expect("second start").is_none(), "reused, not replaced");
    }
}
