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
//!
//! Publishing looks at what the name holds under the name's lock (`names.rs`) in the same
//! blocking call as the rename: the file it replaces is reported (quotas settle on it), and
//! its permission bits go to the new file first, so an overwrite keeps the file's mode. With
//! `fsync_on_commit` (or after [`WriteFile::sync`]), the file is flushed before the rename
//! and its directory after it, so the publication itself survives a power loss; an in-place
//! write that created its file flushes the directory too.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{FileExt, PermissionsExt as _};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cap_std::fs::{Dir, MetadataExt as _, OpenOptions, OpenOptionsExt as _};
use tokio::task::JoinHandle;

use super::names;
use super::open_nonblocking;
use super::temporaries::TempName;
use crate::error::{Error, Result};
use crate::storage::{Committed, PublishCheck, TRANSFER_CHUNK, WriteFile, WriteMode, blocking};

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

/// The mode new files are created with (before the umask).
const NEW_FILE_MODE: u32 = 0o644;

/// Creates an upload's temporary file (refusing to reuse a name).
fn create_temp(parent: &Dir, temp_name: &str) -> Result<File> {
    let options = OpenOptions::new().write(true).create_new(true).mode(NEW_FILE_MODE).clone();
    Ok(parent.open_with(temp_name, &options)?.into_std())
}

/// Flushes the directory `dir` (its entries: a rename or a creation in it) to stable storage.
fn sync_dir(dir: &Dir) -> Result<()> {
    // The handle may be a path-only descriptor (`O_PATH`), which cannot be flushed: open the
    // directory itself for reading, by `.` relative to the handle.
    use rustix::fs::{Mode, OFlags};
    let readable = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fsync(&readable)?;
    #[cfg(test)]
    synced_dirs::record(dir);
    Ok(())
}

/// Test-only record of the directories [`sync_dir`] flushed, by identity, so unit tests can
/// see that publishing really flushed the directory (concurrent tests each look for their own
/// directory).
#[cfg(test)]
pub(super) mod synced_dirs {
    use std::sync::Mutex;

    use cap_std::fs::{Dir, MetadataExt as _};

    static SYNCED: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

    pub(in crate::local) fn record(dir: &Dir) {
        if let Ok(meta) = dir.dir_metadata() {
            SYNCED.lock().unwrap_or_else(|p| p.into_inner()).push((meta.dev(), meta.ino()));
        }
    }

    /// Forgets the flushes of a directory with this identity (an inode number is reused once
    /// its directory is gone: a test starts from a clean count for its own).
    pub(in crate::local) fn forget(dev: u64, ino: u64) {
        SYNCED.lock().unwrap_or_else(|p| p.into_inner()).retain(|&id| id != (dev, ino));
    }

    /// How many times the directory with this identity was flushed.
    pub(in crate::local) fn count(dev: u64, ino: u64) -> usize {
        SYNCED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|&&id| id == (dev, ino))
            .count()
    }
}

