//! Temporary upload files: the names of uploads in progress, and the sweep of those a crash
//! left behind.
//!
//! A whole-file upload writes `.wharf-tmp-<16 hex digits>` beside its target and renames it
//! over the target on commit; an aborted upload removes it. Only a crash (or a failed removal)
//! leaves one behind, hidden from listings yet holding disk space and keeping its folder from
//! being removed. Such a file is *stale* when both hold:
//!
//! - no upload of this process is writing it: every upload registers its temporary name
//!   ([`TempName`]) before the file exists and unregisters it only once the file is renamed
//!   or removed, so the set of names in progress is exact; and
//! - nothing has written to it for the configured age (`storage.stale_temporary_age`), which
//!   protects the uploads of another Wharf process serving the same share (one draining
//!   during an upgrade, say), whose names this process cannot know.
//!
//! [`TemporarySweeper`] removes stale files from the whole share at start and periodically,
//! a bounded number of directory entries per run, on the blocking pool; removing a directory
//! removes the stale files that are all it holds (`LocalStorage::remove_dir`).

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, Metadata, ReadDir};

use crate::storage::blocking;

/// Prefix of temporary upload files. Names with it are hidden from listings and refused as
/// paths, so no client can see, open or publish another upload's temporary file.
pub const TEMP_PREFIX: &str = ".wharf-tmp-";

/// Hex digits after [`TEMP_PREFIX`] in a temporary name.
const TEMP_DIGITS: usize = 16;

/// Names of the temporary files uploads of this process are writing.
static IN_PROGRESS: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

fn in_progress() -> std::sync::MutexGuard<'static, HashSet<String>> {
    IN_PROGRESS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The temporary name of one upload, registered as in progress for as long as it lives.
/// The upload drops it only after its file was renamed or removed.
#[derive(Debug)]
pub(super) struct TempName(String);

impl TempName {
    /// A fresh random name, registered.
    pub(super) fn fresh() -> TempName {
        let mut names = in_progress();
        loop {
            let name = format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>());
            if names.insert(name.clone()) {
                return TempName(name);
            }
        }
    }

    /// The name.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        in_progress().remove(&self.0);
    }
}

/// Whether `name` has the form of a temporary upload file (what the sweep may remove).
fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX).is_some_and(|digits| {
        digits.len() == TEMP_DIGITS && digits.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Whether the entry `name` with attributes `meta` (not following links) is a stale temporary
/// file: see the module documentation.
fn is_stale(name: &str, meta: &Metadata, max_age: Duration, now: SystemTime) -> bool {
    if !meta.is_file() || !is_temp_name(name) {
        return false;
    }
    let old = meta
        .modified()
        .ok()
        .and_then(|modified| now.duration_since(modified.into_std()).ok())
        .is_some_and(|age| age >= max_age);
    // Checked last and under the lock: a name registered later is a new upload's, which
    // cannot be this existing file (its creation refuses an existing name).
    old && !in_progress().contains(name)
}

/// Entries looked at before [`clear_stale`] gives up: a folder that lists empty holds only
/// temporary files, rarely more than a few.
const CLEAR_LIMIT: usize = 1024;

/// Removes the stale temporary files of `dir` if they are all it holds (so that the directory
/// can be removed); returns whether it did. Runs on the blocking pool.
pub(super) fn clear_stale(dir: &Dir, max_age: Duration) -> std::io::Result<bool> {
    let now = SystemTime::now();
    let mut stale = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        let name = entry.file_name().into_string().unwrap_or_default();
        let is_stale_temp = entry.metadata().is_ok_and(|m| is_stale(&name, &m, max_age, now));
        if !is_stale_temp || stale.len() == CLEAR_LIMIT {
            return Ok(false);
        }
        stale.push(name);
    }
    for name in &stale {
        dir.remove_file(name)?;
        tracing::info!(file = %name, "removed a stale temporary upload file from a folder being removed");
    }
    Ok(!stale.is_empty())
}

/// Directory entries one sweep run looks at, at most: a few milliseconds of work.
pub const SWEEP_ENTRIES_PER_RUN: usize = 10_000;

/// How long the sweep rests between runs until a pass is complete.
pub const SWEEP_PAUSE: Duration = Duration::from_millis(100);

/// How long the sweep rests between complete passes.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Directory levels the sweep descends: far deeper than any real share, and a bound on the
/// descriptors one run holds open (one per level).
pub const SWEEP_MAX_DEPTH: usize = 64;

/// What one sweep run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepRun {
    /// Directory entries looked at.
    pub visited: usize,
    /// Stale temporary files removed.
    pub removed: usize,
    /// Whether the run reached the end of a pass over the whole tree (the next run starts a
    /// new one).
    pub pass_complete: bool,
}

