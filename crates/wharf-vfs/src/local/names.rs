//! Process-wide locks on directory entries.
//!
//! Publishing an upload, renaming and removing each look at what a name holds (to report the
//! file they replace or remove, and to give an upload's mode to its replacement) and then
//! change it. Holding the name's lock across the look and the change makes the look true for
//! the change as far as this process is concerned: two uploads publishing to one name, or an
//! upload publishing while a client deletes the file, are seen one after the other. A program
//! other than Wharf changing the share can still slip in between; quotas pick such changes up
//! at their next measurement.
//!
//! A name is its directory's identity (device and inode, so every mount and path reaching the
//! directory agree) and the entry's name, hashed onto a fixed set of mutexes. The locks are
//! held on the blocking pool for a few system calls (no data is written under them), and
//! taken in index order, so two names never deadlock.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Mutex, MutexGuard};

use cap_std::fs::{Dir, MetadataExt as _};

use crate::error::Result;

/// Enough stripes that unrelated names rarely share one.
const STRIPES: usize = 64;

static LOCKS: [Mutex<()>; STRIPES] = [const { Mutex::new(()) }; STRIPES];

/// The stripe of `name` in `dir`.
pub(super) fn stripe(dir: &Dir, name: &str) -> Result<usize> {
    let meta = dir.dir_metadata()?;
    let mut hasher = DefaultHasher::new();
    (meta.dev(), meta.ino(), name).hash(&mut hasher);
    Ok((hasher.finish() % STRIPES as u64) as usize)
}

/// Holds the locks of the given stripes until dropped.
pub(super) struct Held {
    _guards: Vec<MutexGuard<'static, ()>>,
}

/// Locks `stripes` (duplicates once), in index order.
pub(super) fn lock(stripes: &[usize]) -> Held {
    let mut order = stripes.to_vec();
    order.sort_unstable();
    order.dedup();
    // A panic while holding a lock poisons it; the lock protects no data, so go on.
    let guards = order.into_iter().map(|i| LOCKS[i].lock().unwrap_or_else(|p| p.into_inner()));
    Held { _guards: guards.collect() }
}
