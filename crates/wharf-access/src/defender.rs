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
//!
//! It scores attacks, not clumsy clients, since many legitimate clients may share one address
//! (a NAT): a mistyped password is forgiven when the same user then logs in from the same
//! address ([`Defender::forgive_failed_logins`]), and a name the storage cannot take (not
//! UTF-8, too long) is not an attack ([`Offense::for_refused_path`]). Front-ends do not score
//! commands they do not know either.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use wharf_vfs::PathError;

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
    /// What a path refused by `VPath::resolve` counts as: control bytes (NUL, escape
    /// sequences) are a hostile path, since no client has a reason to send them and they are
    /// how injection attempts look. A name that is not UTF-8 (a Latin-1 file name) or is too
    /// long for the storage is a client's habit, answered with a refusal and not scored.
    pub fn for_refused_path(err: &PathError) -> Option<Offense> {
        match err {
            PathError::ControlCharacter { .. } => Some(Offense::HostilePath),
            PathError::NotUtf8
            | PathError::ComponentTooLong
            | PathError::PathTooLong
            | PathError::TooManySymlinks
            | PathError::NotAName => None,
        }
    }

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

/// User names whose failed logins one address may have forgiven, at most, in one window:
/// enough for the users behind a NAT who mistype a password, and a bound on what a record
/// holds (8 entries of 12 bytes). Failures for further names count and are never forgiven.
const FORGIVABLE_NAMES: usize = 8;

#[derive(Debug, Clone)]
struct Record {
    score: u32,
    window_start: Instant,
    last_seen: Instant,
    banned_until: Option<Instant>,
    /// The points failed logins scored in this window, by user name (keyed hash), so that a
    /// successful login of that name can take them back.
    failed_logins: Vec<(u64, u32)>,
}

impl Record {
    fn new(now: Instant) -> Record {
        Record {
            score: 0,
            window_start: now,
            last_seen: now,
            banned_until: None,
            failed_logins: Vec::new(),
        }
    }

    /// Starts again from zero (a new window, or a ban over).
    fn restart(&mut self, now: Instant) {
        self.score = 0;
        self.window_start = now;
        self.failed_logins = Vec::new();
    }
}

/// Told of every ban this defender decides (not of those it restores), e.g. to share it with
/// the other nodes of a cluster. Called outside the defender's lock; must not block.
pub type BanHook = Box<dyn Fn(&Ban) + Send + Sync>;

/// Told of the points each scored offense adds to an address's score, and (negative) of the
/// points a forgiveness takes back, e.g. so that the nodes of a cluster add up one score per
/// address. Called outside the defender's lock; must not block.
pub type OffenseHook = Box<dyn Fn(IpAddr, i64) + Send + Sync>;

/// Scores addresses and bans them; shared by every protocol.
pub struct Defender {
    config: RwLock<DefenderConfig>,
    records: Mutex<HashMap<IpAddr, Record>>,
    /// Hashes user names for [`Record::failed_logins`], with a key of this process.
    names: RandomState,
    /// See [`Defender::on_ban`].
    on_ban: std::sync::OnceLock<BanHook>,
    /// See [`Defender::on_offense`].
    on_offense: std::sync::OnceLock<OffenseHook>,
    /// See [`Defender::report_bans_to`].
    ban_sink: std::sync::OnceLock<std::sync::Arc<dyn crate::audit::AuditSink>>,
}

impl std::fmt::Debug for Defender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defender").field("config", &self.config()).finish_non_exhaustive()
    }
}

fn to_wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now { SystemTime::now() + (at - now) } else { SystemTime::now() - (now - at) }
}

impl Defender {
    /// A defender with `config` and no history.
    pub fn new(config: DefenderConfig) -> Self {
        Defender {
            config: RwLock::new(config),
            records: Mutex::new(HashMap::new()),
            names: RandomState::new(),
            on_ban: std::sync::OnceLock::new(),
            on_offense: std::sync::OnceLock::new(),
            ban_sink: std::sync::OnceLock::new(),
        }
    }

    /// Tells `sink` of every ban decided from now on, by this defender or announced to it
    /// ([`Defender::announce_ban`]); once per process, a second sink is ignored.
    pub fn report_bans_to(&self, sink: std::sync::Arc<dyn crate::audit::AuditSink>) {
        let _ = self.ban_sink.set(sink);
    }

    /// Tells the ban sink (if any) that `address` is banned for `ban_time`, for `reason`:
    /// called for this defender's own bans, and by whoever decides a ban for it (the shared
    /// scores of a cluster).
    pub fn announce_ban(&self, address: IpAddr, ban_time: Duration, reason: &str) {
        if let Some(sink) = self.ban_sink.get() {
            sink.banned(address, ban_time, reason);
        }
    }

    /// Calls `hook` with every ban this defender decides from now on (once per process: a
    /// second hook is refused and returned).
    pub fn on_ban(&self, hook: BanHook) -> Result<(), BanHook> {
        self.on_ban.set(hook)
    }

