//! Writing an object: the bytes stream into a multipart upload (OpenDAL's writer: parts of
//! [`PART_SIZE`] bytes, [`PARTS_IN_FLIGHT`] at once, one `PUT` for an object smaller than a
//! part) that completes on commit. Nothing is spooled to disk; nothing is visible before the
//! commit; an upload dropped without a commit aborts its multipart upload.
//!
//! An append, or a resume at the end of the stored object, starts the new object with the
//! stored one: copied part by part inside the store (`UploadPartCopy`, through OpenDAL's
//! `Writer::copy_from`) when it is at least [`COPY_MIN`] bytes, else read and sent again
//! (a part copied must be 5 MiB at least, as any part but the last). The client's bytes
//! follow; the new object replaces the old when it completes.
//!
//! The client's bytes are copied into the part being filled, and the writer gets whole parts
//! (so it is given no chunk size of its own, which would hold one more part back):
//! the blocks a front-end receives are freed as soon as they are copied, instead of living
//! (scattered over the allocator's arenas) until their part is sent, which fragmented the
//! heap so that a server's resident memory grew with every large upload.
//!
//! SFTP clients keep many writes in flight and a server may take them slightly out of order,
//! so writes ahead of the current end wait in a reordering window of [`REORDER_WINDOW`] bytes
//! until the gap before them is filled. A write that would need random access (before the
//! end, or beyond the window) is refused as unsupported; it never corrupts the object.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::errors::from_store;
use super::multipart::{DriveError, MultipartUpload};
use super::{ObjectStorage, PART_SIZE, PARTS_IN_FLIGHT};
use crate::error::{Error, Result};
use crate::path::VPath;
use crate::storage::{Committed, PublishCheck, WriteFile, WriteMode};

/// Bytes of writes ahead of the current end an upload holds while waiting for the gap.
pub const REORDER_WINDOW: u64 = 4 * 1024 * 1024;

/// The smallest stored object continued by a copy inside the store (S3's smallest part);
/// a smaller one is read and sent again, which fits in one part's memory.
pub const COPY_MIN: u64 = 5 * 1024 * 1024;

/// The largest range one part copy may take (S3's largest part).
const COPY_MAX: u64 = 5 * 1024 * 1024 * 1024;

/// How an upload's object begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// Empty; `creates` when it is an in-place write (append, resume) to no object.
    Fresh { creates: bool },
    /// With the stored object's first this many bytes (an append or a resume at its end).
    Continue(u64),
    /// Opened in place at 0 over an object of this many bytes: a first write at that size
    /// continues it, a first write at 0 starts afresh (and must reach at least that size,
    /// since the end of the old object cannot be kept), any other is refused; no write at
    /// all leaves the object as it is.
    Decide(u64),
}

/// An upload in progress.
pub(super) struct ObjectWriter {
    storage: ObjectStorage,
    path: VPath,
    /// The multipart upload (or single `PUT`) the object is written through.
    upload: MultipartUpload,
    /// Bytes handed to the writer or waiting in `part`: the end of the object so far.
    end: u64,
    /// The part being filled, handed to the writer when it holds [`PART_SIZE`] bytes (and
    /// what is left at the commit).
    part: BytesMut,
    /// Whether a whole part was handed over: the next ones are then allocated whole.
    sent_a_part: bool,
    /// Of those, the bytes carried over from the stored object (an append or resume).
    carried: u64,
    /// Whether the upload writes in place in the client's eyes (an append or resume): then
    /// it replaces nothing, and adds a file only if there was none.
    mode: WriteMode,
    /// Whether no object was stored under the name when an append or resume opened.
    creates: bool,
    /// The stored object's size while the first write has not decided how it starts
    /// ([`Start::Decide`]).
    undecided: Option<u64>,
    /// The least the new object must hold (a rewrite from 0 of an object this long).
    must_reach: u64,
    /// The check that the upload has a place (its folder exists, its name is not a folder),
    /// until its answer has been taken.
    place_check: Option<tokio::task::JoinHandle<Result<()>>>,
    /// Writes beyond `end`, by offset, waiting for the gap before them.
    waiting: BTreeMap<u64, Bytes>,
    waiting_bytes: u64,
    failed: Option<Error>,
    /// The memory reserved for this upload's buffers, given back when it ends.
    _memory: Option<Box<dyn Send + Sync>>,
    /// Marks the key as being written, for the sweep of multipart uploads.
    _in_progress: super::sweep::UploadGuard,
}

impl ObjectWriter {
    /// An upload of `path` in `mode`, its object beginning as `start` says.
    pub(super) async fn open(
        storage: ObjectStorage,
        path: VPath,
        mode: WriteMode,
        memory: Option<Box<dyn Send + Sync>>,
        start: Start,
        place_check: tokio::task::JoinHandle<Result<()>>,
    ) -> Result<Self> {
        let key = storage.file_key(&path);
        let in_progress = storage.in_progress.enter(key.clone());
        let writer = storage
            .operator
            .writer_with(&key)
            .concurrent(PARTS_IN_FLIGHT)
            .if_not_exists(mode == WriteMode::CreateNew)
            .await
            .map_err(from_store)?;
        let mut upload = ObjectWriter {
            storage,
            path,
            upload: MultipartUpload::new(writer),
            end: 0,
            part: BytesMut::new(),
            sent_a_part: false,
            carried: 0,
            mode,
            creates: matches!(start, Start::Fresh { creates: true }),
            undecided: match start {
                Start::Decide(stored) => Some(stored),
                _ => None,
            },
            must_reach: 0,
            place_check: Some(place_check),
            waiting: BTreeMap::new(),
            waiting_bytes: 0,
            failed: None,
            _memory: memory,
            _in_progress: in_progress,
        };
        if let Start::Continue(stored) = start {
            upload.carry_over(stored).await?;
        }
        Ok(upload)
    }

