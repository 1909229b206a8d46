//! Users: how they are written in the users file and the checked form logins use.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;
use wharf_vfs::VPath;

use crate::password::{HashFormatError, StoredHash};
use crate::permissions::{Permissions, Rules};
use crate::protocol::ProtocolFamily;
use crate::quota::{BandwidthConfig, QuotaConfig};

/// When FTP must be protected by TLS for this user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsRequirement {
    /// The control connection (and so the password) must be encrypted.
    pub control: bool,
    /// Data connections must be encrypted (`PROT P`).
    pub data: bool,
}

impl<'de> Deserialize<'de> for TlsRequirement {
    /// Accepts `true`/`false` (both connections) or `{ control: bool, data: bool }`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Detailed {
            #[serde(default)]
            control: bool,
            #[serde(default)]
            data: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Both(bool),
            Detailed(Detailed),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Both(both) => TlsRequirement { control: both, data: both },
            Form::Detailed(d) => TlsRequirement { control: d.control, data: d.data },
        })
    }
}

/// An SSH authentication method a user may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum SshAuthMethod {
    /// A password (also asked through keyboard-interactive).
    #[serde(rename = "password")]
    Password,
    /// A key from the user's authorized keys.
    #[serde(rename = "publickey")]
    PublicKey,
    /// A key and then a password, both required.
    #[serde(rename = "publickey+password")]
    PublicKeyAndPassword,
}

/// One user as written in the users file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Password hash: argon2id PHC string (`wharf hash-password` makes one), bcrypt or
    /// sha512-crypt.
    #[serde(default)]
    pub password: Option<String>,
    /// OpenSSH public keys (`ssh-ed25519 AAAA... comment`) accepted for SFTP.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// Folder of the share shown as the user's `/`.
    #[serde(default)]
    pub home: Option<VPath>,
    /// Further virtual folders: virtual path -> folder of the share.
    #[serde(default)]
    pub mounts: BTreeMap<VPath, VPath>,
    /// Permissions per virtual path prefix; the most specific prefix wins. Default: everything
    /// at `/`.
    #[serde(default)]
    pub permissions: Option<BTreeMap<VPath, Permissions>>,
    /// Protocols this user may log in with. Default: `[ftp, sftp]`.
    #[serde(default)]
    pub protocols: Option<Vec<ProtocolFamily>>,
    /// Source networks the user may log in from. Default: any.
    #[serde(default)]
    pub networks: Vec<IpNet>,
    /// Whether FTP must use TLS: `true`, or `{ control: true, data: true }`.
    #[serde(default)]
    pub require_tls: TlsRequirement,
    /// SSH methods accepted. Default: `[password, publickey]`.
    #[serde(default)]
    pub ssh_auth: Option<Vec<SshAuthMethod>>,
    /// A disabled user cannot log in.
    #[serde(default)]
    pub disabled: bool,
    /// An identity that needs no credential: what TFTP rules and anonymous FTP map onto.
    #[serde(default)]
    pub passwordless: bool,
    /// Limits on what the home may hold: `{ bytes: 10GiB, files: 100000 }`.
    #[serde(default)]
    pub quota: QuotaConfig,
    /// Transfer rates, per second, shared by the user's sessions: `{ download: 10MiB }`.
    #[serde(default)]
    pub bandwidth: BandwidthConfig,
    /// Sessions the user may have open at once, on every protocol together (and in a
    /// cluster, on every node together). Unlimited when absent.
    #[serde(default)]
    pub max_sessions: Option<usize>,
}

/// Why a user definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The name is empty, too long or holds characters logins cannot carry.
    #[error("user name `{0}` is not allowed (1-64 characters: letters, digits, . _ - @ +)")]
    BadName(String),
    /// Two users share a name.
    #[error("user `{0}` is defined twice")]
    Duplicate(String),
    /// The password hash is not usable.
    #[error("user `{user}`: {source}")]
    BadHash {
        /// The user.
        user: String,
        /// What is wrong with the hash.
        source: HashFormatError,
    },
    /// An authorized key did not parse.
    #[error("user `{user}`: authorized key #{index} is not an OpenSSH public key: {reason}")]
    BadKey {
        /// The user.
        user: String,
        /// Position of the key in the list, from 1.
        index: usize,
        /// The parser's message.
        reason: String,
    },
    /// The user would see nothing.
    #[error("user `{0}` has neither a home nor mounts")]
    NoMounts(String),
    /// The combination of settings makes no sense.
    #[error("user `{user}`: {reason}")]
    Inconsistent {
        /// The user.
        user: String,
        /// Which settings clash.
        reason: &'static str,
    },
}

