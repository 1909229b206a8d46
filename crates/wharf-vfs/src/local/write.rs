//! Writing local files.
//!
//! Whole-file uploads go to a hidden temporary file in the target's directory and are renamed
//! over the target on commit, so a reader sees the whole old file or the whole new one and an
//! interrupted upload changes nothing. In-place writes (append, resume) go straight to the file.
//!
//! Incoming bytes are gathered into blocks of [`TRANSFER_CHUNK`] and written on the blocking
//! pool, one block in flight while the next is gathered: no blocking thread is parked per open
//! file, and the network never waits for the disk unless the disk is the slower of the two.
//!
//! When everything opening a whole-file upload must check is in memory (see
//! [`super::cached`]), its temporary file is created by the first blocking call the upload
//! makes anyway: with its first block, or with the commit of a small file. A 4 KiB upload then
//! costs one trip to the blocking pool instead of three.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};
use tokio::task::JoinHandle;

use super::open_nonblocking;
use crate::error::{Error, Result};
use crate::storage::{TRANSFER_CHUNK, WriteFile, WriteMode, blocking};

/// Prefix of temporary upload files. Names with it are hidden from listings and refused as
/// paths, so no client can see, open or publish another upload's temporary file.
pub const TEMP_PREFIX: &str = ".wharf-tmp-";

/// Where a block goes: a position, or the end of a file opened for appending.
#[derive(Debug, Clone, Copy)]
enum Position {
    At(u64),
    End,
}

/// The file an upload writes to, as a blocking call reaches it.
#[derive(Clone)]
enum FileSlot {
    /// Open.
    Open(Arc<File>),
    /// A temporary file not created yet: the first blocking call that needs it creates it.
    Deferred {
        /// Its directory.
        parent: Arc<Dir>,
        /// Its name.
        temp_name: String,
    },
}

impl FileSlot {
    /// The file, created first if it was deferred. Runs on the blocking pool.
    fn open(self) -> Result<Arc<File>> {
        match self {
            FileSlot::Open(file) => Ok(file),
            FileSlot::Deferred { parent, temp_name } => {
                Ok(Arc::new(create_temp(&parent, &temp_name)?))
            }
        }
    }
}

/// Creates an upload's temporary file (refusing to reuse a name).
fn create_temp(parent: &Dir, temp_name: &str) -> Result<File> {
    let options = OpenOptions::new().write(true).create_new(true).mode(0o644).clone();
    Ok(parent.open_with(temp_name, &options)?.into_std())
}

/// A fresh temporary name for an upload.
fn temp_name() -> String {
    format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>())
}

pub(super) struct LocalWriter {
    file: FileSlot,
    parent: Arc<Dir>,
    /// The temporary name while an atomic upload is unpublished.
    temp_name: Option<String>,
    name: String,
    mode: WriteMode,
    fsync_on_commit: bool,
    /// Next sequential position (relative to the start of the file).
    position: u64,
    pending: BytesMut,
    pending_at: Position,
    /// The block being written; resolves to the file (created by then).
    in_flight: Option<JoinHandle<Result<Arc<File>>>>,
    failed: Option<Error>,
    written: u64,
}

impl LocalWriter {
    pub(super) fn open(
        parent: Dir,
        name: String,
        mode: WriteMode,
        fsync_on_commit: bool,
    ) -> Result<Self> {
        if let Ok(meta) = parent.metadata(&name) {
            if meta.is_dir() {
                return Err(Error::IsADirectory);
            }
            if mode == WriteMode::CreateNew {
                return Err(Error::AlreadyExists);
            }
        }
        let (file, temp_name, position) = match mode {
            WriteMode::Replace | WriteMode::CreateNew => {
                let temp = temp_name();
                let file = create_temp(&parent, &temp)?;
                (file, Some(temp), 0)
            }
            WriteMode::Append => {
                let file = open_nonblocking(
                    &parent,
                    &name,
                    OpenOptions::new().append(true).create(true).mode(0o644),
                )?;
                (file.into_std(), None, 0)
            }
            WriteMode::At(offset) => {
                let file = open_nonblocking(
                    &parent,
                    &name,
                    OpenOptions::new().write(true).create(true).mode(0o644),
                )?;
                (file.into_std(), None, offset)
            }
        };
        if !file.metadata()?.is_file() {
            return Err(Error::PermissionDenied);
        }
        Ok(LocalWriter::with_file(
            FileSlot::Open(Arc::new(file)),
            Arc::new(parent),
            temp_name,
            name,
            mode,
            fsync_on_commit,
            position,
        ))
    }

