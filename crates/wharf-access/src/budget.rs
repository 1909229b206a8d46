//! Memory budgets in bytes: what the buffers a client can make the server grow may hold, per
//! session and for the whole process.
//!
//! A [`MemoryBudget`] is the process-wide pool (one per [`crate::Gateway`]); each session of a
//! front-end takes a [`SessionBudget`] from it, and every buffer a client can grow beyond a
//! small fixed floor is first reserved from the session's budget, which draws from both its
//! own limit and the process-wide one. A [`Reservation`] gives its bytes back when dropped.
//!
//! [`SessionBudget::try_reserve`] never waits and never over-commits: either both levels have
//! room and both are charged, or nothing is charged and the caller does without (SFTP, for
//! instance, then reads exactly what was asked and keeps nothing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::size::ByteSize;

/// The smallest `per_session` allowed: a sequential reader needs room for a few blocks of
/// read-ahead, or every read would go to storage on its own.
pub const MIN_PER_SESSION: u64 = 1024 * 1024;

/// The `access.memory` section: how many bytes of client-driven buffers one session, and
/// all sessions together, may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawMemoryConfig")]
pub struct MemoryConfig {
    /// Bytes one session (one FTP control connection, one SSH connection with all its
    /// channels) may hold in budgeted buffers.
    pub per_session: ByteSize,
    /// Bytes all sessions together may hold in budgeted buffers.
    pub total: ByteSize,
}

/// The section as written, before [`MemoryConfig::validate`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemoryConfig {
    #[serde(default = "default_per_session")]
    per_session: ByteSize,
    #[serde(default = "default_total")]
    total: ByteSize,
}

/// Default of `per_session`: room for a couple of downloads at full speed (read-ahead blocks
/// plus the replies in flight), see `docs/SECURITY.md`.
const DEFAULT_PER_SESSION: usize = 16 * 1024 * 1024;

/// Default of `total`.
const DEFAULT_TOTAL: usize = 1024 * 1024 * 1024;

fn default_per_session() -> ByteSize {
    ByteSize(DEFAULT_PER_SESSION as u64)
}

fn default_total() -> ByteSize {
    ByteSize(DEFAULT_TOTAL as u64)
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { per_session: default_per_session(), total: default_total() }
    }
}

impl TryFrom<RawMemoryConfig> for MemoryConfig {
    type Error = MemoryConfigError;

    fn try_from(raw: RawMemoryConfig) -> Result<Self, Self::Error> {
        let config = MemoryConfig { per_session: raw.per_session, total: raw.total };
        config.validate()?;
        Ok(config)
    }
}

/// A memory setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryConfigError {
    /// The per-session budget is too small to hold a reader's read-ahead.
    #[error("access.memory.per_session must be at least {MIN_PER_SESSION} bytes (1 MiB), not {0}")]
    PerSessionTooSmall(ByteSize),
    /// One session could hold more than all sessions together.
    #[error(
        "access.memory.total ({total}) must be at least access.memory.per_session ({per_session})"
    )]
    TotalBelowPerSession {
        /// The configured total.
        total: ByteSize,
        /// The configured per-session budget.
        per_session: ByteSize,
    },
    /// The value does not fit this machine's address space.
    #[error("access.memory.{0} is larger than this machine can address")]
    TooLarge(&'static str),
}

impl MemoryConfig {
    /// Checks the values serde cannot (called when the section is read, and again by
    /// [`MemoryBudget::new`]).
    pub fn validate(&self) -> Result<(), MemoryConfigError> {
        if self.per_session.0 < MIN_PER_SESSION {
            return Err(MemoryConfigError::PerSessionTooSmall(self.per_session));
        }
        if self.total < self.per_session {
            return Err(MemoryConfigError::TotalBelowPerSession {
                total: self.total,
                per_session: self.per_session,
            });
        }
        to_usize(self.per_session, "per_session")?;
        to_usize(self.total, "total")?;
        Ok(())
    }
}

fn to_usize(size: ByteSize, key: &'static str) -> Result<usize, MemoryConfigError> {
    usize::try_from(size.0).map_err(|_| MemoryConfigError::TooLarge(key))
}

