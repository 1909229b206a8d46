//! The defender: one score per source address across every protocol, so that an address
//! guessing passwords over SSH is banned from FTP and TFTP too.
//!
//! Each offense (failed login, refused hostile path, protocol error, bounce attempt) adds its
//! weight to the address's score; scores older than the observation window start again from
//! zero. Past the threshold the address is banned for the ban time: front-ends close its
//! connections at accept and TFTP ignores its requests. Allow-listed networks are never
//! scored; deny-listed networks are always refused. The state lives in memory, so it
//! survives a reload (only the settings are replaced), and can be saved to a file so it
//! survives a restart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::user::canonical_ip;

/// Something an address did that counts against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offense {
    /// A login failed (wrong password, unknown user, refused key).
    LoginFailed,
    /// A request named a path that was refused as malformed (control bytes, too long, ...).
    HostilePath,
    /// A malformed or abusive protocol message (over-long line, garbage packet, ...).
    ProtocolError,
    /// An FTP PORT/EPRT pointing elsewhere than the client (a bounce attempt).
    BounceAttempt,
}

impl Offense {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Offense::LoginFailed => "login_failed",
            Offense::HostilePath => "hostile_path",
            Offense::ProtocolError => "protocol_error",
            Offense::BounceAttempt => "bounce_attempt",
        }
    }
}

/// Weights of each offense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffenseScores {
    /// A failed login.
    #[serde(default = "score_login")]
    pub login_failed: u32,
    /// A refused hostile path.
    #[serde(default = "score_path")]
    pub hostile_path: u32,
    /// A protocol error.
    #[serde(default = "score_protocol")]
    pub protocol_error: u32,
    /// A bounce attempt.
    #[serde(default = "score_bounce")]
    pub bounce_attempt: u32,
}

fn score_login() -> u32 {
    2
}
fn score_path() -> u32 {
    2
}
fn score_protocol() -> u32 {
    1
}
fn score_bounce() -> u32 {
    5
}

impl Default for OffenseScores {
    fn default() -> Self {
        OffenseScores {
            login_failed: score_login(),
            hostile_path: score_path(),
            protocol_error: score_protocol(),
            bounce_attempt: score_bounce(),
        }
    }
}

impl OffenseScores {
    fn of(&self, offense: Offense) -> u32 {
        match offense {
            Offense::LoginFailed => self.login_failed,
            Offense::HostilePath => self.hostile_path,
            Offense::ProtocolError => self.protocol_error,
            Offense::BounceAttempt => self.bounce_attempt,
        }
    }
}

/// The `defender` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenderConfig {
    /// Whether offenses are scored and addresses banned (deny lists apply regardless).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Score at which an address is banned.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// How long a ban lasts.
    #[serde(default = "default_ban_time", with = "humantime_serde")]
    pub ban_time: Duration,
    /// Scores older than this start again from zero.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub observation_window: Duration,
    /// Weight of each offense.
    #[serde(default)]
    pub scores: OffenseScores,
    /// Networks never scored nor banned (monitoring, the office).
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// Networks always refused.
    #[serde(default)]
    pub deny: Vec<IpNet>,
    /// Addresses tracked at most; when full, records without a ban are dropped so a flood of
    /// spoofed sources cannot exhaust memory.
    #[serde(default = "default_max_hosts")]
    pub max_tracked_addresses: usize,
}

fn default_enabled() -> bool {
    true
}
fn default_threshold() -> u32 {
    15
}
fn default_ban_time() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_window() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_max_hosts() -> usize {
    100_000
}

impl Default for DefenderConfig {
    fn default() -> Self {
        DefenderConfig {
            enabled: default_enabled(),
            threshold: default_threshold(),
            ban_time: default_ban_time(),
            observation_window: default_window(),
            scores: OffenseScores::default(),
            allow: Vec::new(),
            deny: Vec::new(),
            max_tracked_addresses: default_max_hosts(),
        }
    }
}

/// Whether an address may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Banned for misbehaving, until this time.
    Banned {
        /// When the ban ends.
        until: SystemTime,
    },
    /// In a deny-listed network.
    Denied,
}

