//! Admission: the one check every TCP listener makes on a new connection, called in its accept
//! loop before anything is spent on the connection (no task, no TLS handshake, no SSH key
//! exchange, no buffer).
//!
//! In order:
//!
//! 1. the defender's verdict: a banned or deny-listed address is refused and takes no place;
//! 2. the listener's session caps, in total and per address ([`SessionLimiter`]);
//! 3. the process's descriptor budget ([`DescriptorBudget`]): the worst case of one more
//!    session of this listener must fit, or the connection is refused as "too many sessions".
//!
//! An admitted connection holds an [`AdmissionPermit`] for its life; dropping the permit gives
//! back its place under the caps and its descriptors.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::defender::Verdict;
use crate::gateway::Gateway;
use crate::limits::{LimitExceeded, SessionLimiter, SessionLimits, SessionPermit};
use crate::shared_places::{SharedCaps, SharedPlace, SharedPlaceRefused};
use crate::user::canonical_ip;

/// Descriptors the process may spend on sessions: its open-file limit less what it needs for
/// itself (listeners, logs, TFTP transfers, the runtime).
///
/// One per process, in the [`Gateway`], shared by every listener. A session holds its worst
/// case from admission to its end, so running out of descriptors shows as refusals at accept,
/// never as a failed `open` or `accept` in the middle of someone's session.
#[derive(Debug, Clone)]
pub struct DescriptorBudget {
    state: Arc<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    capacity: AtomicUsize,
    held: AtomicUsize,
}

/// Descriptors taken from a [`DescriptorBudget`], given back when dropped.
#[derive(Debug)]
pub struct DescriptorPermit {
    count: usize,
    state: Arc<BudgetState>,
}

impl DescriptorBudget {
    /// A budget with room for `capacity` descriptors.
    pub fn new(capacity: usize) -> Self {
        let state = BudgetState { capacity: AtomicUsize::new(capacity), held: AtomicUsize::new(0) };
        DescriptorBudget { state: Arc::new(state) }
    }

    /// A budget every session fits in: what a [`Gateway`] starts with. The binary sets the
    /// real capacity from its open-file limit.
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    /// Changes the room (the reserve depends on the configuration and the users, which a reload
    /// may change). Sessions already admitted keep their descriptors; if they now exceed the
    /// room, new sessions are refused until enough have ended.
    pub fn set_capacity(&self, capacity: usize) {
        self.state.capacity.store(capacity, Ordering::Release);
    }

    /// The room, in descriptors.
    pub fn capacity(&self) -> usize {
        self.state.capacity.load(Ordering::Acquire)
    }

    /// Descriptors held by admitted sessions now.
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::Acquire)
    }

    /// Takes `count` descriptors if they fit, never waiting. Admission takes a session's fixed
    /// worst case with it; what a session opens on demand (an SFTP handle's files) is taken
    /// when opened, and refused with a reason when the budget has no room.
    pub fn try_take(&self, count: usize) -> Option<DescriptorPermit> {
        let capacity = self.capacity();
        self.state
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(count).filter(|&total| total <= capacity)
            })
            .ok()?;
        Some(DescriptorPermit { count, state: self.state.clone() })
    }
}

impl Default for DescriptorBudget {
    fn default() -> Self {
        Self::unlimited()
    }
}

impl Drop for DescriptorPermit {
    fn drop(&mut self) {
        self.state.held.fetch_sub(self.count, Ordering::AcqRel);
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The defender banned the address, until this time.
    #[error("the address is banned by the defender")]
    Banned {
        /// When the ban ends.
        until: SystemTime,
    },
    /// The address is in a deny-listed network.
    #[error("the address is in a deny-listed network")]
    Denied,
    /// The listener's cap on sessions in total is reached.
    #[error("the listener's total session cap is reached")]
    Total,
    /// The listener's cap on sessions from one address is reached.
    #[error("the listener's per-address session cap is reached")]
    PerAddress,
    /// The process's descriptor budget cannot hold the worst case of one more session.
    #[error("the descriptor budget cannot hold one more session")]
    Descriptors,
}

impl Refusal {
    /// What the client may be told, for protocols that can say something before closing:
    /// nothing for a banned or deny-listed address, which learns nothing; the descriptor
    /// budget reads as any other "too many sessions".
    pub fn client_text(self) -> Option<&'static str> {
        match self {
            Refusal::Banned { .. } | Refusal::Denied => None,
            Refusal::Total | Refusal::Descriptors => Some("too many sessions; try again later"),
            Refusal::PerAddress => Some("too many sessions from your address"),
        }
    }
}

/// One admitted connection's place under the caps and its descriptors; both are given back
/// when the permit is dropped.
#[derive(Debug)]
pub struct AdmissionPermit {
    _session: SessionPermit,
    _descriptors: DescriptorPermit,
}