    /// A whole-file upload to `name` in `parent` whose temporary file is created when first
    /// needed. The caller has checked what [`LocalWriter::open`] checks: the directory is
    /// writable and the target is no directory (and, for [`WriteMode::CreateNew`], absent).
    pub(super) fn deferred(parent: Dir, name: String, mode: WriteMode, fsync: bool) -> Self {
        debug_assert!(mode.is_atomic());
        let parent = Arc::new(parent);
        let temp = temp_name();
        let file = FileSlot::Deferred { parent: parent.clone(), temp_name: temp.clone() };
        LocalWriter::with_file(file, parent, Some(temp), name, mode, fsync, 0)
    }

    fn with_file(
        file: FileSlot,
        parent: Arc<Dir>,
        temp_name: Option<String>,
        name: String,
        mode: WriteMode,
        fsync_on_commit: bool,
        position: u64,
    ) -> Self {
        let pending_at =
            if mode == WriteMode::Append { Position::End } else { Position::At(position) };
        LocalWriter {
            file,
            parent,
            temp_name,
            name,
            mode,
            fsync_on_commit,
            position,
            pending: BytesMut::new(),
            pending_at,
            in_flight: None,
            failed: None,
            written: 0,
        }
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            Some(err) => Err(err.replicate()),
            None => Ok(()),
        }
    }

    /// Waits for the block in flight, if any.
    async fn settle(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            let result = match task.await {
                Ok(result) => result,
                Err(join_err) => Err(Error::Io(std::io::Error::other(join_err))),
            };
            self.file = FileSlot::Open(result.map_err(|err| self.note(err))?);
        }
        Ok(())
    }

    /// Remembers the first failure, so later calls report it too.
    fn note(&mut self, err: Error) -> Error {
        if self.failed.is_none() {
            self.failed = Some(err.replicate());
        }
        err
    }

    /// Sends the gathered block to the blocking pool, after the previous one finished.
    async fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return self.settle().await;
        }
        let block = std::mem::take(&mut self.pending).freeze();
        self.send_block(block).await
    }

    /// Writes `block` at `pending_at` on the blocking pool, once the previous block is done.
    async fn send_block(&mut self, block: Bytes) -> Result<()> {
        self.settle().await?;
        let at = self.pending_at;
        if let Position::At(offset) = at {
            self.pending_at = Position::At(offset + block.len() as u64);
        }
        let slot = self.file.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let file = slot.open()?;
            write_block(&file, at, &block)?;
            Ok(file)
        }));
        Ok(())
    }

    async fn enqueue(&mut self, at: Position, data: Bytes) -> Result<()> {
        self.check_failed()?;
        let contiguous = match (self.pending_at, at) {
            (Position::End, Position::End) => true,
            (Position::At(start), Position::At(offset)) => {
                start + self.pending.len() as u64 == offset
            }
            _ => false,
        };
        if !contiguous {
            self.flush_pending().await?;
            self.pending_at = at;
        }
        self.written += data.len() as u64;
        if self.pending.is_empty() && data.len() >= TRANSFER_CHUNK {
            // A large block goes out as it is, without a copy.
            return self.send_block(data).await;
        }
        if self.pending.capacity() == 0 {
            self.pending.reserve(TRANSFER_CHUNK);
        }
        self.pending.extend_from_slice(&data);
        if self.pending.len() >= TRANSFER_CHUNK {
            self.flush_pending().await?;
        }
        Ok(())
    }

    /// Everything queued, written.
    async fn drain(&mut self) -> Result<()> {
        self.flush_pending().await?;
        self.settle().await
    }
}

