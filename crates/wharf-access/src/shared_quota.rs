//! Quota ledgers kept across the nodes of a cluster.
//!
//! On a single node each user's ledger lives in the process (`quota.rs`). In a cluster the
//! nodes share one ledger per user in the shared store: what the home uses, and what each
//! node's uploads in progress hold reserved. The rules of `quota.rs` stay as they are; what
//! changes is who decides:
//!
//! - **A reservation is decided by the shared store**, against the usage and the holds of
//!   every live node, in one step that no other node can interleave with: of two nodes asking
//!   for the last place, one gets it.
//! - **A settlement is sent, not waited for** (an upload ended, a file was deleted), and is
//!   applied by the store shortly after. Until then the cluster still counts the upload's
//!   reservation, which is never less than what the upload settles: a late settlement can
//!   refuse an upload that would have fit, never let one cross a limit.
//! - **Bytes are reserved ahead of the writes** (twice what the upload holds, at most
//!   [`RESERVE_AHEAD`] more than it needs), so a large upload asks the store once per
//!   [`RESERVE_AHEAD`] rather than once per write. A write is refused when the usage plus every
//!   upload's reservation plus what it needs would cross the limit; near the limit, uploads
//!   in progress may therefore hold up to [`RESERVE_AHEAD`] each that they have not written.
//! - **A measurement never undoes a settlement.** A node walks a home at its first login of
//!   the user (as a single node does), while other nodes' uploads may settle; the walk's
//!   figures are recorded only if the ledger did not change between the walk's start and its
//!   end ([`LedgerVersion`]), and the ledger keeps its own figures otherwise.
//! - A node that dies stops counting: its holds go with its heartbeat.
//! - Without the store an upload under a quota cannot reserve: it is refused with an I/O
//!   error (a temporary failure to the client), and nothing is written.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use wharf_vfs::Result;

use crate::quota::QuotaConfig;

/// How far ahead of its writes an upload reserves bytes in a cluster, at most.
pub const RESERVE_AHEAD: u64 = 8 * 1024 * 1024;

/// What a shared ledger answers, later.
pub type LedgerAnswer<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// Where a user's shared ledger stood (how many changes it had seen; `None`: no ledger yet),
/// read before a measurement so that the measurement is recorded only if nothing changed
/// while the home was walked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerVersion(pub Option<i64>);

/// What an upload asks to hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserve {
    /// Bytes to hold.
    pub bytes: u64,
    /// Places in the file count to hold.
    pub files: u64,
    /// Bytes that must fit, at least (the larger of this and `bytes` is checked): an upload
    /// that opens asks for one byte of room and holds none, so that a user at the byte limit
    /// cannot open even a file that would stay empty.
    pub must_fit: u64,
}

impl Reserve {
    /// Whether this fits under `limits` with `used` and `held` (bytes, files) counted.
    pub fn fits(&self, limits: &QuotaConfig, used: (u64, u64), held: (u64, u64)) -> bool {
        let files_fit = self.files == 0
            || limits
                .files
                .is_none_or(|max| used.1.saturating_add(held.1).saturating_add(self.files) <= max);
        let bytes = self.bytes.max(self.must_fit);
        let bytes_fit = bytes == 0
            || limits
                .bytes
                .is_none_or(|max| used.0.saturating_add(held.0).saturating_add(bytes) <= max.0);
        files_fit && bytes_fit
    }
}

/// What an upload's end, or a removal, changes in a ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Bytes the upload held reserved, released.
    pub released_bytes: u64,
    /// File places the upload held reserved, released.
    pub released_files: u64,
    /// How much the home grew (less when negative).
    pub growth_bytes: i64,
    /// How many files the home gained (lost when negative).
    pub growth_files: i64,
}

impl Settlement {
    /// This settlement and `other` as one (settlements add up).
    pub fn merged(self, other: Settlement) -> Settlement {
        Settlement {
            released_bytes: self.released_bytes.saturating_add(other.released_bytes),
            released_files: self.released_files.saturating_add(other.released_files),
            growth_bytes: self.growth_bytes.saturating_add(other.growth_bytes),
            growth_files: self.growth_files.saturating_add(other.growth_files),
        }
    }
}

/// The quota ledgers of a cluster's users, in a store every node shares.
pub trait SharedLedgers: Send + Sync + Debug {
    /// Where `user`'s ledger stands, before a measurement of the home begins.
    fn version(&self, user: &str) -> LedgerAnswer<LedgerVersion>;

    /// Records what a measurement of `user`'s home found (bytes, files), if the ledger is
    /// still where it stood when the measurement began (`since`); reservations of uploads in
    /// progress stay.
    fn measured(&self, user: &str, used: (u64, u64), since: LedgerVersion) -> LedgerAnswer<()>;

    /// Holds `reserve` for `user` if it fits under `limits` with what the home uses and what
    /// every live node holds; `false` when it does not fit. An error when the store cannot
    /// answer.
    fn reserve(&self, user: &str, limits: QuotaConfig, reserve: Reserve) -> LedgerAnswer<bool>;

    /// Applies `settlement` to `user`'s ledger, soon; never waited for.
    fn settle(&self, user: &str, settlement: Settlement);

    /// What `user`'s home uses across the cluster (bytes, files), with every settlement this
    /// node sent so far.
    fn usage(&self, user: &str) -> LedgerAnswer<(u64, u64)>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::ByteSize;

    #[test]
    fn a_reserve_fits_as_the_local_ledger_would_decide() {
        let limits = QuotaConfig { bytes: Some(ByteSize(100)), files: Some(3) };
        let open = Reserve { bytes: 0, files: 1, must_fit: 1 };
        assert!(open.fits(&limits, (50, 1), (49, 1)));
        assert!(!open.fits(&limits, (50, 1), (50, 0)), "no byte of room left");
        assert!(!open.fits(&limits, (0, 2), (0, 1)), "no place left");
        let growth = Reserve { bytes: 10, files: 0, must_fit: 0 };
        assert!(growth.fits(&limits, (90, 3), (0, 0)), "places do not matter to growth");
        assert!(!growth.fits(&limits, (90, 3), (1, 0)));
        let nothing = Reserve::default();
        assert!(nothing.fits(&limits, (200, 9), (0, 0)), "asking nothing always fits");
    }
}
