//! Writing an object: the bytes stream into a multipart upload (OpenDAL's writer: parts of
//! [`PART_SIZE`] bytes, [`PARTS_IN_FLIGHT`] at once, one `PUT` for an object smaller than a
//! part) that completes on commit. Nothing is spooled to disk; nothing is visible before the
//! commit; an upload dropped without a commit aborts its multipart upload.
//!
//! SFTP clients keep many writes in flight and a server may take them slightly out of order,
//! so writes ahead of the current end wait in a reordering window of [`REORDER_WINDOW`] bytes
//! until the gap before them is filled. A write that would need random access (before the
//! end, or beyond the window) is refused as unsupported; it never corrupts the object.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use opendal::Writer;

use super::errors::from_store;
use super::{ObjectStorage, PART_SIZE, PARTS_IN_FLIGHT};
use crate::error::{Error, Result};
use crate::path::VPath;
use crate::storage::{Committed, PublishCheck, WriteFile, WriteMode};

/// Bytes of writes ahead of the current end an upload holds while waiting for the gap.
pub const REORDER_WINDOW: u64 = 4 * 1024 * 1024;

/// An upload in progress.
pub(super) struct ObjectWriter {
    storage: ObjectStorage,
    path: VPath,
    /// `None` once closed or aborted.
    writer: Option<Writer>,
    /// Bytes handed to the writer: the end of the object so far.
    end: u64,
    /// Writes beyond `end`, by offset, waiting for the gap before them.
    waiting: BTreeMap<u64, Bytes>,
    waiting_bytes: u64,
    failed: Option<Error>,
    /// The memory reserved for this upload's buffers, given back when it ends.
    _memory: Option<Box<dyn Send + Sync>>,
    /// Marks the key as being written, for the sweep of multipart uploads.
    _in_progress: super::sweep::UploadGuard,
    /// The runtime the upload was opened on, where a dropped upload's abort runs: it may be
    /// dropped on a thread outside the runtime (a TFTP transfer's own thread).
    runtime: tokio::runtime::Handle,
}

impl ObjectWriter {
    pub(super) async fn open(
        storage: ObjectStorage,
        path: VPath,
        mode: WriteMode,
        memory: Option<Box<dyn Send + Sync>>,
    ) -> Result<Self> {
        let key = storage.file_key(&path);
        let in_progress = storage.in_progress.enter(key.clone());
        let writer = storage
            .operator
            .writer_with(&key)
            .chunk(PART_SIZE)
            .concurrent(PARTS_IN_FLIGHT)
            .if_not_exists(mode == WriteMode::CreateNew)
            .await
            .map_err(from_store)?;
        Ok(ObjectWriter {
            storage,
            path,
            writer: Some(writer),
            end: 0,
            waiting: BTreeMap::new(),
            waiting_bytes: 0,
            failed: None,
            _memory: memory,
            _in_progress: in_progress,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            Some(err) => Err(Error::Io(std::io::Error::other(err.to_string()))),
            None => Ok(()),
        }
    }

    /// Hands `data` (which starts at `end`) to the store, then whatever waited for it.
    async fn append(&mut self, data: Bytes) -> Result<()> {
        let mut next = Some(data);
        while let Some(data) = next.take() {
            let writer = self.writer.as_mut().ok_or(Error::Unsupported("the upload is over"))?;
            let len = data.len() as u64;
            if let Err(err) = writer.write(data).await {
                let err = from_store(err);
                self.failed = Some(Error::Io(std::io::Error::other(err.to_string())));
                return Err(err);
            }
            self.end += len;
            if let Some(entry) = self.waiting.first_entry()
                && *entry.key() <= self.end
            {
                let (offset, mut data) = entry.remove_entry();
                self.waiting_bytes -= data.len() as u64;
                // A waiting write may overlap what was just written (a client resending).
                let overlap = usize::try_from(self.end - offset).unwrap_or(usize::MAX);
                if overlap >= data.len() {
                    continue;
                }
                next = Some(data.split_off(overlap));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl WriteFile for ObjectWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let end = self.end + self.waiting_bytes;
        self.write_at(end, data).await
    }

    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        self.check_failed()?;
        if data.is_empty() {
            return Ok(());
        }
        if offset == self.end {
            return self.append(data).await;
        }
        if offset < self.end {
            return Err(Error::Unsupported("object storage cannot rewrite what an upload sent"));
        }
        let ahead = offset - self.end + data.len() as u64;
        if ahead > REORDER_WINDOW || self.waiting_bytes + data.len() as u64 > REORDER_WINDOW {
            return Err(Error::Unsupported("object storage needs an upload's writes in order"));
        }
        self.waiting_bytes += data.len() as u64;
        if let Some(previous) = self.waiting.insert(offset, data) {
            self.waiting_bytes -= previous.len() as u64;
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<()> {
        // Nothing is durable before the commit, and the commit is durable when it answers.
        self.check_failed()
    }

    async fn publish(mut self: Box<Self>, check: Option<PublishCheck>) -> Result<Committed> {
        self.check_failed()?;
        if !self.waiting.is_empty() {
            return Err(Error::Unsupported("an upload to object storage left a gap"));
        }
        if self.storage.folder_exists(&self.path).await? {
            return Err(Error::IsADirectory);
        }
        let replaced = self.storage.file_metadata(&self.path).await?.map(|meta| meta.size);
        if let Some(check) = check {
            check(replaced, self.end)?;
        }
        let mut writer = self.writer.take().ok_or(Error::Unsupported("the upload is over"))?;
        if let Err(err) = writer.close().await {
            // The multipart upload (if any) must not stay open.
            let _ = writer.abort().await;
            return Err(from_store(err));
        }
        Ok(Committed { written: self.end, size: self.end, replaced, unsynced: None })
    }

    fn created(&self) -> bool {
        false
    }

    fn bytes_written(&self) -> u64 {
        self.end + self.waiting_bytes
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        let Some(mut writer) = self.writer.take() else { return };
        // An upload that ends without a commit leaves no object and no open multipart upload.
        drop(self.runtime.spawn(async move {
            if let Err(err) = writer.abort().await {
                tracing::warn!(error = %err, "could not abort an unfinished object upload");
            }
        }));
    }
}