/// Opens `name` in `parent` for an in-place write, creating it when missing; returns the file
/// and whether this call created it (decided by the kernel, `O_EXCL`, not by a prior look).
fn open_in_place(parent: &Dir, name: &str, append: bool) -> Result<(File, bool)> {
    let options = || {
        let mut options = OpenOptions::new();
        options.write(true).append(append).mode(NEW_FILE_MODE);
        options
    };
    // A file removed or created between two attempts sends us round again; a few rounds
    // are plenty unless another program toggles the name on purpose.
    for _ in 0..4 {
        match open_nonblocking(parent, name, &mut options()) {
            Ok(file) => return Ok((file.into_std(), false)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
        match open_nonblocking(parent, name, options().create_new(true)) {
            Ok(file) => return Ok((file.into_std(), true)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::Io(std::io::Error::other("the file kept appearing and disappearing")))
}

pub(super) struct LocalWriter {
    file: FileSlot,
    parent: Arc<Dir>,
    /// The temporary name while an atomic upload is unpublished.
    temp_name: Option<TempName>,
    name: String,
    mode: WriteMode,
    /// Flush the file and its directory on commit: `fsync_on_commit`, or asked for by
    /// [`WriteFile::sync`].
    fsync_on_commit: bool,
    /// Whether opening created the file (in-place writes).
    created: bool,
    /// Next sequential position (relative to the start of the file).
    position: u64,
    pending: BytesMut,
    pending_at: Position,
    /// The block being written; resolves to the file (created by then).
    in_flight: Option<JoinHandle<Result<Arc<File>>>>,
    failed: Option<Error>,
    written: u64,
    /// The end of the furthest write (an atomic upload's temporary file starts empty, so this
    /// is its size).
    end: u64,
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
        let (file, temp_name, position, created) = match mode {
            WriteMode::Replace | WriteMode::CreateNew => {
                let temp = TempName::fresh();
                let file = create_temp(&parent, temp.as_str())?;
                (file, Some(temp), 0, false)
            }
            WriteMode::Append => {
                let (file, created) = open_in_place(&parent, &name, true)?;
                (file, None, 0, created)
            }
            WriteMode::At(offset) => {
                let (file, created) = open_in_place(&parent, &name, false)?;
                (file, None, offset, created)
            }
        };
        if !file.metadata()?.is_file() {
            return Err(Error::PermissionDenied);
        }
        let mut writer = LocalWriter::with_file(
            FileSlot::Open(Arc::new(file)),
            Arc::new(parent),
            temp_name,
            name,
            mode,
            fsync_on_commit,
            position,
        );
        writer.created = created;
        Ok(writer)
    }

    /// A whole-file upload to `name` in `parent` whose temporary file is created when first
    /// needed. The caller has checked what [`LocalWriter::open`] checks: the directory is
    /// writable and the target is no directory (and, for [`WriteMode::CreateNew`], absent);
    /// for [`WriteMode::Replace`] the target may be unknown, and the commit refuses a
    /// directory.
    pub(super) fn deferred(parent: Dir, name: String, mode: WriteMode, fsync: bool) -> Self {
        debug_assert!(mode.is_atomic());
        let parent = Arc::new(parent);
        let temp = TempName::fresh();
        let file =
            FileSlot::Deferred { parent: parent.clone(), temp_name: temp.as_str().to_owned() };
        LocalWriter::with_file(file, parent, Some(temp), name, mode, fsync, 0)
    }

    fn with_file(
        file: FileSlot,
        parent: Arc<Dir>,
        temp_name: Option<TempName>,
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
            created: false,
            position,
            pending: BytesMut::new(),
            pending_at,
            in_flight: None,
            failed: None,
            written: 0,
            end: 0,
        }
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            Some(err) => Err(err.replicate()),
            None => Ok(()),
        }
    }

    /// Waits for the block in flight, if any. Cancel-safe: the task stays in `in_flight` until
    /// it is over, so a writer dropped meanwhile still knows that it may create the temporary
    /// file (see `Drop`).
    async fn settle(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.as_mut() {
            let result = match task.await {
                Ok(result) => result,
                Err(join_err) => Err(Error::Io(std::io::Error::other(join_err))),
            };
            self.in_flight = None;
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
        if let Position::At(offset) = at {
            self.end = self.end.max(offset + data.len() as u64);
        }
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
        let parent = self.parent.clone();
        let created = self.created;
        let synced = blocking(move || {
            let file = slot.open()?;
            file.sync_data()?;
            if created {
                sync_dir(&parent)?;
            }
            Ok(file)
        })
        .await;
        self.file = FileSlot::Open(synced.map_err(|err| self.note(err))?);
        // What was synced of an unpublished upload is its temporary file; a client asking for
        // durability wants the publication to last too.
        if self.temp_name.is_some() {
            self.fsync_on_commit = true;
        }
        Ok(())
    }

    async fn publish(mut self: Box<Self>, check: Option<PublishCheck>) -> Result<Committed> {
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
        let temp = self.temp_name.as_ref().map(|t| t.as_str().to_owned());
        let exclusive = self.mode == WriteMode::CreateNew;
        let (fsync, created, written, size) =
            (self.fsync_on_commit, self.created, self.written, self.end);
        // The quota's check may need the runtime (a cluster's database).
        let runtime = tokio::runtime::Handle::current();
        let published = blocking(move || {
            let file = slot.open()?;
            if !last.is_empty() {
                write_block(&file, at, &last)?;
            }
            let Some(temp) = temp else {
                let size = file.metadata()?.len();
                let unsynced = match fsync {
                    true => file.sync_data().map_err(Error::from).and_then(|()| match created {
                        true => sync_dir(&parent),
                        false => Ok(()),
                    }),
                    false => Ok(()),
                };
                return Ok(Committed { written, size, replaced: None, unsynced: unsynced.err() });
            };
            if fsync {
                file.sync_all()?;
            }
            let target = Target { parent: &parent, name: &name, exclusive };
            let check = check.map(|check| (check, runtime));
            let replaced = publish_temp(&file, size, &temp, target, check)?;
            let unsynced = if fsync { sync_dir(&parent).err() } else { None };
            Ok(Committed { written, size, replaced, unsynced })
        })
        .await;
        match published {
            Ok(committed) => {
                self.temp_name = None;
                Ok(committed)
            }
            Err(err) => {
                self.discard();
                Err(err)
            }
        }
    }

    fn created(&self) -> bool {
        self.created
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}

/// Where an atomic upload is published.
struct Target<'a> {
    parent: &'a Dir,
    name: &'a str,
    /// Refuse to replace anything (`CreateNew`).
    exclusive: bool,
}

/// Renames the temporary file `temp` (open as `file`, `size` bytes) over the target, with the
/// name locked: looks at what the name holds, lets `check` refuse, gives a replaced file's
/// permission bits to the new one, renames. Returns the size of the regular file replaced.
/// Runs on the blocking pool.
fn publish_temp(
    file: &File,
    size: u64,
    temp: &str,
    target: Target<'_>,
    check: Option<(PublishCheck, tokio::runtime::Handle)>,
) -> Result<Option<u64>> {
    let Target { parent, name, exclusive } = target;
    let _held = names::lock(&[names::stripe(name)]);
    let old = match parent.symlink_metadata(name) {
        Ok(meta) => Some(meta),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err.into()),
    };
    if exclusive && old.is_some() {
        return Err(Error::AlreadyExists);
    }
    // The name may not have been looked at when the upload opened (`LocalStorage::deferred_writer`).
    if old.as_ref().is_some_and(|meta| meta.is_dir()) {
        return Err(Error::IsADirectory);
    }
    let old_file = old.filter(|meta| meta.is_file());
    let replaced = old_file.as_ref().map(|meta| meta.len());
    if let Some((check, runtime)) = check {
        // On the blocking pool, outside the runtime's workers: waiting here is allowed.
        runtime.block_on(check(replaced, size))?;
    }
    if let Some(old) = &old_file {
        file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o777))?;
    }
    if exclusive {
        rustix::fs::renameat_with(parent, temp, parent, name, rustix::fs::RenameFlags::NOREPLACE)?;
    } else {
        parent.rename(temp, parent, name)?;
    }
    Ok(replaced)
}