/// A checked user, as logins see it.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Stored password hash, if the user has a password.
    pub password: Option<StoredHash>,
    /// Keys accepted for SSH public-key authentication.
    pub authorized_keys: Vec<ssh_key::PublicKey>,
    /// Virtual folder -> folder of the share; `/` is the home.
    pub mounts: Vec<(VPath, VPath)>,
    /// Permission rules.
    pub rules: Rules,
    /// Protocols the user may use.
    pub protocols: Vec<ProtocolFamily>,
    /// Networks the user may log in from; empty means any.
    pub networks: Vec<IpNet>,
    /// Whether FTP must use TLS.
    pub require_tls: TlsRequirement,
    /// SSH methods accepted.
    pub ssh_auth: Vec<SshAuthMethod>,
    /// Whether logins are refused.
    pub disabled: bool,
    /// Whether this is a credential-less identity (TFTP, anonymous FTP).
    pub passwordless: bool,
    /// Limits on the home's content.
    pub quota: QuotaConfig,
    /// Transfer rates.
    pub bandwidth: BandwidthConfig,
    /// Sessions open at once, at most.
    pub max_sessions: Option<usize>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
}

impl User {
    /// Checks one user definition.
    pub fn from_config(config: UserConfig) -> Result<User, UserError> {
        let name = config.name;
        if !valid_name(&name) {
            return Err(UserError::BadName(name));
        }
        let password = match config.password.as_deref() {
            None => None,
            Some(text) => Some(
                StoredHash::parse(text)
                    .map_err(|source| UserError::BadHash { user: name.clone(), source })?,
            ),
        };
        let mut authorized_keys = Vec::with_capacity(config.authorized_keys.len());
        for (i, line) in config.authorized_keys.iter().enumerate() {
            let key = ssh_key::PublicKey::from_openssh(line.trim()).map_err(|err| {
                UserError::BadKey { user: name.clone(), index: i + 1, reason: err.to_string() }
            })?;
            authorized_keys.push(key);
        }
        let mut mounts: Vec<(VPath, VPath)> = config.mounts.into_iter().collect();
        if let Some(home) = config.home {
            if mounts.iter().any(|(at, _)| at.is_root()) {
                return Err(UserError::Inconsistent {
                    user: name,
                    reason: "`home` and a mount at `/` both define the root",
                });
            }
            mounts.push((VPath::root(), home));
        }
        if mounts.is_empty() {
            return Err(UserError::NoMounts(name));
        }
        let rules = match config.permissions {
            Some(rules) => Rules::new(rules),
            None => Rules::allow_all(),
        };
        let protocols =
            config.protocols.unwrap_or_else(|| vec![ProtocolFamily::Ftp, ProtocolFamily::Sftp]);
        let has_credential = password.is_some() || !authorized_keys.is_empty();
        if config.passwordless && has_credential {
            return Err(UserError::Inconsistent {
                user: name,
                reason: "a passwordless identity cannot also have a password or keys",
            });
        }
        if protocols.contains(&ProtocolFamily::Tftp) && !config.passwordless {
            return Err(UserError::Inconsistent {
                user: name,
                reason: "TFTP has no login; only a `passwordless: true` identity can use it",
            });
        }
        let ssh_auth = config
            .ssh_auth
            .unwrap_or_else(|| vec![SshAuthMethod::Password, SshAuthMethod::PublicKey]);
        Ok(User {
            name,
            password,
            authorized_keys,
            mounts,
            rules,
            protocols,
            networks: config.networks,
            require_tls: config.require_tls,
            ssh_auth,
            disabled: config.disabled,
            passwordless: config.passwordless,
            quota: config.quota,
            bandwidth: config.bandwidth,
            max_sessions: config.max_sessions,
        })
    }