/// A limit and what is taken from it.
#[derive(Debug)]
struct Pool {
    limit: usize,
    used: AtomicUsize,
}

impl Pool {
    fn new(limit: usize) -> Arc<Pool> {
        Arc::new(Pool { limit, used: AtomicUsize::new(0) })
    }

    /// Takes `bytes` if they fit under the limit; one atomic step, so concurrent takers can
    /// never push `used` past `limit` together.
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The process-wide memory budget, from which each session takes its own.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    total: Arc<Pool>,
    per_session: usize,
}

impl MemoryBudget {
    /// A budget with the limits of `config`.
    pub fn new(config: &MemoryConfig) -> Result<Self, MemoryConfigError> {
        config.validate()?;
        Ok(Self::with_limits(
            to_usize(config.total, "total")?,
            to_usize(config.per_session, "per_session")?,
        ))
    }

    fn with_limits(total: usize, per_session: usize) -> Self {
        MemoryBudget { total: Pool::new(total), per_session }
    }

    /// A new session's budget: its own limit of `per_session` bytes, drawing on this one too.
    pub fn session(&self) -> SessionBudget {
        SessionBudget {
            inner: Arc::new(Levels {
                session: Pool::new(self.per_session),
                total: Some(self.total.clone()),
            }),
        }
    }

    /// A budget with no limit of its own that draws on the process-wide pool alone, for
    /// buffers that belong to no one session's protocol state (an upload's parts on their
    /// way to object storage).
    pub fn shared(&self) -> SessionBudget {
        SessionBudget {
            inner: Arc::new(Levels {
                session: Pool::new(usize::MAX),
                total: Some(self.total.clone()),
            }),
        }
    }

    /// Bytes reserved by all sessions now.
    pub fn in_use(&self) -> usize {
        self.total.used()
    }

    /// The process-wide limit.
    pub fn limit(&self) -> usize {
        self.total.limit
    }

    /// Each session's limit.
    pub fn per_session(&self) -> usize {
        self.per_session
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::with_limits(DEFAULT_TOTAL, DEFAULT_PER_SESSION)
    }
}

#[derive(Debug)]
struct Levels {
    session: Arc<Pool>,
    /// The process-wide pool; `None` for a fixed allowance ([`SessionBudget::fixed`]).
    total: Option<Arc<Pool>>,
}

/// One session's budget. Cheap to clone; clones share it (the channels of one SSH
/// connection, say).
#[derive(Debug, Clone)]
pub struct SessionBudget {
    inner: Arc<Levels>,
}

impl SessionBudget {
    /// A budget of `limit` bytes that draws on nothing else: the small fixed floor a
    /// front-end keeps per session so that it always makes progress, whatever the shared
    /// budgets have left. It is part of the session's fixed cost, not of any budget.
    pub fn fixed(limit: usize) -> SessionBudget {
        SessionBudget { inner: Arc::new(Levels { session: Pool::new(limit), total: None }) }
    }

    /// Reserves `bytes` from this session and from the process, or nothing if either would go
    /// over its limit. Never waits.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let mut reservation = self.empty();
        reservation.try_grow(bytes).then_some(reservation)
    }

    /// A reservation of no bytes, to grow later ([`Reservation::try_grow`]).
    pub fn empty(&self) -> Reservation {
        Reservation { levels: self.inner.clone(), bytes: 0 }
    }

    /// Bytes this session has reserved now.
    pub fn in_use(&self) -> usize {
        self.inner.session.used()
    }

    /// This session's limit.
    pub fn limit(&self) -> usize {
        self.inner.session.limit
    }
}