impl Verdict {
    /// Whether the address may connect.
    pub fn is_allowed(self) -> bool {
        self == Verdict::Allowed
    }
}

/// A current ban, for `wharf bans` and the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned address.
    pub address: IpAddr,
    /// When the ban ends, in seconds since the Unix epoch.
    pub until_unix: u64,
    /// The score that triggered it.
    pub score: u32,
}

#[derive(Debug, Clone)]
struct Record {
    score: u32,
    window_start: Instant,
    last_seen: Instant,
    banned_until: Option<Instant>,
}

/// Scores addresses and bans them; shared by every protocol.
#[derive(Debug)]
pub struct Defender {
    config: RwLock<DefenderConfig>,
    records: Mutex<HashMap<IpAddr, Record>>,
}

fn to_wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now { SystemTime::now() + (at - now) } else { SystemTime::now() - (now - at) }
}

impl Defender {
    /// A defender with `config` and no history.
    pub fn new(config: DefenderConfig) -> Self {
        Defender { config: RwLock::new(config), records: Mutex::new(HashMap::new()) }
    }

    /// A defender that scores nothing and bans nobody (until reconfigured).
    pub fn disabled() -> Self {
        Defender::new(DefenderConfig { enabled: false, ..DefenderConfig::default() })
    }

    fn config(&self) -> DefenderConfig {
        match self.config.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the settings (reload); scores and bans are kept.
    pub fn reconfigure(&self, config: DefenderConfig) {
        match self.config.write() {
            Ok(mut slot) => *slot = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    /// Whether `addr` may connect now.
    pub fn verdict(&self, addr: IpAddr) -> Verdict {
        let addr = canonical_ip(addr);
        let config = self.config();
        if config.allow.iter().any(|net| net.contains(&addr)) {
            return Verdict::Allowed;
        }
        if config.deny.iter().any(|net| net.contains(&addr)) {
            return Verdict::Denied;
        }
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        match records.get_mut(&addr).and_then(|r| r.banned_until.map(|until| (r, until))) {
            Some((_, until)) if until > now => Verdict::Banned { until: to_wall_clock(until) },
            Some((record, _)) => {
                // The ban is over: the address starts again from zero.
                record.banned_until = None;
                record.score = 0;
                record.window_start = now;
                Verdict::Allowed
            }
            None => Verdict::Allowed,
        }
    }

    /// Counts `offense` against `addr`; returns whether this banned it.
    pub fn report(&self, addr: IpAddr, offense: Offense) -> bool {
        let addr = canonical_ip(addr);
        let config = self.config();
        if !config.enabled || config.allow.iter().any(|net| net.contains(&addr)) {
            return false;
        }
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if !records.contains_key(&addr) && records.len() >= config.max_tracked_addresses {
            Self::evict(&mut records, now);
        }
        let record = records.entry(addr).or_insert(Record {
            score: 0,
            window_start: now,
            last_seen: now,
            banned_until: None,
        });
        if record.banned_until.is_some_and(|until| until > now) {
            return false;
        }
        if now.duration_since(record.window_start) > config.observation_window {
            record.score = 0;
            record.window_start = now;
        }
        record.last_seen = now;
        record.score = record.score.saturating_add(config.scores.of(offense));
        if record.score >= config.threshold {
            record.banned_until = Some(now + config.ban_time);
            tracing::warn!(
                target: "wharf::defender",
                address = %addr,
                score = record.score,
                offense = offense.as_str(),
                ban_secs = config.ban_time.as_secs(),
                "address banned on every protocol"
            );
            return true;
        }
        false
    }

    /// Drops expired records, then the least recently seen unbanned ones, to make room.
    fn evict(records: &mut HashMap<IpAddr, Record>, now: Instant) {
        records.retain(|_, r| r.banned_until.is_some_and(|until| until > now));
        if records.is_empty() {
            return;
        }
        // Everything left is banned; drop the ban that ends first.
        if let Some(addr) = records.iter().min_by_key(|(_, r)| r.banned_until).map(|(a, _)| *a) {
            records.remove(&addr);
        }
    }

    /// Current bans, soonest to end first.
    pub fn bans(&self) -> Vec<Ban> {
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut bans: Vec<Ban> = records
            .iter()
            .filter_map(|(addr, r)| {
                let until = r.banned_until.filter(|until| *until > now)?;
                let until_unix = to_wall_clock(until).duration_since(UNIX_EPOCH).ok()?.as_secs();
                Some(Ban { address: *addr, until_unix, score: r.score })
            })
            .collect();
        bans.sort_by_key(|b| b.until_unix);
        bans
    }

    /// Restores bans saved by [`Defender::save`] that have not ended yet.
    pub fn restore(&self, bans: &[Ban]) {
        let now_unix =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        for ban in bans.iter().filter(|b| b.until_unix > now_unix) {
            let left = Duration::from_secs(ban.until_unix - now_unix);
            records.insert(
                canonical_ip(ban.address),
                Record {
                    score: ban.score,
                    window_start: now,
                    last_seen: now,
                    banned_until: Some(now + left),
                },
            );
        }
    }

    /// Saves the current bans as JSON-compatible YAML to `path` (written beside and renamed,
    /// so a reader never sees half a file).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_yaml::to_string(&self.bans()).map_err(std::io::Error::other)?;
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, path)
    }

    /// Reads bans saved by [`Defender::save`]; a missing file means none.
    pub fn load_saved(path: &Path) -> std::io::Result<Vec<Ban>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml::from_str(&text).map_err(std::io::Error::other),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn defender(threshold: u32, ban: Duration) -> Defender {
        Defender::new(DefenderConfig {
            threshold,
            ban_time: ban,
            allow: vec!["192.168.0.0/16".parse().expect("net")],
            deny: vec!["203.0.113.0/24".parse().expect("net")],
            ..DefenderConfig::default()
        })
    }

    #[test]
    fn bans_past_the_threshold_and_expires() {
        let d = defender(6, Duration::from_millis(200));
        let a = ip("10.0.0.1");
        assert!(!d.report(a, Offense::LoginFailed));
        assert!(!d.report(a, Offense::LoginFailed));
        assert!(d.verdict(a).is_allowed());
        assert!(d.report(a, Offense::LoginFailed), "third failure reaches 6");
        assert!(matches!(d.verdict(a), Verdict::Banned { .. }));
        assert!(
            matches!(d.verdict(ip("::ffff:10.0.0.1")), Verdict::Banned { .. }),
            "same host over IPv6"
        );
        assert!(d.verdict(ip("10.0.0.2")).is_allowed());
        assert_eq!(d.bans().len(), 1);
        std::thread::sleep(Duration::from_millis(250));
        assert!(d.verdict(a).is_allowed(), "the ban expires");
        assert!(!d.report(a, Offense::LoginFailed), "and the score starts over");
    }

    #[test]
    fn allow_and_deny_lists() {
        let d = defender(1, Duration::from_secs(60));
        for _ in 0..10 {
            assert!(!d.report(ip("192.168.1.5"), Offense::BounceAttempt));
        }
        assert!(d.verdict(ip("192.168.1.5")).is_allowed(), "allow-listed: never banned");
        assert_eq!(d.verdict(ip("203.0.113.9")), Verdict::Denied);
    }

    #[test]
    fn state_survives_reconfiguration_and_can_be_saved() {
        let d = defender(2, Duration::from_secs(600));
        d.report(ip("10.9.9.9"), Offense::BounceAttempt);
        d.reconfigure(DefenderConfig { threshold: 50, ..DefenderConfig::default() });
        assert!(matches!(d.verdict(ip("10.9.9.9")), Verdict::Banned { .. }), "kept across reload");
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("bans.yaml");
        d.save(&file).expect("save");
        let fresh = Defender::new(DefenderConfig::default());
        fresh.restore(&Defender::load_saved(&file).expect("load"));
        assert!(
            matches!(fresh.verdict(ip("10.9.9.9")), Verdict::Banned { .. }),
            "kept across restart"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let d = Defender::new(DefenderConfig {
            max_tracked_addresses: 100,
            ..DefenderConfig::default()
        });
        for i in 0..10_000u32 {
            d.report(IpAddr::from(i.to_be_bytes()), Offense::ProtocolError);
        }
        assert!(d.records.lock().expect("lock").len() <= 100);
    }
}
