//! The interface every storage backend implements.
//!
//! A backend sees paths relative to its own root as [`VPath`]s (so `/` is the backend's root);
//! it knows nothing of users, permissions or protocols. The local disk is the backend built
//! today; object storage comes later, so the trait states what a backend can do
//! ([`Capabilities`]) instead of assuming POSIX everywhere.

use std::fmt::Debug;
use std::os::fd::BorrowedFd;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::metadata::{DirEntry, DiskUsage, FileKind, Metadata, Space};
use crate::path::VPath;

/// What a backend can do; front-ends answer politely where a capability is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Writes at arbitrary offsets (resumed uploads, SFTP writes out of order).
    pub random_write: bool,
    /// Appending to an existing file.
    pub append: bool,
    /// Renames that replace their target atomically.
    pub atomic_rename: bool,
    /// Hard links.
    pub hard_links: bool,
    /// Unix permission bits can be changed.
    pub set_mode: bool,
    /// Modification times can be set.
    pub set_times: bool,
}

/// How [`Storage::open_write`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// A whole-file upload: bytes go to a hidden temporary file beside the target and replace
    /// it only on [`WriteFile::commit`]. The target may or may not exist.
    Replace,
    /// Like [`WriteMode::Replace`], but the commit fails with [`Error::AlreadyExists`] rather
    /// than replace a file that exists by then.
    CreateNew,
    /// In place, every write going to the current end of the file; creates the file if it is
    /// missing. What is written stays even without a commit (that is what makes it resumable).
    Append,
    /// In place, sequential writes starting at this offset (a resumed upload); creates the file
    /// if it is missing. What is written stays even without a commit.
    At(u64),
}

impl WriteMode {
    /// Whether the bytes go to a temporary file published on commit.
    pub fn is_atomic(self) -> bool {
        matches!(self, WriteMode::Replace | WriteMode::CreateNew)
    }
}

/// A storage backend rooted at one directory (or bucket prefix).
///
/// All methods take paths relative to the backend's root. Implementations must guarantee that
/// no path, symbolic link or concurrent rename reaches anything outside that root.
#[async_trait]
pub trait Storage: Send + Sync + Debug {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Attributes of `path`, following symbolic links that stay inside the root.
    async fn stat(&self, path: &VPath) -> Result<Metadata>;

    /// Attributes of `path` itself, not following a final symbolic link.
    async fn lstat(&self, path: &VPath) -> Result<Metadata>;

    /// Starts listing the directory `path`; entries are fetched in batches.
    async fn list(&self, path: &VPath) -> Result<Box<dyn DirLister>>;

    /// Opens the file `path` for reading.
    async fn open_read(&self, path: &VPath) -> Result<Box<dyn ReadFile>>;

    /// Opens the file `path` for writing in `mode`.
    async fn open_write(&self, path: &VPath, mode: WriteMode) -> Result<Box<dyn WriteFile>>;

    /// Renames `from` to `to`, replacing a file at `to` (atomically where the backend can).
    /// Returns the size of the regular file it replaced at `to`, `None` when `to` held none
    /// (nothing, a link, an empty directory) or already was `from`.
    async fn rename(&self, from: &VPath, to: &VPath) -> Result<Option<u64>>;

    /// Removes the file `path` (not a directory). Returns its size if it was a regular file,
    /// `None` for a link or a special file.
    async fn remove_file(&self, path: &VPath) -> Result<Option<u64>>;

    /// Creates the directory `path` (its parent must exist).
    async fn make_dir(&self, path: &VPath) -> Result<()>;

    /// Removes the empty directory `path`.
    async fn remove_dir(&self, path: &VPath) -> Result<()>;

    /// Sets the modification (and optionally access) time of `path`.
    async fn set_times(
        &self,
        path: &VPath,
        modified: SystemTime,
        accessed: Option<SystemTime>,
    ) -> Result<()>;

    /// Sets the Unix permission bits (`0o7777` mask) of `path`.
    async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()>;

    /// The target of the symbolic link `path`, as stored.
    async fn read_link(&self, path: &VPath) -> Result<String>;

