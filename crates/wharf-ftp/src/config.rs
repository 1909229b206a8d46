//! The `ftp` section of the configuration.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use wharf_access::SessionLimits;

/// Configuration of the FTP front-end.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FtpConfig {
    /// Addresses the control connections are accepted on (IPv4 and IPv6; port 0 picks a free
    /// port). Empty: FTP is not served.
    pub listen: Vec<SocketAddr>,
    /// Ports passive data connections (`PASV`/`EPSV`) are offered on, as `first-last`
    /// (both included), for firewalls that open a fixed range. Unset: any free port.
    pub passive_ports: Option<PortRange>,
    /// Address announced in `PASV` replies: `local` (the address the client reached this
    /// server on, right without NAT) or a public IPv4 address when the server sits behind NAT.
    pub passive_address: PassiveAddress,
    /// Whether active mode (`PORT`/`EPRT`) is offered. Even then, the server only connects
    /// back to the client's own address and to ports from 1024 up.
    pub active_mode: bool,
    /// How long the server waits for a data connection to be made.
    #[serde(with = "humantime_serde")]
    pub data_connect_timeout: Duration,
    /// How long a data connection may stall (no byte moving) before the transfer fails.
    #[serde(with = "humantime_serde")]
    pub data_stall_timeout: Duration,
    /// How long a logged-in session may stay without a command (transfers excepted).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a client has from connecting to logging in.
    #[serde(with = "humantime_serde")]
    pub login_timeout: Duration,
    /// Failed logins after which the connection is closed (each failure is also delayed by
    /// the shared login).
    pub max_login_failures: u32,
    /// Caps on sessions, in total and per client address.
    pub limits: SessionLimits,
    /// User that `USER anonymous` (or `ftp`) logs in as, read-only, with any password. The
    /// user must be defined with `passwordless: true`. Unset: no anonymous login.
    pub anonymous_user: Option<String>,
    /// Text of the `220` greeting.
    pub banner: String,
    /// Least time between a client sending `PASV`/`EPSV` and its reply arriving, counting the
    /// network's round trip (the kernel's smallest estimate for the control connection): the
    /// server holds the reply for what the network does not already take. At most
    /// [`MAX_PASSIVE_REPLY_DELAY`]; `0s` turns it off. curl 7.x and 8.0 to 8.6 wait a whole
    /// second for a data connection when the reply is already there the moment they look for
    /// it (see `crate::pacing`); only nearby clients that have not sent `FEAT` are ever held,
    /// and only speed depends on it.
    #[serde(deserialize_with = "passive_reply_delay")]
    pub passive_reply_delay: Duration,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2121)],
            passive_ports: None,
            passive_address: PassiveAddress::Local,
            active_mode: true,
            data_connect_timeout: Duration::from_secs(30),
            data_stall_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            max_login_failures: 3,
            limits: SessionLimits::default(),
            anonymous_user: None,
            banner: "Wharf FTP server ready.".to_owned(),
            passive_reply_delay: DEFAULT_PASSIVE_REPLY_DELAY,
        }
    }
}

/// The default of [`FtpConfig::passive_reply_delay`].
pub const DEFAULT_PASSIVE_REPLY_DELAY: Duration = Duration::from_micros(100);

/// The most [`FtpConfig::passive_reply_delay`] may be: each passive transfer of a nearby
/// client pays it once.
pub const MAX_PASSIVE_REPLY_DELAY: Duration = Duration::from_micros(200);

fn passive_reply_delay<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let delay: Duration = humantime_serde::deserialize(deserializer)?;
    if delay > MAX_PASSIVE_REPLY_DELAY {
        return Err(serde::de::Error::custom(format!(
            "passive_reply_delay {} is more than the most allowed, {}",
            humantime_serde::re::humantime::format_duration(delay),
            humantime_serde::re::humantime::format_duration(MAX_PASSIVE_REPLY_DELAY),
        )));
    }
    Ok(delay)
}

/// A range of TCP ports, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (included).
    pub last: u16,
}

impl PortRange {
    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// Never empty: a range holds at least its first port.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a port range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port range `{0}`: expected `first-last` with 1 <= first <= last <= 65535")]
pub struct PortRangeError(String);

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || PortRangeError(text.to_owned());
        let (first, last) = text.split_once('-').ok_or_else(invalid)?;
        let first: u16 = first.trim().parse().map_err(|_| invalid())?;
        let last: u16 = last.trim().parse().map_err(|_| invalid())?;
        if first == 0 || first > last {
            return Err(invalid());
        }
        Ok(PortRange { first, last })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The address `PASV` replies announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassiveAddress {
    /// The local address of the client's control connection.
    #[default]
    Local,
    /// A fixed public address (NAT).
    Public(Ipv4Addr),
}

impl<'de> Deserialize<'de> for PassiveAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.eq_ignore_ascii_case("local") {
            return Ok(PassiveAddress::Local);
        }
        text.parse::<Ipv4Addr>().map(PassiveAddress::Public).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid passive_address `{text}`: expected `local` or an IPv4 address"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<FtpConfig, String> {
        serde_yaml::from_str(yaml).map_err(|err| err.to_string())
    }

    #[test]
    fn full_section_parses() {
        let config = parse(
            r#"
listen: ["0.0.0.0:21", "[::]:21"]
passive_ports: 50000-50100
passive_address: 203.0.113.7
active_mode: false
data_connect_timeout: 10s
data_stall_timeout: 2m
idle_timeout: 15m
login_timeout: 30s
max_login_failures: 5
limits: { max_sessions: 10, max_sessions_per_address: 2 }
anonymous_user: guest
banner: Hello
passive_reply_delay: 50us
"#,
        )
        .expect("valid");
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.passive_ports, Some(PortRange { first: 50000, last: 50100 }));
        assert_eq!(config.passive_address, PassiveAddress::Public(Ipv4Addr::new(203, 0, 113, 7)));
        assert!(!config.active_mode);
        assert_eq!(config.idle_timeout, Duration::from_secs(900));
        assert_eq!(config.limits.max_sessions_per_address, 2);
        assert_eq!(config.anonymous_user.as_deref(), Some("guest"));
        assert_eq!(config.passive_reply_delay, Duration::from_micros(50));
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(parse("{}").expect("empty section"), FtpConfig::default());
        let err = parse("pasive_ports: 1-2").expect_err("typo");
        assert!(err.contains("pasive_ports"), "{err}");
        let err = parse("passive_ports: 60000-50000").expect_err("reversed");
        assert!(err.contains("60000-50000"), "{err}");
        let err = parse("passive_address: nat").expect_err("bad address");
        assert!(err.contains("local"), "{err}");
        assert_eq!(
            parse("passive_address: LOCAL").map(|c| c.passive_address),
            Ok(PassiveAddress::Local)
        );
        assert_eq!("1-1".parse::<PortRange>().map(|r| r.len()), Ok(1));
        assert_eq!(
            parse("passive_reply_delay: 0s").map(|c| c.passive_reply_delay),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            parse("passive_reply_delay: 200us").map(|c| c.passive_reply_delay),
            Ok(MAX_PASSIVE_REPLY_DELAY)
        );
        let err = parse("passive_reply_delay: 1ms").expect_err("over the bound");
        assert!(err.contains("passive_reply_delay 1ms") && err.contains("200us"), "{err}");
    }
}