    /// Whether `addr` is inside one of the user's networks (or the user has none).
    pub fn allows_address(&self, addr: IpAddr) -> bool {
        let addr = canonical_ip(addr);
        self.networks.is_empty() || self.networks.iter().any(|net| net.contains(&addr))
    }

    /// Whether `key` is one of the user's authorized keys.
    pub fn has_key(&self, key: &ssh_key::PublicKey) -> bool {
        self.authorized_keys.iter().any(|k| k.key_data() == key.key_data())
    }
}

/// An IPv4 address arriving on an IPv6 socket (`::ffff:10.0.0.1`) is treated as IPv4, so
/// IPv4 networks in rules match it.
pub fn canonical_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

/// The contents of a users file: `users: [...]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

/// All users by name.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    users: HashMap<String, Arc<User>>,
    /// The most mounts any user has: each mount of a logged-in session holds a descriptor.
    max_mounts: usize,
}

impl UserDb {
    /// Checks every definition; names must be unique.
    pub fn from_configs(
        configs: impl IntoIterator<Item = UserConfig>,
    ) -> Result<UserDb, UserError> {
        let mut users = HashMap::new();
        for config in configs {
            let user = User::from_config(config)?;
            if users.contains_key(&user.name) {
                return Err(UserError::Duplicate(user.name));
            }
            users.insert(user.name.clone(), Arc::new(user));
        }
        let max_mounts = users.values().map(|user| user.mounts.len()).max().unwrap_or(0);
        Ok(UserDb { users, max_mounts })
    }

    /// The most mounts any user has, so the most folders one logged-in session holds open
    /// (each mount is a storage opened on its folder).
    pub fn max_mounts(&self) -> usize {
        self.max_mounts
    }

    /// The user called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.users.get(name)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// All users, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<UserDb, UserError> {
        let file: UsersFile = serde_yaml::from_str(yaml).expect("yaml");
        UserDb::from_configs(file.users)
    }

    #[test]
    fn full_user_definition() {
        let db = parse(
            r#"
users:
  - name: acme
    password: "$2b$04$abcdefghijklmnopqrstuu5Tm1bO7ZLz5jkBF1jOuSaWTNcHeGZvW"
    authorized_keys:
      - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxEfFNXmn1Ufeq1h5zIiZFxJEwxy9cxRtYNbh8m0WbB acme@laptop"
    home: partners/acme
    mounts: { /firmware: firmware }
    permissions:
      /: ["*"]
      /firmware: [read]
    protocols: [ftp, sftp]
    networks: [10.0.0.0/8, "2001:db8::/32"]
    require_tls: { control: true }
    ssh_auth: [publickey+password]
"#,
        )
        .expect("valid");
        let user = db.get("acme").expect("present");
        assert_eq!(user.mounts.len(), 2);
        assert_eq!(user.authorized_keys.len(), 1);
        assert_eq!(user.require_tls, TlsRequirement { control: true, data: false });
        assert!(user.allows_address("10.1.2.3".parse().expect("ip")));
        assert!(user.allows_address("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!user.allows_address("192.168.1.1".parse().expect("ip")));
        assert_eq!(user.rules.at(&"/firmware/a".parse().expect("p")), Permissions::READ);
    }

    #[test]
    fn bad_definitions_name_the_problem() {
        let cases = [
            ("users: [{name: 'a b', home: x}]", "not allowed"),
            ("users: [{name: a, home: x}, {name: a, home: y}]", "defined twice"),
            ("users: [{name: a, home: x, password: 'plain'}]", "unsupported password hash"),
            (
                "users: [{name: a, home: x, authorized_keys: ['ssh-ed25519 nope']}]",
                "authorized key #1",
            ),
            ("users: [{name: a}]", "neither a home nor mounts"),
            ("users: [{name: a, home: x, protocols: [tftp]}]", "passwordless"),
        ];
        for (yaml, expected) in cases {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.to_string().contains(expected), "{yaml}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_yaml::from_str::<UsersFile>("users: [{name: a, home: x, pasword: y}]")
            .expect_err("typo");
        assert!(err.to_string().contains("pasword"), "{err}");
    }
}
