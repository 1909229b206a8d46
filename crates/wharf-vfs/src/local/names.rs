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
//! A name is hashed onto a fixed set of mutexes by the entry's name alone: the same name in
//! two directories shares a lock (harmless: more exclusion, never less), and no system call is
//! needed to tell which directory a path reaches through mounts and links. The locks are held
//! on the blocking pool for a few system calls (no data is written under them), and taken in
//! index order, so two names never deadlock.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Mutex, MutexGuard};

/// Enough stripes that unrelated names rarely share one.
const STRIPES: usize = 64;

static LOCKS: [Mutex<()>; STRIPES] = [const { Mutex::new(()) }; STRIPES];

/// The stripe of the directory entry `name`, in whatever directory.
pub(super) fn stripe(name: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    name.hash(&mut hasher);
    (hasher.finish() % STRIPES as u64) as usize
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
