//! The `sftp` section of the configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use wharf_access::SessionLimits;

/// Largest SSH packet a peer may send us; russh refuses anything above this.
pub const MAX_SSH_PACKET_SIZE: u32 = 65_535;

/// The `sftp` section: where the SSH server listens, its host keys and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// Addresses to listen on, such as `127.0.0.1:2222` or `[::]:22`. Empty: SFTP is not
    /// served.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Directory of the host keys (`ssh_host_<type>_key`, OpenSSH format). Missing keys are
    /// generated there at first start with mode 0600 and reused afterwards. The binary makes a
    /// relative path absolute (against the data directory) before [`crate::SftpServer::bind`].
    #[serde(default = "default_host_key_dir")]
    pub host_key_dir: PathBuf,
    /// Host key types to offer, most preferred first: `ed25519`, `ecdsa-p256`, `rsa` (RSA is
    /// signed with rsa-sha2-256/512 only, never SHA-1).
    #[serde(default = "default_host_key_types")]
    pub host_key_types: Vec<HostKeyType>,
    /// How long a client may take from connecting to being authenticated.
    #[serde(default = "default_auth_timeout", with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// Failed authentication attempts allowed per connection before it is closed.
    #[serde(default = "default_max_auth_attempts")]
    pub max_auth_attempts: usize,
    /// A connection that sends and receives nothing for this long is closed.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Caps on concurrent SFTP connections, in total and per client address.
    #[serde(default)]
    pub limits: SessionLimits,
    /// SSH channel window: bytes a client may send before waiting for the server to
    /// acknowledge them. Large windows keep uploads fast on links with latency.
    #[serde(default = "default_window_size")]
    pub window_size: u32,
    /// Largest SSH packet a client may send (at most 65535).
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: u32,
    /// Files and directories one SFTP session may hold open at once. OpenSSH's client lowers
    /// its number of parallel requests to this figure, so keep it at 64 or more.
    #[serde(default = "default_max_open_handles")]
    pub max_open_handles: usize,
}

/// A kind of host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum HostKeyType {
    /// Ed25519 (`ssh-ed25519`).
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA on NIST P-256 (`ecdsa-sha2-nistp256`).
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// RSA, 3072 bits, signing with `rsa-sha2-512` and `rsa-sha2-256` only.
    #[serde(rename = "rsa")]
    Rsa,
}

impl HostKeyType {
    /// The key file's name, as OpenSSH names its own.
    pub fn file_name(self) -> &'static str {
        match self {
            HostKeyType::Ed25519 => "ssh_host_ed25519_key",
            HostKeyType::EcdsaP256 => "ssh_host_ecdsa_key",
            HostKeyType::Rsa => "ssh_host_rsa_key",
        }
    }

    /// The label printed with fingerprints (as `ssh-keygen -l` shows it).
    pub fn label(self) -> &'static str {
        match self {
            HostKeyType::Ed25519 => "ED25519",
            HostKeyType::EcdsaP256 => "ECDSA",
            HostKeyType::Rsa => "RSA",
        }
    }

    /// The configuration name.
    pub fn config_name(self) -> &'static str {
        match self {
            HostKeyType::Ed25519 => "ed25519",
            HostKeyType::EcdsaP256 => "ecdsa-p256",
            HostKeyType::Rsa => "rsa",
        }
    }
}

fn default_host_key_dir() -> PathBuf {
    PathBuf::from("host-keys")
}

fn default_host_key_types() -> Vec<HostKeyType> {
    vec![HostKeyType::Ed25519, HostKeyType::EcdsaP256]
}

fn default_auth_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_auth_attempts() -> usize {
    6
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_window_size() -> u32 {
    16 * 1024 * 1024
}

fn default_max_packet_size() -> u32 {
    MAX_SSH_PACKET_SIZE
}

fn default_max_open_handles() -> usize {
    256
}

impl Default for SftpConfig {
    fn default() -> Self {
        SftpConfig {
            listen: Vec::new(),
            host_key_dir: default_host_key_dir(),
            host_key_types: default_host_key_types(),
            auth_timeout: default_auth_timeout(),
            max_auth_attempts: default_max_auth_attempts(),
            idle_timeout: default_idle_timeout(),
            limits: SessionLimits::default(),
            window_size: default_window_size(),
            max_packet_size: default_max_packet_size(),
            max_open_handles: default_max_open_handles(),
        }
    }
}

/// A setting of the `sftp` section that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No host key type is configured.
    #[error("sftp.host_key_types must name at least one key type")]
    NoHostKeyTypes,
    /// A host key type is listed twice.
    #[error("sftp.host_key_types lists `{0}` twice")]
    DuplicateHostKeyType(&'static str),
    /// The packet size is outside what SSH and russh allow.
    #[error("sftp.max_packet_size must be between 4096 and {MAX_SSH_PACKET_SIZE}, not {0}")]
    PacketSize(u32),
    /// The window cannot hold one packet.
    #[error("sftp.window_size ({window}) must be at least sftp.max_packet_size ({packet})")]
    WindowSize {
        /// The configured window.
        window: u32,
        /// The configured packet size.
        packet: u32,
    },
    /// No authentication attempt would be allowed.
    #[error("sftp.max_auth_attempts must be at least 1")]
    NoAuthAttempts,
    /// A timeout of zero would close every connection at once.
    #[error("sftp.{0} must be longer than zero")]
    ZeroTimeout(&'static str),
    /// No file could ever be opened.
    #[error("sftp.max_open_handles must be at least 1")]
    NoHandles,
}

impl SftpConfig {
    /// Checks the settings that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.host_key_types.is_empty() {
            return Err(ConfigError::NoHostKeyTypes);
        }
        for (i, kind) in self.host_key_types.iter().enumerate() {
            if self.host_key_types[..i].contains(kind) {
                return Err(ConfigError::DuplicateHostKeyType(kind.config_name()));
            }
        }
        if !(4096..=MAX_SSH_PACKET_SIZE).contains(&self.max_packet_size) {
            return Err(ConfigError::PacketSize(self.max_packet_size));
        }
        if self.window_size < self.max_packet_size {
            return Err(ConfigError::WindowSize {
                window: self.window_size,
                packet: self.max_packet_size,
            });
        }
        if self.max_auth_attempts == 0 {
            return Err(ConfigError::NoAuthAttempts);
        }
        if self.auth_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("auth_timeout"));
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("idle_timeout"));
        }
        if self.max_open_handles == 0 {
            return Err(ConfigError::NoHandles);
        }
        Ok(())
    }
}