/// The admission step of one listener (or of listeners sharing caps, such as FTP's and
/// implicit FTPS's). Cheap to clone; clones share the caps.
#[derive(Debug, Clone)]
pub struct Admission {
    listener: &'static str,
    gateway: Arc<Gateway>,
    limiter: SessionLimiter,
    descriptors_per_session: usize,
    /// Whether sessions log in, and so hold one descriptor per mount of their user.
    logs_in: bool,
}

impl Admission {
    /// The admission of `listener` (its name in logs) with the caps `limits`, whose sessions
    /// each hold at most `descriptors_per_session` descriptors besides the user's mounts (the
    /// most mounts any user has is added at each admission, since a reload may change it).
    pub fn new(
        listener: &'static str,
        gateway: Arc<Gateway>,
        limits: SessionLimits,
        descriptors_per_session: usize,
    ) -> Self {
        Admission {
            listener,
            gateway,
            limiter: SessionLimiter::new(limits),
            descriptors_per_session,
            logs_in: true,
        }
    }

    /// The same for a listener whose connections never log in (the metrics endpoint), so
    /// hold no mounts.
    pub fn without_logins(mut self) -> Self {
        self.logs_in = false;
        self
    }

    /// Admits a connection from `peer`, or says why not (and logs it). Synchronous and cheap:
    /// call it in the accept loop, before spawning anything for the connection.
    pub fn admit(&self, peer: IpAddr) -> Result<AdmissionPermit, Refusal> {
        let decided = self.decide(peer);
        if let Err(refusal) = &decided {
            tracing::info!(listener = self.listener, %peer, reason = %refusal, "connection refused");
        }
        decided
    }

    fn decide(&self, peer: IpAddr) -> Result<AdmissionPermit, Refusal> {
        match self.gateway.defender().verdict(peer) {
            Verdict::Allowed => {}
            Verdict::Banned { until } => return Err(Refusal::Banned { until }),
            Verdict::Denied => return Err(Refusal::Denied),
        }
        let session = self.limiter.try_admit(peer).map_err(|limit| match limit {
            LimitExceeded::Total => Refusal::Total,
            LimitExceeded::PerAddress => Refusal::PerAddress,
        })?;
        // Taken after the place: a refusal here drops `session`, which gives the place back.
        let descriptors =
            self.gateway.descriptors.try_take(self.worst_case()).ok_or(Refusal::Descriptors)?;
        Ok(AdmissionPermit { _session: session, _descriptors: descriptors })
    }

    /// Takes the session's place across the cluster, when the gateway counts places there
    /// (`None` when it does not): the listener's caps, in total and per address, then hold
    /// for the whole cluster. Async (a round trip to the shared store): call it on the session's own task,
    /// after [`Admission::admit`], and hold what it gives until the session ends.
    pub async fn admit_shared(&self, peer: IpAddr) -> Result<Option<SharedPlace>, Refusal> {
        let Some(places) = &self.gateway.shared_places else { return Ok(None) };
        if self.gateway.authenticator.logins_paused() {
            // The shared store is away: its count cannot be had without waiting for it, and
            // no one logs in meanwhile; the node's own caps hold.
            return Ok(None);
        }
        let limits = self.limiter.limits();
        let caps =
            SharedCaps { total: limits.max_sessions, per_address: limits.max_sessions_per_address };
        match places.take(self.listener, canonical_ip(peer), caps).await {
            Ok(place) => Ok(Some(place)),
            Err(refused) => {
                tracing::info!(listener = self.listener, %peer, reason = %refused, "connection refused");
                Err(match refused {
                    SharedPlaceRefused::Total(_) => Refusal::Total,
                    SharedPlaceRefused::PerAddress(_) => Refusal::PerAddress,
                    // Not asked here (see `user_sessions.rs`); a store that answers so anyway
                    // is refusing a place.
                    SharedPlaceRefused::PerUser(_) => Refusal::Total,
                })
            }
        }
    }

    /// The descriptors one more session may hold at most: the listener's own worst case plus,
    /// when its sessions log in, one per mount of the user with the most mounts (or of what
    /// an external authentication answer may define).
    pub fn worst_case(&self) -> usize {
        let mounts = if self.logs_in { self.gateway.authenticator.max_mounts() } else { 0 };
        self.descriptors_per_session.saturating_add(mounts)
    }

