//! The `tftp` section of the configuration.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::options::MAX_TIMEOUT_SECS;
use crate::packet::MAX_BLOCK_SIZE;
use crate::remap::RemapRule;
use crate::rules::AccessRule;

/// The `tftp` section: where to listen, who may do what, and how transfers behave.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TftpConfig {
    /// UDP addresses to serve, such as `0.0.0.0:69` and `[::]:69` (an IPv6 wildcard serves
    /// IPv6 only; list both for both). Empty: TFTP is not served.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Source networks mapped onto identities, tried in order; the first match wins. A client
    /// no rule matches is refused with "access violation".
    #[serde(default)]
    pub rules: Vec<AccessRule>,
    /// Regex rewrite rules for requested file names, tried in order; the first match wins.
    #[serde(default)]
    pub remap: Vec<RemapRule>,
    /// Lowercase requested names and read `\` as `/`, for devices that send DOS paths.
    /// Applied before `remap`.
    #[serde(default)]
    pub dos_paths: bool,
    /// How long to wait for an answer before retransmitting, unless the client negotiates
    /// `timeout` (whole seconds, 1-255).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Retransmissions of the same packet before a transfer is abandoned.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Transfers at once, from everyone. Each running transfer has a thread of its own.
    #[serde(default = "default_max_transfers")]
    pub max_transfers: usize,
    /// Transfers at once from one IP address (a lab of devices behind one NAT router shares
    /// it).
    #[serde(default = "default_max_transfers_per_address")]
    pub max_transfers_per_address: usize,
    /// What a request over `max_transfers` or `max_transfers_per_address` gets.
    #[serde(default)]
    pub over_cap: OverCap,
    /// Largest `blksize` granted (8-65464); larger requests are lowered to it. Lower it for
    /// paths that cannot carry fragmented datagrams (1468 fits an Ethernet MTU).
    #[serde(default = "default_max_block_size")]
    pub max_block_size: u16,
    /// Largest `windowsize` granted (1-1024); larger requests are lowered to it, and further to
    /// what a receiver's default socket buffer holds at the transfer's block size (see
    /// [`crate::options::window_cap`]: 92 blocks of 1468 bytes, 2 of 65464).
    #[serde(default = "default_max_window_size")]
    pub max_window_size: u16,
    /// Longest a transfer polls for its peer's next packet before it sleeps, used only while
    /// the peer answers that fast (a host on the same machine or next to it) and never by more
    /// transfers at once than the machine has CPUs but one. Polling spares the sleep and
    /// wake-up per block that bounds lock-step transfers on fast paths. `0s`: never poll.
    #[serde(default = "default_busy_wait", with = "humantime_serde")]
    pub busy_wait: Duration,
}

/// What a request over a cap gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverCap {
    /// No answer: the client asks again after its own timeout and is served once a place is
    /// free. Every client retransmits an unanswered request (RFC 1350), so devices booting
    /// together all get their files, a little later.
    #[default]
    Wait,
    /// ERROR 0 with the reason, at once: for clients that send a request only once, or that
    /// give up after fewer retries than a place takes to free, and would rather fail with the
    /// reason than with their own timeout.
    Refuse,
}

/// The largest `busy_wait` accepted: polling longer holds a CPU for nothing.
pub const MAX_BUSY_WAIT: Duration = Duration::from_millis(1);

/// The largest `max_window_size` accepted. Whatever the setting, a window is also lowered to
/// what a receive buffer holds ([`crate::options::window_cap`]).
pub const WINDOW_SIZE_LIMIT: u16 = 1024;

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_busy_wait() -> Duration {
    Duration::from_micros(100)
}

fn default_max_retries() -> u32 {
    5
}

fn default_max_transfers() -> usize {
    200
}

/// Enough for a lab of devices behind one NAT router booting together (50 at once is a
/// normal firmware push), still a budget: see `docs/SECURITY.md` for the memory it allows.
fn default_max_transfers_per_address() -> usize {
    64
}

fn default_max_block_size() -> u16 {
    MAX_BLOCK_SIZE as u16
}