/// Descriptors an SFTP session holds for a moment beside its handles: the two parent folders
/// cap-std opens for a rename, or an open refused at the handle cap. A session carries out
/// such requests one at a time (only reads run concurrently, on handles already open).
const DESCRIPTORS_PER_REQUEST: usize = 2;

impl SftpConfig {
    /// Descriptors admission takes for one SSH connection, besides one per mount of its
    /// user: its socket, one request in progress for each SFTP session it may run at once
    /// (one per session channel), and a floor of descriptors for open handles. Handles beyond
    /// the floor take theirs from the process's budget when they are opened, and are refused
    /// with a reason when it has none left (see `sftp::handles`), so `max_open_handles` does
    /// not multiply what every connection is charged.
    pub fn descriptors_per_connection(&self) -> usize {
        crate::ssh::MAX_CHANNELS_PER_CONNECTION
            .saturating_mul(DESCRIPTORS_PER_REQUEST)
            .saturating_add(1)
            .saturating_add(crate::sftp::HANDLE_DESCRIPTOR_FLOOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses() {
        let config: SftpConfig = serde_yaml::from_str(
            r#"
listen: ["127.0.0.1:2222", "[::1]:2222"]
host_key_dir: keys
host_key_types: [ecdsa-p256, ed25519, rsa]
auth_timeout: 30s
max_auth_attempts: 3
idle_timeout: 5m
limits: { max_sessions: 10, max_sessions_per_address: 2 }
window_size: 8388608
max_packet_size: 32768
max_open_handles: 100
"#,
        )
        .expect("valid");
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.host_key_types[0], HostKeyType::EcdsaP256);
        assert_eq!(config.auth_timeout, Duration::from_secs(30));
        assert_eq!(config.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.limits.max_sessions_per_address, 2);
        assert_eq!(config.max_packet_size, 32768);
        config.validate().expect("consistent");
    }

    #[test]
    fn defaults_are_valid_and_serve_nothing() {
        let config: SftpConfig = serde_yaml::from_str("{}").expect("empty section");
        assert_eq!(config, SftpConfig::default());
        assert!(config.listen.is_empty());
        config.validate().expect("defaults are consistent");
    }

    #[test]
    fn a_connection_is_admitted_without_its_handles_descriptors() {
        // The socket, one request of 2 on each of 4 channels, the handles' floor of 16;
        // handles beyond it pay for their own.
        let few = SftpConfig { max_open_handles: 8, ..SftpConfig::default() };
        let many = SftpConfig { max_open_handles: usize::MAX, ..SftpConfig::default() };
        assert_eq!(few.descriptors_per_connection(), 1 + 4 * 2 + 16);
        assert_eq!(many.descriptors_per_connection(), 1 + 4 * 2 + 16);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err =
            serde_yaml::from_str::<SftpConfig>("listen: []\nidle_timout: 5s\n").expect_err("typo");
        assert!(err.to_string().contains("idle_timout"), "{err}");
    }

    #[test]
    fn inconsistent_settings_are_named() {
        let cases: [(&str, &str); 5] = [
            ("host_key_types: []", "at least one key type"),
            ("host_key_types: [ed25519, ed25519]", "twice"),
            ("max_packet_size: 70000", "max_packet_size"),
            ("max_packet_size: 65535\nwindow_size: 1000", "window_size"),
            ("auth_timeout: 0s", "auth_timeout"),
        ];
        for (yaml, expected) in cases {
            let config: SftpConfig = serde_yaml::from_str(yaml).expect(yaml);
            let err = config.validate().expect_err(yaml);
            assert!(err.to_string().contains(expected), "{yaml}: {err}");
        }
    }
}