    /// Connections admitted and not yet ended.
    pub fn active(&self) -> usize {
        self.limiter.active()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wharf_vfs::{LocalOptions, LocalStorage};

    use super::*;
    use crate::defender::{DefenderConfig, Offense};
    use crate::login::{Authenticator, LoginSettings};
    use crate::user::{UserConfig, UserDb};

    /// Descriptors of a session in these tests, besides mounts.
    const PER_SESSION: usize = 3;

    /// A gateway whose users have at most `mounts` mounts, with the defender banning at the
    /// first offense.
    fn gateway(tmp: &tempfile::TempDir, mounts: usize) -> Arc<Gateway> {
        let share = LocalStorage::open(tmp.path(), true, LocalOptions::default()).expect("share");
        // The home is one mount; the others are extra folders.
        let extra: Vec<String> = (1..mounts).map(|n| format!("/m{n}: m{n}")).collect();
        let yaml = format!(
            "{{ name: a, passwordless: true, home: a, mounts: {{ {} }} }}",
            extra.join(", ")
        );
        let user: UserConfig = serde_yaml::from_str(&yaml).expect("user");
        let users = UserDb::from_configs([user]).expect("users");
        assert_eq!(users.max_mounts(), mounts);
        let auth = Authenticator::new(share, users, LoginSettings::default());
        auth.defender().reconfigure(DefenderConfig {
            threshold: 1,
            ban_time: Duration::from_secs(3600),
            deny: vec!["203.0.113.0/24".parse().expect("net")],
            ..DefenderConfig::default()
        });
        Arc::new(Gateway::new(auth))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn limits(total: usize, per_address: usize) -> SessionLimits {
        SessionLimits { max_sessions: total, max_sessions_per_address: per_address }
    }

    #[test]
    fn the_defender_comes_first_and_a_refused_address_takes_no_place() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gateway = gateway(&tmp, 1);
        let admission = Admission::new("test", gateway.clone(), limits(10, 10), PER_SESSION);
        let banned = ip("198.51.100.7");
        gateway.defender().report(banned, Offense::BounceAttempt);
        assert!(
            matches!(admission.admit(banned), Err(Refusal::Banned { .. })),
            "banned while every cap has room"
        );
        assert_eq!(admission.admit(ip("203.0.113.9")).err(), Some(Refusal::Denied));
        assert_eq!(admission.active(), 0, "a refused address holds no place");
        assert_eq!(gateway.descriptors.held(), 0, "nor descriptors");
        assert_eq!(Refusal::Denied.client_text(), None, "and is told nothing");
        // An address at its cap that gets banned is told nothing either: the defender's
        // verdict is asked before the caps.
        let full = Admission::new("test", gateway.clone(), limits(10, 1), PER_SESSION);
        let offender = ip("198.51.100.8");
        let _held = full.admit(offender).expect("first connection");
        assert_eq!(full.admit(offender).err(), Some(Refusal::PerAddress));
        gateway.defender().report(offender, Offense::BounceAttempt);
        assert!(matches!(full.admit(offender), Err(Refusal::Banned { .. })), "silent, not 421");
        let _admitted = admission.admit(ip("198.51.100.9")).expect("others are admitted");
        assert_eq!(admission.active(), 1);
    }

    #[test]
    fn caps_in_total_and_per_address_and_permits_give_their_place_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gateway = gateway(&tmp, 1);
        let admission = Admission::new("test", gateway.clone(), limits(3, 2), PER_SESSION);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let first = admission.admit(a).expect("first");
        let _second = admission.admit(ip("::ffff:192.0.2.1")).expect("same address over IPv6");
        assert_eq!(admission.admit(a).err(), Some(Refusal::PerAddress));
        let _third = admission.admit(b).expect("another address");
        assert_eq!(admission.admit(b).err(), Some(Refusal::Total));
        assert_eq!(gateway.descriptors.held(), 3 * (PER_SESSION + 1));
        drop(first);
        assert_eq!(admission.active(), 2);
        assert_eq!(gateway.descriptors.held(), 2 * (PER_SESSION + 1), "descriptors given back");
        let _again = admission.admit(a).expect("the place was given back");
        assert_eq!(Refusal::PerAddress.client_text(), Some("too many sessions from your address"));
    }

    #[test]
    fn the_descriptor_budget_refuses_what_it_cannot_hold() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mounts = 3;
        let gateway = gateway(&tmp, mounts);
        let worst = PER_SESSION + mounts;
        // Room for two sessions' worst case and a little more, not for three.
        gateway.descriptors.set_capacity(2 * worst + worst - 1);
        let ftp = Admission::new("ftp", gateway.clone(), limits(10, 10), PER_SESSION);
        let metrics =
            Admission::new("metrics", gateway.clone(), limits(10, 10), 1).without_logins();
        assert_eq!(ftp.worst_case(), worst, "the user's mounts count");
        assert_eq!(metrics.worst_case(), 1, "not for connections that never log in");
        let first = ftp.admit(ip("192.0.2.1")).expect("first");
        let _second = ftp.admit(ip("192.0.2.2")).expect("second");
        assert_eq!(ftp.admit(ip("192.0.2.3")).err(), Some(Refusal::Descriptors));
        assert_eq!(ftp.active(), 2, "the refused session gave its place back");
        assert_eq!(
            Refusal::Descriptors.client_text(),
            Refusal::Total.client_text(),
            "told as any other `too many sessions`"
        );
        // The budget is the process's: another listener's smaller sessions still fit.
        let _scrape = metrics.admit(ip("192.0.2.3")).expect("a smaller session fits");
        drop(first);
        let _third = ftp.admit(ip("192.0.2.3")).expect("room again once a session ended");
        assert!(gateway.descriptors.held() <= gateway.descriptors.capacity());
    }
}