fn default_max_window_size() -> u16 {
    64
}

impl Default for TftpConfig {
    fn default() -> Self {
        TftpConfig {
            listen: Vec::new(),
            rules: Vec::new(),
            remap: Vec::new(),
            dos_paths: false,
            timeout: default_timeout(),
            max_retries: default_max_retries(),
            max_transfers: default_max_transfers(),
            max_transfers_per_address: default_max_transfers_per_address(),
            over_cap: OverCap::default(),
            max_block_size: default_max_block_size(),
            max_window_size: default_max_window_size(),
            busy_wait: default_busy_wait(),
        }
    }
}

/// A setting outside what the server can work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tftp.{key}: {reason}")]
pub struct InvalidSetting {
    /// The key, such as `max_block_size`.
    pub key: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl TftpConfig {
    /// Checks the numeric settings (rules and remap rules are checked when the server binds).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key, reason: &str| Err(InvalidSetting { key, reason: reason.to_owned() });
        if self.timeout < Duration::from_millis(10)
            || self.timeout > Duration::from_secs(MAX_TIMEOUT_SECS)
        {
            return invalid("timeout", "must be between 10ms and 255s");
        }
        if self.max_retries == 0 || self.max_retries > 100 {
            return invalid("max_retries", "must be between 1 and 100");
        }
        if self.max_transfers == 0 {
            return invalid("max_transfers", "must be at least 1");
        }
        if self.max_transfers_per_address == 0 {
            return invalid("max_transfers_per_address", "must be at least 1");
        }
        if !(8..=MAX_BLOCK_SIZE as u16).contains(&self.max_block_size) {
            return invalid("max_block_size", "must be between 8 and 65464");
        }
        if !(1..=WINDOW_SIZE_LIMIT).contains(&self.max_window_size) {
            return invalid("max_window_size", "must be between 1 and 1024");
        }
        if self.busy_wait > MAX_BUSY_WAIT {
            return invalid("busy_wait", "must be at most 1ms (0s: never poll)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_is_the_default_and_valid() {
        let parsed: TftpConfig = serde_yaml::from_str("{}").expect("yaml");
        assert_eq!(parsed, TftpConfig::default());
        assert!(parsed.validate().is_ok());
        assert!(parsed.listen.is_empty());
    }

    #[test]
    fn a_full_section_parses() {
        let yaml = r#"
listen: ["127.0.0.1:6969", "[::1]:6969"]
rules:
  - { network: 10.20.0.0/16, identity: firmware-readers }
remap:
  - { pattern: '^/?pxelinux\.cfg/(.*)', replace: '/boot/pxe/\1' }
dos_paths: true
timeout: 500ms
max_retries: 3
max_transfers: 10
max_transfers_per_address: 2
over_cap: refuse
max_block_size: 1468
max_window_size: 16
busy_wait: 0s
"#;
        let parsed: TftpConfig = serde_yaml::from_str(yaml).expect("yaml");
        assert_eq!(parsed.listen.len(), 2);
        assert_eq!(parsed.timeout, Duration::from_millis(500));
        assert_eq!(parsed.remap[0].replace, r"/boot/pxe/\1");
        assert_eq!(parsed.busy_wait, Duration::ZERO);
        assert_eq!(parsed.over_cap, OverCap::Refuse);
        assert!(parsed.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = serde_yaml::from_str::<TftpConfig>("blocksize: 1468").expect_err("unknown key");
        assert!(err.to_string().contains("blocksize"), "{err}");
        let bad = [
            TftpConfig { max_block_size: 7, ..TftpConfig::default() },
            TftpConfig { max_window_size: 0, ..TftpConfig::default() },
            TftpConfig { max_window_size: 2000, ..TftpConfig::default() },
            TftpConfig { timeout: Duration::ZERO, ..TftpConfig::default() },
            TftpConfig { max_retries: 0, ..TftpConfig::default() },
            TftpConfig { max_transfers: 0, ..TftpConfig::default() },
            TftpConfig { busy_wait: Duration::from_millis(2), ..TftpConfig::default() },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