impl LocalWriter {
    /// Removes an unpublished temporary file; the target stays as it was.
    fn discard(&mut self) {
        if let Some(temp) = self.temp_name.take() {
            remove_temp(&self.parent, temp.as_str());
        }
    }
}

fn remove_temp(parent: &Dir, temp_name: &str) {
    if let Err(err) = parent.remove_file(temp_name)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %err, "could not remove temporary upload file");
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
                        remove_temp(&parent, temp.as_str());
                    })),
                    // Dropped outside the runtime (only while it shuts down): nothing can wait.
                    Err(_) => remove_temp(&parent, temp.as_str()),
                }
            }
            // A write in flight to a file that exists goes to an unlinked file: harmless.
            (_, _, Some(temp)) => remove_temp(&self.parent, temp.as_str()),
            (_, _, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::synced_dirs;
    use crate::local::{LocalOptions, LocalStorage};
    use crate::{Storage, VPath, WriteMode};

    fn p(s: &str) -> VPath {
        VPath::resolve(&VPath::root(), s).expect("valid path")
    }

    /// A storage with a folder `inbox`, and how often `inbox` was flushed so far.
    fn setup(fsync_on_commit: bool) -> (tempfile::TempDir, LocalStorage, impl Fn() -> usize) {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("inbox")).expect("mkdir");
        let meta = std::fs::metadata(tmp.path().join("inbox")).expect("stat");
        let options = LocalOptions { fsync_on_commit, ..LocalOptions::default() };
        let storage = LocalStorage::open(tmp.path(), false, options).expect("open");
        let (dev, ino) = (meta.dev(), meta.ino());
        synced_dirs::forget(dev, ino);
        (tmp, storage, move || synced_dirs::count(dev, ino))
    }

    #[tokio::test]
    async fn fsync_on_commit_flushes_the_directory_after_the_publishing_rename() {
        let (_tmp, storage, flushes) = setup(true);
        for mode in [WriteMode::Replace, WriteMode::CreateNew, WriteMode::Replace] {
            let before = flushes();
            let name = if mode == WriteMode::CreateNew { "inbox/new.bin" } else { "inbox/a.bin" };
            let mut writer = storage.open_write(&p(name), mode).await.expect("open");
            writer.write(bytes::Bytes::from_static(b"data")).await.expect("write");
            writer.commit().await.expect("commit");
            assert_eq!(flushes(), before + 1, "{mode:?}");
        }
        // An in-place write that creates its file flushes the directory; one into an existing
        // file changes no directory entry and does not.
        let writer = storage.open_write(&p("inbox/log.txt"), WriteMode::Append).await.expect("o");
        writer.commit().await.expect("commit");
        assert_eq!(flushes(), 4);
        let writer = storage.open_write(&p("inbox/log.txt"), WriteMode::Append).await.expect("o");
        writer.commit().await.expect("commit");
        assert_eq!(flushes(), 4);
    }

    #[tokio::test]
    async fn without_fsync_on_commit_nothing_is_flushed_unless_the_client_syncs() {
        let (_tmp, storage, flushes) = setup(false);
        let writer = storage.open_write(&p("inbox/a.bin"), WriteMode::Replace).await.expect("o");
        writer.commit().await.expect("commit");
        assert_eq!(flushes(), 0);
        // A sync on an unpublished upload flushes its temporary file; the publication that
        // follows is flushed too, or what the client was told is durable would not be.
        let mut writer =
            storage.open_write(&p("inbox/b.bin"), WriteMode::Replace).await.expect("o");
        writer.write(bytes::Bytes::from_static(b"data")).await.expect("write");
        writer.sync().await.expect("sync");
        assert_eq!(flushes(), 0, "the temporary file's name is not worth flushing");
        writer.commit().await.expect("commit");
        assert_eq!(flushes(), 1);
    }
}