/// Removes stale temporary upload files from a tree, a bounded amount of work per run.
///
/// The walk resumes between runs where it stopped: for each directory from the root down,
/// the cursor keeps its path and how many of its entries were already looked at. Entries
/// added or removed between runs may shift that count; a file missed so is found by the next
/// pass.
pub struct TemporarySweeper {
    root: Arc<Dir>,
    max_age: Duration,
    /// `(path below the root, entries already looked at)`, root first; empty between passes.
    cursor: Vec<(String, usize)>,
    /// Whether the depth bound was reported in this pass already.
    depth_reported: bool,
}

impl std::fmt::Debug for TemporarySweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporarySweeper")
            .field("max_age", &self.max_age)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// One directory being read in a run.
struct Level {
    entries: ReadDir,
}

impl TemporarySweeper {
    pub(super) fn new(root: Arc<Dir>, max_age: Duration) -> Self {
        TemporarySweeper { root, max_age, cursor: Vec::new(), depth_reported: false }
    }

    /// Runs one bounded step of the sweep on the blocking pool.
    pub async fn run_once(&mut self) -> SweepRun {
        let mut state = TemporarySweeper {
            root: self.root.clone(),
            max_age: self.max_age,
            cursor: std::mem::take(&mut self.cursor),
            depth_reported: self.depth_reported,
        };
        let outcome = blocking(move || {
            let run = state.step(SWEEP_ENTRIES_PER_RUN, SystemTime::now());
            Ok((state, run))
        })
        .await;
        match outcome {
            Ok((state, run)) => {
                self.cursor = state.cursor;
                self.depth_reported = state.depth_reported;
                run
            }
            // The blocking task failed (a panic): start the next pass afresh.
            Err(err) => {
                tracing::warn!(error = %err, "the temporary-file sweep failed");
                SweepRun { pass_complete: true, ..SweepRun::default() }
            }
        }
    }