fn write_block(file: &File, at: Position, block: &[u8]) -> Result<()> {
    match at {
        Position::End => {
            let mut handle: &File = file;
            handle.write_all(block)?;
        }
        Position::At(offset) => file.write_all_at(block, offset)?,
    }
    Ok(())
}

#[async_trait]
impl WriteFile for LocalWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let at = match self.mode {
            WriteMode::Append => Position::End,
            _ => Position::At(self.position),
        };
        self.position += data.len() as u64;
        self.enqueue(at, data).await
    }

    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        if self.mode == WriteMode::Append {
            return Err(Error::Unsupported("positional writes to a file opened for appending"));
        }
        self.enqueue(Position::At(offset), data).await
    }

    async fn sync(&mut self) -> Result<()> {
        self.drain().await?;
        let slot = self.file.clone();
        let synced = blocking(move || {
            let file = slot.open()?;
            file.sync_data()?;
            Ok(file)
        })
        .await;
        self.file = FileSlot::Open(synced.map_err(|err| self.note(err))?);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64> {
        // The last block goes in the same trip to the blocking pool as the sync and the
        // publishing rename: a small upload costs one trip on commit, not two.
        let settled = self.check_failed().and(self.settle().await);
        if let Err(err) = settled {
            self.discard();
            return Err(err);
        }
        let last = std::mem::take(&mut self.pending).freeze();
        let at = self.pending_at;
        let slot = self.file.clone();
        let parent = self.parent.clone();
        let name = self.name.clone();
        let temp = self.temp_name.clone();
        let (fsync, exclusive) = (self.fsync_on_commit, self.mode == WriteMode::CreateNew);
        let published = blocking(move || {
            let file = slot.open()?;
            if !last.is_empty() {
                write_block(&file, at, &last)?;
            }
            let Some(temp) = temp else {
                if fsync {
                    file.sync_data()?;
                }
                return Ok(());
            };
            if fsync {
                file.sync_all()?;
            }
            if exclusive {
                rustix::fs::renameat_with(
                    &*parent,
                    temp.as_str(),
                    &*parent,
                    name.as_str(),
                    rustix::fs::RenameFlags::NOREPLACE,
                )?;
            } else {
                parent.rename(&temp, &parent, &name)?;
            }
            Ok(())
        })
        .await;
        match published {
            Ok(()) => {
                self.temp_name = None;
                Ok(self.written)
            }
            Err(err) => {
                self.discard();
                Err(err)
            }
        }
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}

impl LocalWriter {
    /// Removes an unpublished temporary file; the target stays as it was.
    fn discard(&mut self) {
        if let Some(temp) = self.temp_name.take() {
            remove_temp(&self.parent, &temp);
        }
    }
}

fn remove_temp(parent: &Dir, temp_name: &str) {
    if let Err(err) = parent.remove_file(temp_name) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %err, "could not remove temporary upload file");
        }
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        let creating = matches!(self.file, FileSlot::Deferred { .. });
        match (creating, self.in_flight.take(), self.temp_name.take()) {
            // A block still being written may yet create the temporary file: remove it only
            // once that write is over, or it would outlive the upload.
            (true, Some(task), Some(temp)) => {
                let parent = self.parent.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn(async move {
                        let _ = task.await;
                        remove_temp(&parent, &temp);
                    })),
                    // Dropped outside the runtime (only while it shuts down): nothing can wait.
                    Err(_) => remove_temp(&parent, &temp),
                }
            }
            // A write in flight to a file that exists goes to an unlinked file: harmless.
            (_, _, Some(temp)) => remove_temp(&self.parent, &temp),
            (_, _, None) => {}
        }
    }
}
