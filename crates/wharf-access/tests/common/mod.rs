//! A temporary share with users, for the access tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wharf_access::{
    AccessConfig, Authenticator, Credential, LoginRequest, LoginSettings, Password, Protocol,
    Session, UsersFile, VPath, hash_password,
};
use wharf_vfs::{LocalOptions, LocalStorage};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Share {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub auth: Authenticator,
}

pub fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("addr")
}

/// A share with the users defined by `users_yaml`, where `$HASH` stands for a hash of
/// [`PASSWORD`].
pub fn share(users_yaml: &str) -> Share {
    share_with_delay(users_yaml, Duration::from_millis(0))
}

pub fn share_with_delay(users_yaml: &str, failure_delay: Duration) -> Share {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("share");
    let storage = LocalStorage::open(&root, true, LocalOptions::default()).expect("share");
    let hash = hash_password(&Password::new(PASSWORD)).expect("hash");
    let yaml = users_yaml.replace("$HASH", &hash);
    let file: UsersFile = serde_yaml::from_str(&yaml).expect("users yaml");
    let config = AccessConfig { users: file.users, ..AccessConfig::default() };
    let users = config.load_users(tmp.path()).expect("users");
    let settings = LoginSettings { failure_delay, ..LoginSettings::default() };
    Share { tmp, root, auth: Authenticator::new(storage, users, settings) }
}

impl Share {
    pub async fn login(&self, user: &str, protocol: Protocol) -> Session {
        self.auth
            .login(LoginRequest {
                protocol,
                peer: peer(),
                user: user.to_owned(),
                credential: Credential::Password(Password::new(PASSWORD)),
            })
            .await
            .expect("login")
    }

    /// Every file and directory under the share with its content, for "nothing changed" checks.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("read_dir")
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            for path in entries {
                let name = path.strip_prefix(base).expect("prefix").to_string_lossy().into_owned();
                if path.is_dir() {
                    out.push((name + "/", Vec::new()));
                    walk(&path, base, out);
                } else {
                    out.push((name, std::fs::read(&path).expect("read")));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out
    }
}

pub fn p(s: &str) -> VPath {
    VPath::resolve(&VPath::root(), s).expect("path")
}