    /// Starts the new object with the `stored` bytes of the object its name holds now.
    async fn carry_over(&mut self, stored: u64) -> Result<()> {
        let key = self.storage.file_key(&self.path);
        let key = key.as_str();
        if stored < COPY_MIN {
            if stored > 0 {
                let old = self.storage.operator.read_with(key).range(0..stored).await;
                self.append(old.map_err(from_store)?.to_bytes()).await?;
            }
        } else {
            self.send_part().await?;
            let mut from = 0;
            while from < stored {
                let to = (from + COPY_MAX).min(stored);
                self.upload.copy_from(key.to_owned(), from..to).await.map_err(store_error)?;
                from = to;
            }
            self.end = stored;
        }
        self.carried = stored;
        Ok(())
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
            self.fill_parts(&data).await?;
            self.end += data.len() as u64;
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

    /// Copies `data` into the part being filled, handing each part to the store as it fills.
    async fn fill_parts(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.sent_a_part && self.part.capacity() == 0 {
                // Later parts are whole parts; the first grows with the upload, so that a
                // small file does not take a part's memory.
                self.part.reserve(PART_SIZE);
            }
            let take = (PART_SIZE - self.part.len()).min(data.len());
            self.part.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.part.len() == PART_SIZE {
                self.send_part().await?;
                self.sent_a_part = true;
            }
        }
        Ok(())
    }

    /// Hands the part being filled (if it holds anything) to the store, once the upload is
    /// known to have a place.
    async fn send_part(&mut self) -> Result<()> {
        if self.part.is_empty() {
            return Ok(());
        }
        if let Some(check) = self.place_check.take() {
            place_is_free(check).await?;
        }
        let part = std::mem::take(&mut self.part).freeze();
        if let Err(err) = self.upload.write(part).await {
            let err = store_error(err);
            self.failed = Some(Error::Io(std::io::Error::other(err.to_string())));
            return Err(err);
        }
        Ok(())
    }
}

#[async_trait]
impl WriteFile for ObjectWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let end = match self.undecided {
            // Sequential writes of an upload opened in place at 0 start at 0.
            Some(_) => 0,
            None => self.end + self.waiting_bytes,
        };
        self.write_at(end, data).await
    }

    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        self.check_failed()?;
        if data.is_empty() {
            return Ok(());
        }
        if let Some(stored) = self.undecided.take() {
            match offset {
                // A resume: the stored object goes first.
                at if at == stored => self.carry_over(stored).await?,
                // A rewrite from the start.
                0 => self.must_reach = stored,
                _ => {
                    self.undecided = Some(stored);
                    return Err(Error::Unsupported(
                        "object storage resumes an upload only at the end of what is stored",
                    ));
                }
            }
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
        if let Some(stored) = self.undecided {
            // Opened in place and never written: the object stays as it is.
            let _ = self.upload.abort().await;
            return Ok(Committed { written: 0, size: stored, replaced: None, unsynced: None });
        }
        if self.end < self.must_reach {
            return Err(Error::Unsupported(
                "object storage cannot keep the end of an object rewritten in place",
            ));
        }
        if !self.waiting.is_empty() {
            return Err(Error::Unsupported("an upload to object storage left a gap"));
        }
        // The questions to the store, asked at once (the place was asked at open, and has
        // usually been answered by now).
        let place_check = self.place_check.take();
        let wants_replaced = self.mode.is_atomic() && check.is_some();
        let (place, replaced) = tokio::join!(
            async {
                match place_check {
                    Some(check) => place_is_free(check).await,
                    None => Ok(()),
                }
            },
            async {
                // What the upload replaces matters only to the check (the quota); without one
                // it is not asked for, which spares a small upload a request. An append
                // replaces nothing in the client's eyes: the object grows.
                match wants_replaced {
                    true => self.storage.file_metadata(&self.path).await,
                    false => Ok(None),
                }
            },
        );
        place?;
        let replaced = replaced?.map(|meta| meta.size);
        if let Some(check) = check {
            check(replaced, self.end).await?;
        }
        self.send_part().await?;
        if let Err(err) = self.upload.close().await {
            // The multipart upload (if any) must not stay open.
            let _ = self.upload.abort().await;
            return Err(store_error(err));
        }
        let written = self.end - self.carried;
        Ok(Committed { written, size: self.end, replaced, unsynced: None })
    }

    fn created(&self) -> bool {
        self.creates
    }

    fn bytes_written(&self) -> u64 {
        self.end - self.carried + self.waiting_bytes
    }
}

/// The answer of the check that an upload has a place: its folder exists, its name is not a
/// folder.
async fn place_is_free(check: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    check.await.unwrap_or_else(|_| {
        Err(Error::Io(std::io::Error::other("the check of the upload's place was interrupted")))
    })
}

/// A request to the store that failed, as the tree's error.
fn store_error(err: DriveError) -> Error {
    match err {
        DriveError::Store(err) => from_store(err),
        DriveError::Over => Error::Unsupported("the upload is over"),
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // The multipart upload aborts itself when dropped uncompleted (multipart.rs).
        if let Some(check) = self.place_check.take() {
            check.abort();
        }
    }
}