    /// Free and total space of the storage holding `path`.
    async fn space(&self, path: &VPath) -> Result<Space>;

    /// Size and number of the regular files below the directory `path` (what a quota
    /// counts). Walks the tree through [`Storage::list`]; a directory reached twice (through
    /// a link) is counted once.
    async fn usage(&self, path: &VPath) -> Result<DiskUsage> {
        let mut total = DiskUsage::default();
        let mut seen = std::collections::HashSet::new();
        if let Some(id) = self.stat(path).await?.id {
            seen.insert(id);
        }
        let mut pending = vec![path.clone()];
        while let Some(dir) = pending.pop() {
            let mut lister = self.list(&dir).await?;
            loop {
                let batch = lister.next_batch(1024).await?;
                if batch.is_empty() {
                    break;
                }
                for entry in batch {
                    match entry.metadata.kind {
                        FileKind::File => {
                            total.bytes += entry.metadata.size;
                            total.files += 1;
                        }
                        FileKind::Dir => {
                            let first_visit = entry.metadata.id.is_none_or(|id| seen.insert(id));
                            if first_visit && let Ok(child) = dir.join(&entry.name) {
                                pending.push(child);
                            }
                        }
                        FileKind::Symlink | FileKind::Other => {}
                    }
                }
            }
        }
        Ok(total)
    }
}

/// Streams a directory's entries in batches, so a directory of 100,000 entries never becomes
/// one allocation.
#[async_trait]
pub trait DirLister: Send {
    /// Up to `max` further entries; an empty batch means the listing is complete.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>>;
}

/// An open file being read.
#[async_trait]
pub trait ReadFile: Send + Sync {
    /// Attributes of the file when it was opened.
    fn metadata(&self) -> &Metadata;

    /// Reads up to `len` bytes at `offset`; fewer only at the end of the file, none past it.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;

    /// Reads the file sequentially from `offset` on one background task, with read-ahead, in
    /// chunks of about [`TRANSFER_CHUNK`] bytes.
    fn stream(self: Box<Self>, offset: u64) -> ReadStream;

    /// The open file's descriptor, for zero-copy sends (`sendfile`) to a plain socket; `None`
    /// when the backend has no local file.
    fn as_fd(&self) -> Option<BorrowedFd<'_>>;
}

/// What a finished upload did, as measured by the backend when it did it.
#[derive(Debug)]
pub struct Committed {
    /// Bytes this upload wrote.
    pub written: u64,
    /// The size of the file under its name now.
    pub size: u64,
    /// For a whole-file upload, the size of the regular file its publication replaced;
    /// `None` when the name held no regular file (the upload added a file). Always `None`
    /// for in-place writes, which replace nothing (see [`WriteFile::created`]). A backend
    /// for which finding out costs a request (object storage) reports it only when the
    /// publish was given a [`PublishCheck`]: the quota, which gives one, is its only reader.
    pub replaced: Option<u64>,
    /// Set when the file is in place but flushing it or its directory to stable storage
    /// failed (only asked for with `fsync_on_commit` or after [`WriteFile::sync`]): the
    /// upload happened, yet may not survive a power loss.
    pub unsynced: Option<Error>,
}

/// A last word on publishing a whole-file upload, given while no other publish, rename or
/// removal made by this process can change the name (see `local/names.rs`): it receives the
/// size of the regular file the name holds now (`None`: none) and the size of the file about
/// to take its place, and may refuse with an error, which keeps the old file and discards the
/// upload. Quotas use it to settle on what is really there rather than on what was there
/// when the upload opened. Its answer is a future because a cluster's quota asks the shared
/// database (only when the upload holds less than it needs); the local backend waits for it
/// on the blocking thread that holds the name.
pub type PublishCheck = Box<dyn FnOnce(Option<u64>, u64) -> CheckAnswer + Send>;

/// The answer of a [`PublishCheck`].
pub type CheckAnswer = futures_util::future::BoxFuture<'static, Result<()>>;

