//! One rule's undelivered events, on disk, oldest first.
//!
//! Each event is a file `<sequence>.json` (20 digits, so names sort as numbers), written to a
//! temporary name and renamed, so a crash leaves either the whole event or none. An event
//! leaves the spool when it is delivered, or when the spool is full and a newer one comes (the
//! oldest goes). At start the files found are the queue: events survive a restart. The files
//! are not flushed to the disk one by one (that would cost a disk flush per event): a crash of
//! the process keeps them, a power loss may lose the last few seconds.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::Notify;

/// The extension of a spooled event; a `.tmp` after it marks one being written.
const EXTENSION: &str = "json";

/// A rule's spool.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_events: usize,
    queue: Mutex<Queue>,
    /// Woken when an event is added.
    added: Notify,
}

#[derive(Debug)]
struct Queue {
    /// Sequence numbers of the events on disk, oldest first.
    waiting: VecDeque<u64>,
    next: u64,
}

/// What adding an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Added {
    /// Older events dropped to make room.
    pub(crate) dropped: usize,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, keeping at most `max_events`: the events already
    /// there wait in the order they were added; leftovers of interrupted writes are removed.
    pub(crate) fn open(dir: &Path, max_events: usize) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut waiting = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            match name.strip_suffix(".json").map(str::parse::<u64>) {
                Some(Ok(sequence)) => waiting.push(sequence),
                _ if name.ends_with(".tmp") => std::fs::remove_file(entry.path())?,
                _ => {}
            }
        }
        waiting.sort_unstable();
        let next = waiting.last().map_or(1, |last| last + 1);
        Ok(Spool {
            dir: dir.to_owned(),
            max_events: max_events.max(1),
            queue: Mutex::new(Queue { waiting: waiting.into(), next }),
            added: Notify::new(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The file of event `sequence`.
    pub(crate) fn path_of(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence:020}.{EXTENSION}"))
    }

    /// Adds an event (blocking file I/O: called on the spool's own thread). When the spool
    /// would hold more than its maximum, the oldest events are dropped.
    pub(crate) fn add(&self, document: &[u8]) -> io::Result<Added> {
        let sequence = {
            let mut queue = self.queue();
            let sequence = queue.next;
            queue.next += 1;
            sequence
        };
        let path = self.path_of(sequence);
        let temporary = path.with_extension(format!("{EXTENSION}.tmp"));
        std::fs::write(&temporary, document)?;
        if let Err(err) = std::fs::rename(&temporary, &path) {
            let _ = std::fs::remove_file(&temporary);
            return Err(err);
        }
        let mut dropped = Vec::new();
        {
            let mut queue = self.queue();
            queue.waiting.push_back(sequence);
            while queue.waiting.len() > self.max_events {
                dropped.extend(queue.waiting.pop_front());
            }
        }
        for sequence in &dropped {
            let _ = std::fs::remove_file(self.path_of(*sequence));
        }
        self.added.notify_one();
        Ok(Added { dropped: dropped.len() })
    }

    /// The oldest waiting event, if any.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.queue().waiting.front().copied()
    }

    /// Waits until an event is added (returns at once if one was added since the last wait).
    pub(crate) async fn wait_for_more(&self) {
        self.added.notified().await;
    }

    /// Removes event `sequence` (delivered, or unreadable).
    pub(crate) async fn remove(&self, sequence: u64) {
        self.queue().waiting.retain(|s| *s != sequence);
        match tokio::fs::remove_file(self.path_of(sequence)).await {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(
                file = %self.path_of(sequence).display(),
                error = %err,
                "a delivered event could not be removed from the hooks' spool; it may be delivered again after a restart"
            ),
        }
    }

    /// Events waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_wait_in_order_survive_a_reopening_and_the_oldest_make_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 3).expect("open");
        for n in 1..=3u8 {
            assert_eq!(spool.add(&[n]).expect("add"), Added { dropped: 0 });
        }
        let first = spool.oldest().expect("an event");
        assert_eq!(std::fs::read(spool.path_of(first)).expect("read"), [1]);
        spool.remove(first).await;
        // A write cut short by a crash is not an event.
        std::fs::write(dir.path().join("00000000000000000009.json.tmp"), b"half").expect("write");
        drop(spool);

        let spool = Spool::open(dir.path(), 3).expect("reopen");
        assert_eq!(spool.len(), 2);
        assert!(!dir.path().join("00000000000000000009.json.tmp").exists());
        assert_eq!(spool.add(&[4]).expect("add").dropped, 0);
        assert_eq!(spool.add(&[5]).expect("add").dropped, 1, "full: the oldest goes");
        let mut seen = Vec::new();
        while let Some(sequence) = spool.oldest() {
            seen.extend(std::fs::read(spool.path_of(sequence)).expect("read"));
            spool.remove(sequence).await;
        }
        assert_eq!(seen, [3, 4, 5]);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