    /// Calls `hook` with the points of every offense scored from now on that did not ban the
    /// address here, and with the points forgiven (once per process: a second hook is refused
    /// and returned).
    pub fn on_offense(&self, hook: OffenseHook) -> Result<(), OffenseHook> {
        self.on_offense.set(hook)
    }

    /// The settings in force.
    pub fn settings(&self) -> DefenderConfig {
        self.config()
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
                record.restart(now);
                Verdict::Allowed
            }
            None => Verdict::Allowed,
        }
    }

    /// Counts `offense` against `addr`; returns whether this banned it.
    pub fn report(&self, addr: IpAddr, offense: Offense) -> bool {
        self.score(addr, offense, None)
    }

    /// Counts a failed login of `user` from `addr`; returns whether this banned it. Unlike
    /// [`Defender::report`], the points can be taken back by
    /// [`Defender::forgive_failed_logins`].
    pub fn report_failed_login(&self, addr: IpAddr, user: &str) -> bool {
        self.score(addr, Offense::LoginFailed, Some(self.names.hash_one(user)))
    }

    /// `user` logged in from `addr`: the points that user's failed logins from there scored in
    /// the current window are taken back. Whoever succeeds knew the password, so those
    /// failures were typing, not guessing; failures for other names stay.
    pub fn forgive_failed_logins(&self, addr: IpAddr, user: &str) {
        let addr = canonical_ip(addr);
        let name = self.names.hash_one(user);
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let Some(record) = records.get_mut(&addr) else { return };
        if record.banned_until.is_some_and(|until| until > Instant::now()) {
            // A ban is served in full; a banned address cannot log in anyway.
            return;
        }
        if let Some(at) = record.failed_logins.iter().position(|(hash, _)| *hash == name) {
            let (_, points) = record.failed_logins.swap_remove(at);
            // The points are part of the score, which never goes below zero.
            record.score = record.score.saturating_sub(points);
            drop(records);
            if let Some(hook) = self.on_offense.get() {
                hook(addr, -i64::from(points));
            }
        }
    }

    fn score(&self, addr: IpAddr, offense: Offense, failed_login_of: Option<u64>) -> bool {
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
        let record = records.entry(addr).or_insert_with(|| Record::new(now));
        if record.banned_until.is_some_and(|until| until > now) {
            return false;
        }
        if now.duration_since(record.window_start) > config.observation_window {
            record.restart(now);
        }
        record.last_seen = now;
        let points = config.scores.of(offense);
        record.score = record.score.saturating_add(points);
        if let Some(name) = failed_login_of {
            let logins = &mut record.failed_logins;
            match logins.iter().position(|(hash, _)| *hash == name) {
                Some(at) => logins[at].1 = logins[at].1.saturating_add(points),
                None if logins.len() < FORGIVABLE_NAMES => logins.push((name, points)),
                None => {}
            }
        }
        if record.score < config.threshold {
            drop(records);
            if let Some(hook) = self.on_offense.get() {
                hook(addr, i64::from(points));
            }
            return false;
        }
        let until = now + config.ban_time;
        record.banned_until = Some(until);
        let score = record.score;
        drop(records);
        tracing::warn!(
            target: "wharf::defender",
            address = %addr,
            score,
            offense = offense.as_str(),
            ban_secs = config.ban_time.as_secs(),
            "address banned on every protocol"
        );
        self.announce_ban(addr, config.ban_time, offense.as_str());
        if let Some(hook) = self.on_ban.get() {
            let until_unix =
                to_wall_clock(until).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            hook(&Ban { address: addr, until_unix, score });
        }
        true
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

    /// Lifts the ban of `address` and forgets its score; whether it was banned.
    pub fn lift(&self, address: IpAddr) -> bool {
        let now = Instant::now();
        let address = canonical_ip(address);
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let banned =
            records.get(&address).is_some_and(|r| r.banned_until.is_some_and(|until| until > now));
        records.remove(&address);
        banned
    }

    /// Bans `address` for `ban_time` by an operator's decision (scored at the threshold),
    /// told to the ban hook and the ban sink like the defender's own bans. A longer ban held
    /// already is kept.
    pub fn ban_by_hand(&self, address: IpAddr, ban_time: Duration) -> Ban {
        let now = Instant::now();
        let address = canonical_ip(address);
        let threshold = self.config().threshold;
        let ban = {
            let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            let record = records.entry(address).or_insert_with(|| Record::new(now));
            let until = (now + ban_time).max(record.banned_until.unwrap_or(now));
            record.banned_until = Some(until);
            record.score = record.score.max(threshold);
            let until_unix =
                to_wall_clock(until).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            Ban { address, until_unix, score: record.score }
        };
        tracing::warn!(target: "wharf::defender", %address, ban_secs = ban_time.as_secs(), "address banned by an operator");
        if let Some(hook) = self.on_ban.get() {
            hook(&ban);
        }
        self.announce_ban(address, ban_time, "operator");
        ban
    }

    /// Restores bans saved by [`Defender::save`] (or shared by other nodes) that have not
    /// ended yet; a ban held already that ends later is kept.
    pub fn restore(&self, bans: &[Ban]) {
        let now_unix =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        for ban in bans.iter().filter(|b| b.until_unix > now_unix) {
            let until = now + Duration::from_secs(ban.until_unix - now_unix);
            let address = canonical_ip(ban.address);
            // A ban already held that ends later stays as it is (the same ban, shared by
            // another node, comes back with the same end).
            if records.get(&address).is_some_and(|r| r.banned_until.is_some_and(|u| u >= until)) {
                continue;
            }
            let mut record = Record::new(now);
            record.score = ban.score;
            record.banned_until = Some(until);
            records.insert(address, record);
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
    fn an_operator_bans_and_lifts_by_hand() {
        let d = defender(6, Duration::from_secs(60));
        let a = ip("10.0.0.9");
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = shared.clone();
        assert!(
            d.on_ban(Box::new(move |ban| seen.lock().expect("lock").push(ban.address))).is_ok()
        );
        let ban = d.ban_by_hand(a, Duration::from_secs(600));
        assert_eq!((ban.address, ban.score), (a, 6));
        assert!(!d.verdict(a).is_allowed());
        assert_eq!(*shared.lock().expect("lock"), vec![a], "shared like the defender's own bans");
        assert!(d.lift(a), "it was banned");
        assert!(d.verdict(a).is_allowed());
        assert!(!d.report(a, Offense::LoginFailed), "its score was forgotten too");
        assert!(!d.lift(ip("10.0.0.10")), "nothing to lift");
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
    fn decided_bans_are_told_and_restored_ones_keep_the_later_end() {
        let d = defender(2, Duration::from_secs(600));
        let told = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        let hook: BanHook = Box::new(move |ban| sink.lock().expect("lock").push(ban.clone()));
        assert!(d.on_ban(hook).is_ok());
        let second: BanHook = Box::new(|_| {});
        assert!(d.on_ban(second).is_err(), "one hook per defender");
        let a = ip("10.0.0.1");
        assert!(d.report(a, Offense::LoginFailed));
        let bans = told.lock().expect("lock").clone();
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].address, a);
        assert_eq!(bans, d.bans(), "what is told is what is held");

        // Restoring a shorter ban of the same address keeps the later end; a ban restored is
        // not told again (it was decided elsewhere).
        let held = d.bans()[0].clone();
        d.restore(&[Ban { until_unix: held.until_unix - 300, ..held.clone() }]);
        assert_eq!(d.bans(), std::slice::from_ref(&held));
        let b = ip("10.0.0.2");
        d.restore(&[Ban { address: b, ..held }]);
        assert!(matches!(d.verdict(b), Verdict::Banned { .. }));
        assert_eq!(told.lock().expect("lock").len(), 1);
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
    fn a_successful_login_takes_back_only_that_users_failed_logins() {
        let d = defender(10, Duration::from_secs(60));
        let a = ip("10.0.0.1");
        // Two mistyped passwords (4 points), then the right one: forgiven.
        assert!(!d.report_failed_login(a, "alice"));
        assert!(!d.report_failed_login(a, "alice"));
        d.forgive_failed_logins(a, "alice");
        // Four more of alice's would have reached 12 without the forgiveness.
        for _ in 0..4 {
            assert!(!d.report_failed_login(a, "alice"));
        }
        // Another name's success forgives nothing of alice's: guesses against her stay.
        d.forgive_failed_logins(a, "mallory");
        assert!(d.report_failed_login(a, "alice"), "10 points: banned");
        // A ban is served in full.
        d.forgive_failed_logins(a, "alice");
        assert!(matches!(d.verdict(a), Verdict::Banned { .. }));
    }

    #[test]
    fn forgiveness_leaves_other_offenses_and_is_bounded() {
        let d = defender(100, Duration::from_secs(60));
        let a = ip("10.0.0.2");
        assert!(!d.report(a, Offense::HostilePath));
        assert!(!d.report(a, Offense::LoginFailed), "a failed login with no name: never forgiven");
        for user in 0..=FORGIVABLE_NAMES {
            assert!(!d.report_failed_login(a, &format!("user{user}")));
        }
        for user in 0..=FORGIVABLE_NAMES {
            d.forgive_failed_logins(a, &format!("user{user}"));
        }
        let score = |d: &Defender| d.records.lock().expect("lock")[&a].score;
        // Left: the hostile path (2), the unnamed failure (2), and the name past the bound (2).
        assert_eq!(score(&d), 6);
        assert!(d.records.lock().expect("lock")[&a].failed_logins.is_empty());
    }

    #[test]
    fn only_control_bytes_make_a_refused_path_an_offense() {
        use wharf_vfs::PathError;
        let hostile = PathError::ControlCharacter { byte: 0 };
        assert_eq!(Offense::for_refused_path(&hostile), Some(Offense::HostilePath));
        for clumsy in [PathError::NotUtf8, PathError::ComponentTooLong, PathError::PathTooLong] {
            assert_eq!(Offense::for_refused_path(&clumsy), None, "{clumsy:?}");
        }
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