/// An open file being written.
///
/// Writes are queued to a background task, so an error (a full disk, say) may surface on a
/// later call or at [`WriteFile::commit`]. Dropping the writer without a commit discards an
/// atomic upload (the old file stays byte-identical and the temporary file is removed) and
/// keeps what an in-place write already wrote.
#[async_trait]
pub trait WriteFile: Send {
    /// Writes `data` at the current position and advances it.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Writes `data` at `offset` relative to the start of the file, without moving the current
    /// position (SFTP). Refused in [`WriteMode::Append`].
    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()>;

    /// Waits until everything queued is written and flushed to stable storage. For an atomic
    /// upload not yet published, that is its temporary file; the upload then also flushes
    /// its publication (the file and its directory) when it commits, as `fsync_on_commit`
    /// does for every upload.
    async fn sync(&mut self) -> Result<()>;

    /// Finishes the upload: waits for queued writes and, for an atomic upload, publishes the
    /// file under its name. Returns the number of bytes written.
    async fn commit(self: Box<Self>) -> Result<u64> {
        let committed = self.publish(None).await?;
        match committed.unsynced {
            Some(err) => Err(err),
            None => Ok(committed.written),
        }
    }

    /// Like [`WriteFile::commit`], with `check` consulted just before an atomic upload is
    /// published (in-place writes publish nothing and ignore it); reports what the upload
    /// did.
    async fn publish(self: Box<Self>, check: Option<PublishCheck>) -> Result<Committed>;

    /// Whether opening this in-place write created its file (`false` when the file existed,
    /// and for whole-file uploads, which create their file only when they publish).
    fn created(&self) -> bool;

    /// Bytes accepted so far.
    fn bytes_written(&self) -> u64;
}

/// Where a backend takes the memory an upload buffers (object storage's parts in flight):
/// the process's byte budgets, which live in the layer above. Bytes reserved are given back
/// when the returned guard is dropped.
pub trait UploadMemory: Send + Sync + Debug {
    /// Reserves `bytes` for one upload, or `None` when the budget has no room for them.
    fn try_reserve(&self, bytes: usize) -> Option<Box<dyn Send + Sync>>;
}

/// Size of one block of file I/O on the data path. Large blocks keep the cost of handing work
/// to the blocking thread pool (and of the syscalls) small against the bytes moved.
pub const TRANSFER_CHUNK: usize = 256 * 1024;

/// Chunks a [`ReadStream`] reads ahead of its consumer.
pub const READ_AHEAD_CHUNKS: usize = 2;

/// A sequential read of a file, produced by a background task and consumed chunk by chunk.
#[derive(Debug)]
pub struct ReadStream {
    chunks: mpsc::Receiver<Result<Bytes>>,
}

/// The producing end of a [`ReadStream`], used by backends.
#[derive(Debug, Clone)]
pub struct ReadStreamSender {
    chunks: mpsc::Sender<Result<Bytes>>,
}

impl ReadStream {
    /// A connected pair: the backend feeds the sender, the front-end reads the stream.
    pub fn channel() -> (ReadStreamSender, ReadStream) {
        let (tx, rx) = mpsc::channel(READ_AHEAD_CHUNKS);
        (ReadStreamSender { chunks: tx }, ReadStream { chunks: rx })
    }

    /// The next chunk; `Ok(None)` at the end of the file.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.chunks.recv().await {
            None => Ok(None),
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(err)) => Err(err),
        }
    }
}

impl ReadStreamSender {
    /// Sends one chunk from a blocking thread; `false` once the reader has gone away.
    pub fn blocking_send(&self, chunk: Result<Bytes>) -> bool {
        self.chunks.blocking_send(chunk).is_ok()
    }

    /// Sends one chunk from async code; `false` once the reader has gone away.
    pub async fn send(&self, chunk: Result<Bytes>) -> bool {
        self.chunks.send(chunk).await.is_ok()
    }
}

/// Runs blocking file-system work on tokio's blocking pool and flattens a panic or cancellation
/// of that task into an I/O error.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_err) => Err(Error::Io(std::io::Error::other(join_err))),
    }
}