/// Bytes taken from a [`SessionBudget`] (and the process budget); given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    levels: Arc<Levels>,
    bytes: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `more` bytes on top of what is held, if both levels have room; else changes
    /// nothing and returns `false`.
    pub fn try_grow(&mut self, more: usize) -> bool {
        if more == 0 {
            return true;
        }
        let Levels { session, total } = &*self.levels;
        if !session.try_take(more) {
            return false;
        }
        if total.as_ref().is_some_and(|total| !total.try_take(more)) {
            session.give_back(more);
            return false;
        }
        self.bytes += more;
        true
    }

    /// Gives back what is held beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            let excess = self.bytes - bytes;
            self.levels.session.give_back(excess);
            if let Some(total) = &self.levels.total {
                total.give_back(excess);
            }
            self.bytes = bytes;
        }
    }

    /// Holds exactly `bytes`: gives back the excess, or takes what is missing if both levels
    /// have room (else changes nothing and returns `false`).
    pub fn try_resize(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            self.shrink_to(bytes);
            true
        } else {
            self.try_grow(bytes - self.bytes)
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// Object-storage uploads reserve their buffers from the process-wide pool.
impl wharf_vfs::UploadMemory for MemoryBudget {
    fn try_reserve(&self, bytes: usize) -> Option<Box<dyn Send + Sync>> {
        let reservation = self.shared().try_reserve(bytes)?;
        Some(Box::new(reservation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    fn budget(per_session: usize, total: usize) -> MemoryBudget {
        MemoryBudget::new(&MemoryConfig {
            per_session: ByteSize(per_session as u64),
            total: ByteSize(total as u64),
        })
        .expect("valid")
    }

    #[test]
    fn a_session_is_held_to_its_own_limit() {
        let budget = budget(2 * MIB, 10 * MIB);
        let session = budget.session();
        let first = session.try_reserve(MIB + MIB / 2).expect("fits");
        assert!(session.try_reserve(MIB).is_none(), "over the session's limit");
        assert_eq!(session.in_use(), MIB + MIB / 2);
        assert_eq!(budget.in_use(), MIB + MIB / 2, "a refusal charges nothing");
        // Another session has its own limit.
        let other = budget.session();
        let second = other.try_reserve(2 * MIB).expect("its own room");
        assert_eq!(budget.in_use(), 3 * MIB + MIB / 2);
        drop((first, second));
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn all_sessions_are_held_to_the_total() {
        let budget = budget(2 * MIB, 3 * MIB);
        let (a, b) = (budget.session(), budget.session());
        let held = a.try_reserve(2 * MIB).expect("fits");
        assert!(b.try_reserve(2 * MIB).is_none(), "the total has 1 MiB left");
        assert_eq!(b.in_use(), 0, "the session's share was given back");
        let small = b.try_reserve(MIB).expect("1 MiB fits");
        assert_eq!(budget.in_use(), 3 * MIB);
        drop(held);
        assert!(b.try_reserve(MIB).is_some(), "room again once a reservation is dropped");
        drop(small);
        assert_eq!((a.in_use(), b.in_use(), budget.in_use()), (0, 0, 0));
    }

    #[test]
    fn reservations_grow_shrink_and_return_their_bytes() {
        let budget = budget(MIB, MIB);
        let session = budget.session();
        let mut reservation = session.empty();
        assert!(reservation.try_grow(MIB / 2));
        assert!(!reservation.try_grow(MIB), "over the limit: unchanged");
        assert_eq!(reservation.bytes(), MIB / 2);
        reservation.shrink_to(100);
        assert_eq!((reservation.bytes(), session.in_use(), budget.in_use()), (100, 100, 100));
        assert!(reservation.try_resize(MIB));
        assert!(!reservation.try_resize(MIB + 1));
        assert!(reservation.try_resize(10));
        assert_eq!(budget.in_use(), 10);
        drop(reservation);
        assert_eq!((session.in_use(), budget.in_use()), (0, 0));
        // A reservation outlives the session handle it came from.
        let kept = budget.session().try_reserve(MIB).expect("fits");
        assert_eq!(budget.in_use(), MIB);
        drop(kept);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_fixed_allowance_draws_on_no_budget() {
        let budget = budget(MIB, MIB);
        let floor = SessionBudget::fixed(100);
        let held = floor.try_reserve(60).expect("fits");
        assert!(floor.try_reserve(50).is_none(), "held to its own limit");
        assert_eq!(budget.in_use(), 0, "nothing taken from the process budget");
        drop(held);
        assert_eq!(floor.in_use(), 0);
        assert!(floor.try_reserve(100).is_some());
    }

    #[test]
    fn concurrent_reservations_never_over_commit() {
        const BLOCK: usize = 256 * 1024;
        // 4 sessions of 4 MiB could want 16 MiB; the total has 10.
        let budget = budget(4 * MIB, 10 * MIB);
        let sessions: Vec<SessionBudget> = (0..4).map(|_| budget.session()).collect();
        let filled = std::sync::Barrier::new(12);
        // Nothing in the threads panics (a panic would leave the others at the barrier):
        // they note what they saw, checked afterwards.
        let seen = std::thread::scope(|scope| {
            let threads: Vec<_> = sessions
                .iter()
                .flat_map(|session| std::iter::repeat_n(session, 3))
                .map(|session| {
                    let (budget, filled) = (&budget, &filled);
                    scope.spawn(move || {
                        let mut peak = 0;
                        let note = |peak: &mut usize| {
                            *peak = (*peak).max(budget.in_use());
                            session.in_use() <= session.limit()
                        };
                        let mut within_session = true;
                        // Everyone takes blocks until refused, all at once.
                        let mut held = Vec::new();
                        while let Some(reservation) = session.try_reserve(BLOCK) {
                            held.push(reservation);
                            within_session &= note(&mut peak);
                        }
                        filled.wait();
                        // Every taker has been refused: the total must be exactly full.
                        let when_filled = budget.in_use();
                        filled.wait();
                        // Give back and take again, interleaved with the others.
                        for round in 0..2_000 {
                            if round % 2 == 0 {
                                held.pop();
                            } else if let Some(reservation) = session.try_reserve(BLOCK) {
                                held.push(reservation);
                            }
                            within_session &= note(&mut peak);
                        }
                        (when_filled, peak, within_session)
                    })
                })
                .collect();
            threads.into_iter().map(|thread| thread.join().expect("no panic")).collect::<Vec<_>>()
        });
        for (when_filled, peak, within_session) in seen {
            assert_eq!(when_filled, 10 * MIB, "the total is filled exactly");
            assert!(peak <= 10 * MIB, "peak {peak} is over the total");
            assert!(within_session, "a session went over its own limit");
        }
        assert_eq!(budget.in_use(), 0, "every reservation was given back");
        assert!(sessions.iter().all(|session| session.in_use() == 0));
    }

    #[test]
    fn settings_are_read_with_units_and_checked() {
        let config: MemoryConfig =
            serde_yaml::from_str("per_session: 8MiB\ntotal: 2GiB\n").expect("valid");
        assert_eq!(config.per_session, ByteSize(8 << 20));
        assert_eq!(config.total, ByteSize(2 << 30));
        assert_eq!(
            serde_yaml::from_str::<MemoryConfig>("{}").expect("defaults"),
            MemoryConfig::default()
        );
        MemoryConfig::default().validate().expect("defaults are valid");
        for (yaml, expected) in [
            ("per_session: 1000", "at least"),
            ("per_session: 64MiB\ntotal: 32MiB", "must be at least access.memory.per_session"),
            ("per_sesion: 8MiB", "per_sesion"),
        ] {
            let err = serde_yaml::from_str::<MemoryConfig>(yaml).expect_err(yaml);
            assert!(err.to_string().contains(expected), "{yaml}: {err}");
        }
        let small = MemoryConfig { per_session: ByteSize(10), total: ByteSize(10) };
        assert!(MemoryBudget::new(&small).is_err());
    }

    #[test]
    fn shared_reservations_count_against_the_process_alone() {
        let budget = budget(MIB, 4 * MIB);
        let shared = budget.shared();
        let big = shared.try_reserve(3 * MIB).expect("beyond a session's limit, within the total");
        assert_eq!(budget.in_use(), 3 * MIB);
        assert!(shared.try_reserve(2 * MIB).is_none(), "the total is the limit");
        let session = budget.session();
        assert!(session.try_reserve(MIB).is_some(), "sessions share what is left");
        drop(big);
        assert_eq!(budget.in_use(), 0);
    }
}
