//! Listing local directories in batches.
//!
//! Entries are read from the open directory a batch at a time on the blocking pool. Symbolic
//! links are followed beneath the root; a link that leads outside it, dangles or loops is left
//! out, since no operation could use it. Names that are not UTF-8 are left out too: no
//! protocol request can name them (see `VPath`). Temporary upload files are never shown.

use async_trait::async_trait;
use cap_std::fs::{Dir, ReadDir};

use super::{TEMP_PREFIX, convert_metadata};
use crate::error::{Error, Result};
use crate::metadata::DirEntry;
use crate::storage::{DirLister, blocking};

struct Cursor {
    dir: Dir,
    entries: ReadDir,
}

pub(super) struct LocalLister {
    /// Moves to a blocking thread for each batch and comes back with it; `None` once the
    /// directory is exhausted.
    cursor: Option<Cursor>,
}

impl LocalLister {
    pub(super) fn new(dir: Dir) -> Result<Self> {
        let entries = dir.entries()?;
        Ok(LocalLister { cursor: Some(Cursor { dir, entries }) })
    }
}

fn read_batch(cursor: &mut Cursor, max: usize) -> Result<(Vec<DirEntry>, bool)> {
    let mut batch = Vec::with_capacity(max.min(1024));
    while batch.len() < max {
        let Some(entry) = cursor.entries.next() else {
            return Ok((batch, true));
        };
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let meta = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => match cursor.dir.metadata(&name) {
                Ok(meta) => meta,
                Err(_) => continue,
            },
            _ => match entry.metadata() {
                Ok(meta) => meta,
                // Removed between the directory read and the stat.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::from(err)),
            },
        };
        batch.push(DirEntry { name, metadata: convert_metadata(&meta) });
    }
    Ok((batch, false))
}

#[async_trait]
impl DirLister for LocalLister {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        let max = max.max(1);
        let Some(mut cursor) = self.cursor.take() else {
            return Ok(Vec::new());
        };
        let (cursor, batch) = blocking(move || {
            let result = read_batch(&mut cursor, max);
            Ok((cursor, result))
        })
        .await?;
        let (batch, finished) = batch?;
        if !finished {
            self.cursor = Some(cursor);
        }
        Ok(batch)
    }
}