    /// Sweeps for ever: runs back to back (with `pause` between them) until a pass is
    /// complete, then one pass every `interval`. Spawn it and abort it at shutdown.
    pub async fn run(mut self, pause: Duration, interval: Duration) {
        let mut removed = 0;
        loop {
            let run = self.run_once().await;
            removed += run.removed;
            if run.pass_complete {
                tracing::debug!(removed, "temporary-file sweep: pass complete");
                removed = 0;
                tokio::time::sleep(interval).await;
            } else {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Re-opens the directories of the cursor, skipping what was already looked at. A
    /// directory that is gone ends the cursor there (its parent goes on after it).
    fn reopen(&mut self) -> Vec<Level> {
        let mut levels: Vec<Level> = Vec::with_capacity(self.cursor.len());
        for (depth, (path, seen)) in self.cursor.iter().enumerate() {
            let opened = if depth == 0 {
                self.root.entries()
            } else {
                cap_fs_ext::DirExt::open_dir_nofollow(&*self.root, path).and_then(|d| d.entries())
            };
            let Ok(mut entries) = opened else { break };
            for _ in 0..*seen {
                if entries.next().is_none() {
                    break;
                }
            }
            levels.push(Level { entries });
        }
        self.cursor.truncate(levels.len());
        levels
    }

    /// Looks at up to `budget` entries from where the walk stands.
    fn step(&mut self, budget: usize, now: SystemTime) -> SweepRun {
        let mut run = SweepRun::default();
        if self.cursor.is_empty() {
            self.cursor.push((String::new(), 0));
            self.depth_reported = false;
        }
        let mut levels = self.reopen();
        while run.visited < budget {
            let (Some(level), Some((dir_path, seen))) = (levels.last_mut(), self.cursor.last_mut())
            else {
                run.pass_complete = true;
                break;
            };
            let entry = match level.entries.next() {
                Some(Ok(entry)) => entry,
                end_or_error => {
                    if let Some(Err(err)) = end_or_error {
                        tracing::warn!(dir = %dir_path, error = %err, "temporary-file sweep: cannot read a folder");
                    }
                    levels.pop();
                    self.cursor.pop();
                    continue;
                }
            };
            *seen += 1;
            run.visited += 1;
            let Ok(name) = entry.file_name().into_string() else { continue };
            let Ok(kind) = entry.file_type() else { continue };
            let path =
                if dir_path.is_empty() { name.clone() } else { format!("{dir_path}/{name}") };
            if kind.is_dir() {
                if levels.len() >= SWEEP_MAX_DEPTH {
                    if !self.depth_reported {
                        self.depth_reported = true;
                        tracing::warn!(dir = %path, depth = SWEEP_MAX_DEPTH, "temporary-file sweep: folders this deep are not swept");
                    }
                    continue;
                }
                if let Ok(entries) = entry.open_dir().and_then(|dir| dir.entries()) {
                    levels.push(Level { entries });
                    self.cursor.push((path, 0));
                }
            } else if kind.is_file()
                && entry.metadata().is_ok_and(|m| is_stale(&name, &m, self.max_age, now))
            {
                match entry.remove_file() {
                    Ok(()) => {
                        run.removed += 1;
                        tracing::info!(file = %path, "removed a stale temporary upload file");
                    }
                    Err(err) => {
                        tracing::warn!(file = %path, error = %err, "could not remove a stale temporary upload file")
                    }
                }
            }
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wharf_temporary_names_qualify() {
        assert!(is_temp_name(".wharf-tmp-0123456789abcdef"));
        assert!(!is_temp_name(".wharf-tmp-0123"));
        assert!(!is_temp_name(".wharf-tmp-0123456789abcdeg"));
        assert!(!is_temp_name("wharf-tmp-0123456789abcdef"));
        assert!(is_temp_name(TempName::fresh().as_str()));
    }

    #[test]
    fn a_registered_name_is_never_stale() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).expect("open");
        let name = TempName::fresh();
        dir.write(name.as_str(), b"in progress").expect("write");
        let meta = dir.symlink_metadata(name.as_str()).expect("stat");
        let later = SystemTime::now() + Duration::from_secs(86_400);
        assert!(!is_stale(name.as_str(), &meta, Duration::from_secs(60), later));
        let leftover = name.as_str().to_owned();
        drop(name);
        assert!(is_stale(&leftover, &meta, Duration::from_secs(60), later));
        assert!(!is_stale(&leftover, &meta, Duration::from_secs(60), SystemTime::now()));
    }

    #[test]
    fn the_walk_resumes_across_runs_and_removes_only_stale_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        let mut leftovers = Vec::new();
        for i in 0..30 {
            let dir = base.join(format!("d{i:02}/sub"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("keep.txt"), b"data").expect("file");
            let leftover = dir.join(format!("{TEMP_PREFIX}{i:016x}"));
            std::fs::write(&leftover, b"half an upload").expect("leftover");
            leftovers.push(leftover);
        }
        let live = TempName::fresh();
        std::fs::write(base.join(live.as_str()), b"in progress").expect("live");
        let root = Arc::new(Dir::open_ambient_dir(base, cap_std::ambient_authority()).expect("o"));
        let mut sweeper = TemporarySweeper::new(root, Duration::from_secs(60));
        let later = SystemTime::now() + Duration::from_secs(3_600);
        let mut runs = 0;
        let mut removed = 0;
        loop {
            runs += 1;
            assert!(runs < 100, "the pass never ended");
            let run = sweeper.step(7, later);
            assert!(run.visited <= 7);
            removed += run.removed;
            if run.pass_complete {
                break;
            }
        }
        assert!(runs > 10, "a small budget takes many runs ({runs})");
        assert_eq!(removed, leftovers.len());
        assert!(leftovers.iter().all(|path| !path.exists()));
        assert!(base.join(live.as_str()).exists(), "an upload in progress is kept");
        assert!(base.join("d07/sub/keep.txt").exists());
        // Fresh leftovers (younger than the age) are kept too.
        std::fs::write(&leftovers[0], b"just crashed").expect("fresh leftover");
        let run = sweeper.step(10_000, SystemTime::now());
        assert!(run.pass_complete);
        assert_eq!(run.removed, 0);
        assert!(leftovers[0].exists());
    }
}
