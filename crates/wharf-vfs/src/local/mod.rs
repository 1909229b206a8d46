//! The local-disk backend.
//!
//! Every path is resolved beneath the backend's root directory by the kernel (cap-std uses
//! `openat2` with `RESOLVE_BENEATH`), never by joining strings onto a host path. A symbolic
//! link that points outside the root, an absolute link, a link loop or a rename racing with a
//! lookup ends in an error, not outside the root. A backend for a sub-tree (a user's home,
//! a shared folder) holds that directory open and is confined to it the same way.

mod cached;
mod list;
mod names;
mod read;
mod temporaries;
mod write;

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cap_fs_ext::{DirExt, SystemTimeSpec};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt as _, OpenOptions, OpenOptionsExt as _};

use crate::error::{Error, Result};
use crate::metadata::{FileId, FileKind, Metadata, Space};
use crate::path::{PathError, VPath};
use crate::storage::{Capabilities, DirLister, ReadFile, Storage, WriteFile, WriteMode, blocking};

pub use temporaries::{
    SWEEP_ENTRIES_PER_RUN, SWEEP_INTERVAL, SWEEP_MAX_DEPTH, SWEEP_PAUSE, SweepRun, TEMP_PREFIX,
    TemporarySweeper,
};

/// Options of the local backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOptions {
    /// Flush an upload to stable storage before publishing it, and its directory after (slower,
    /// survives power loss).
    pub fsync_on_commit: bool,
    /// How long a temporary upload file no upload of this process is writing must have been
    /// left untouched before it counts as a crash's leftover and may be removed (see
    /// `temporaries.rs`).
    pub stale_temporary_age: Duration,
}

/// The default of [`LocalOptions::stale_temporary_age`]: far longer than any transfer may
/// stay silent with the default timeouts.
pub const DEFAULT_STALE_TEMPORARY_AGE: Duration = Duration::from_secs(3600);

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions { fsync_on_commit: false, stale_temporary_age: DEFAULT_STALE_TEMPORARY_AGE }
    }
}

/// A directory on the local disk, serving as the root of a [`Storage`].
#[derive(Clone)]
pub struct LocalStorage {
    root: Arc<Dir>,
    options: LocalOptions,
}

impl fmt::Debug for LocalStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStorage").field("options", &self.options).finish_non_exhaustive()
    }
}

impl LocalStorage {
    /// Opens the host directory `path` as a root, creating it first when `create` is set.
    pub fn open(path: &Path, create: bool, options: LocalOptions) -> io::Result<Self> {
        if create {
            std::fs::create_dir_all(path)?;
        }
        let root = Dir::open_ambient_dir(path, ambient_authority())?;
        Ok(LocalStorage { root: Arc::new(root), options })
    }

    /// A backend confined to the directory `path` below this root (a mount's target), creating
    /// it (and its parents) first when `create` is set.
    pub async fn subtree(&self, path: &VPath, create: bool) -> Result<LocalStorage> {
        check_reserved(path)?;
        let root = self.root.clone();
        let rel = rel(path).to_owned();
        let dir = blocking(move || {
            if create && rel != "." {
                root.create_dir_all(&rel)?;
            }
            Ok(root.open_dir(&rel)?)
        })
        .await?;
        Ok(LocalStorage { root: Arc::new(dir), options: self.options.clone() })
    }

    /// A sweeper of the stale temporary upload files below this root (see
    /// [`TemporarySweeper`]).
    pub fn temporary_sweeper(&self) -> TemporarySweeper {
        TemporarySweeper::new(self.root.clone(), self.options.stale_temporary_age)
    }

    async fn with_root<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce(&Dir) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let root = self.root.clone();
        blocking(move || work(&root)).await
    }
}

impl LocalStorage {
    /// A whole-file upload opened without a trip to the blocking pool, when the caches can
    /// answer every check [`write::LocalWriter::open`] makes: the directory exists and is
    /// writable, the target is no directory (and absent, for [`WriteMode::CreateNew`]). For
    /// [`WriteMode::Replace`] a target the caches cannot tell about is left to the commit,
    /// which refuses a directory there. Its temporary file is created with its first block.
    fn deferred_writer(
        &self,
        parent: &VPath,
        name: &str,
        mode: WriteMode,
    ) -> Option<write::LocalWriter> {
        if !mode.is_atomic() {
            return None;
        }
        let dir = cached::writable_dir(&self.root, rel(parent))?;
        // A whole-file upload publishes with the name locked and looks at what it holds then
        // (`write::publish_temp`), so what it holds now changes nothing but when a directory
        // is reported; a create-only one must fail here if the name is taken.
        match (cached::lookup(&dir, name, true), mode) {
            (cached::Lookup::Missing, _) => {}
            (cached::Lookup::Found(meta), WriteMode::Replace) if !meta.is_dir() => {}
            (cached::Lookup::Unknown, WriteMode::Replace) => {}
            (cached::Lookup::Found(_) | cached::Lookup::Unknown, _) => return None,
        }
        let fsync = self.options.fsync_on_commit;
        Some(write::LocalWriter::deferred(dir, name.to_owned(), mode, fsync))
    }
}

/// The path as cap-std wants it: relative to the root, `.` for the root itself.
pub(crate) fn rel(path: &VPath) -> &str {
    if path.is_root() { "." } else { path.relative() }
}

/// Names starting with [`TEMP_PREFIX`] belong to uploads in progress; no user can name them.
fn check_reserved(path: &VPath) -> Result<()> {
    if path.components().any(|c| c.starts_with(TEMP_PREFIX)) {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// The directory `rel` (`.` for the root itself) beneath `root`, opened.
fn open_parent(root: &Dir, rel: &str) -> Result<Dir> {
    Ok(if rel == "." { root.try_clone()? } else { root.open_dir(rel)? })
}

/// The regular file `name` in `dir` (its size), `None` when the name holds something else
/// or nothing; with its identity, to tell two names of one file.
fn regular_file(dir: &Dir, name: &str) -> Result<Option<(u64, (u64, u64))>> {
    match dir.symlink_metadata(name) {
        Ok(meta) if meta.is_file() => Ok(Some((meta.len(), (meta.dev(), meta.ino())))),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The parent directory and final name of a path that must not be the root.
fn split_parent(path: &VPath) -> Result<(VPath, String)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name.to_owned())),
        _ => Err(Error::PermissionDenied),
    }
}

fn system_time(secs: i64, nanos: i64) -> Option<SystemTime> {
    let nanos = u32::try_from(nanos).ok()?;
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

pub(crate) fn convert_metadata(meta: &cap_std::fs::Metadata) -> Metadata {
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_file() {
        FileKind::File
    } else if file_type.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    };
    Metadata {
        kind,
        size: meta.len(),
        modified: system_time(meta.mtime(), meta.mtime_nsec()),
        accessed: system_time(meta.atime(), meta.atime_nsec()),
        mode: meta.mode() & 0o7777,
        nlink: meta.nlink(),
        uid: meta.uid(),
        gid: meta.gid(),
        id: Some(FileId { device: meta.dev(), inode: meta.ino() }),
    }
}

fn stat_in(dir: &Dir, rel: &str) -> Result<Metadata> {
    let meta = if rel == "." { dir.dir_metadata()? } else { dir.metadata(rel)? };
    Ok(convert_metadata(&meta))
}

/// Opens `rel` beneath `dir` without blocking on FIFOs and the like.
fn open_nonblocking(
    dir: &Dir,
    rel: &str,
    options: &mut OpenOptions,
) -> io::Result<cap_std::fs::File> {
    options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    dir.open_with(rel, options).map_err(|err| {
        // A FIFO nobody reads (or a device without its hardware) opened for writing: a
        // special file, refused like any other, not a storage failure.
        if err.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) {
            io::Error::from(io::ErrorKind::PermissionDenied)
        } else {
            err
        }
    })
}

#[async_trait]
impl Storage for LocalStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_write: true,
            append: true,
            atomic_rename: true,
            hard_links: true,
            set_mode: true,
            set_times: true,
        }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        check_reserved(path)?;
        if let Some(meta) = cached::metadata(&self.root, rel(path), true) {
            return Ok(meta);
        }
        let rel = rel(path).to_owned();
        self.with_root(move |root| stat_in(root, &rel)).await
    }

    async fn lstat(&self, path: &VPath) -> Result<Metadata> {
        check_reserved(path)?;
        if let Some(meta) = cached::metadata(&self.root, rel(path), false) {
            return Ok(meta);
        }
        let rel = rel(path).to_owned();
        self.with_root(move |root| {
            if rel == "." {
                return stat_in(root, &rel);
            }
            Ok(convert_metadata(&root.symlink_metadata(&rel)?))
        })
        .await
    }

    async fn list(&self, path: &VPath) -> Result<Box<dyn DirLister>> {
        check_reserved(path)?;
        let rel = rel(path).to_owned();
        let lister = self
            .with_root(move |root| {
                let dir = root.open_dir(&rel)?;
                list::LocalLister::new(dir)
            })
            .await?;
        Ok(Box::new(lister))
    }

    async fn open_read(&self, path: &VPath) -> Result<Box<dyn ReadFile>> {
        check_reserved(path)?;
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK;
        if let Some(reader) = cached::open(&self.root, rel(path), flags)
            .and_then(|file| read::LocalReader::new(file).ok())
        {
            return Ok(Box::new(reader));
        }
        let rel = rel(path).to_owned();
        let reader = self
            .with_root(move |root| {
                let file = open_nonblocking(root, &rel, OpenOptions::new().read(true))?;
                read::LocalReader::new(file.into_std())
            })
            .await?;
        Ok(Box::new(reader))
    }

    async fn open_write(&self, path: &VPath, mode: WriteMode) -> Result<Box<dyn WriteFile>> {
        check_reserved(path)?;
        let (parent, name) = split_parent(path)?;
        if let Some(writer) = self.deferred_writer(&parent, &name, mode) {
            return Ok(Box::new(writer));
        }
        let parent_rel = rel(&parent).to_owned();
        let fsync = self.options.fsync_on_commit;
        let writer = self
            .with_root(move |root| {
                let parent_dir = open_parent(root, &parent_rel)?;
                write::LocalWriter::open(parent_dir, name, mode, fsync)
            })
            .await?;
        Ok(Box::new(writer))
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<Option<u64>> {
        check_reserved(from)?;
        check_reserved(to)?;
        if from.is_root() || to.is_root() {
            return Err(Error::PermissionDenied);
        }
        if to.starts_with(from) && to != from {
            return Err(Error::InvalidPath(PathError::NotAName));
        }
        let (from_parent, from_name) = split_parent(from)?;
        let (to_parent, to_name) = split_parent(to)?;
        let (from_parent, to_parent) = (rel(&from_parent).to_owned(), rel(&to_parent).to_owned());
        self.with_root(move |root| {
            let from_dir = open_parent(root, &from_parent)?;
            let to_dir = open_parent(root, &to_parent)?;
            let _held = names::lock(&[names::stripe(&from_name), names::stripe(&to_name)]);
            let source = regular_file(&from_dir, &from_name)?;
            let replaced = regular_file(&to_dir, &to_name)?;
            from_dir.rename(&from_name, &to_dir, &to_name)?;
            // Two names of one file: the rename did nothing, and nothing was replaced.
            let same = matches!((source, replaced), (Some((_, a)), Some((_, b))) if a == b);
            Ok(replaced.filter(|_| !same).map(|(size, _)| size))
        })
        .await
    }

    async fn remove_file(&self, path: &VPath) -> Result<Option<u64>> {
        check_reserved(path)?;
        if path.is_root() {
            return Err(Error::IsADirectory);
        }
        let (parent, name) = split_parent(path)?;
        let parent = rel(&parent).to_owned();
        self.with_root(move |root| {
            let dir = open_parent(root, &parent)?;
            let _held = names::lock(&[names::stripe(&name)]);
            if dir.symlink_metadata(&name)?.is_dir() {
                return Err(Error::IsADirectory);
            }
            let removed = regular_file(&dir, &name)?.map(|(size, _)| size);
            dir.remove_file(&name)?;
            Ok(removed)
        })
        .await
    }

    async fn make_dir(&self, path: &VPath) -> Result<()> {
        check_reserved(path)?;
        if path.is_root() {
            return Err(Error::AlreadyExists);
        }
        let rel = rel(path).to_owned();
        self.with_root(move |root| Ok(root.create_dir(&rel)?)).await
    }

    async fn remove_dir(&self, path: &VPath) -> Result<()> {
        check_reserved(path)?;
        if path.is_root() {
            return Err(Error::PermissionDenied);
        }
        let rel = rel(path).to_owned();
        let max_age = self.options.stale_temporary_age;
        self.with_root(move |root| {
            if !root.symlink_metadata(&rel)?.is_dir() {
                return Err(Error::NotADirectory);
            }
            match root.remove_dir(&rel).map_err(Error::from) {
                // A folder that lists empty may still hold a crash's temporary files.
                Err(Error::DirectoryNotEmpty)
                    if temporaries::clear_stale(&root.open_dir_nofollow(&rel)?, max_age)? =>
                {
                    Ok(root.remove_dir(&rel)?)
                }
                other => other,
            }
        })
        .await
    }

    async fn set_times(
        &self,
        path: &VPath,
        modified: SystemTime,
        accessed: Option<SystemTime>,
    ) -> Result<()> {
        check_reserved(path)?;
        let rel = rel(path).to_owned();
        self.with_root(move |root| {
            let spec =
                |t: SystemTime| SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(t));
            Ok(root.set_times(&rel, accessed.map(spec), Some(spec(modified)))?)
        })
        .await
    }

    async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()> {
        check_reserved(path)?;
        let rel = rel(path).to_owned();
        // Set-id and sticky bits are never granted through a file-transfer protocol.
        let mode = mode & 0o777;
        self.with_root(move |root| {
            let perms = cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(mode));
            Ok(root.set_permissions(&rel, perms)?)
        })
        .await
    }

    async fn read_link(&self, path: &VPath) -> Result<String> {
        check_reserved(path)?;
        let rel = rel(path).to_owned();
        self.with_root(move |root| {
            let target = root.read_link(&rel)?;
            target
                .into_os_string()
                .into_string()
                .map_err(|_| Error::InvalidPath(PathError::NotUtf8))
        })
        .await
    }

    async fn space(&self, path: &VPath) -> Result<Space> {
        check_reserved(path)?;
        let rel = rel(path).to_owned();
        self.with_root(move |root| {
            let stats = if rel == "." {
                rustix::fs::fstatvfs(root)?
            } else {
                let file = open_nonblocking(root, &rel, OpenOptions::new().read(true))?;
                rustix::fs::fstatvfs(&file)?
            };
            Ok(Space {
                free_bytes: stats.f_bavail.saturating_mul(stats.f_frsize),
                total_bytes: stats.f_blocks.saturating_mul(stats.f_frsize),
                block_size: stats.f_frsize,
                free_files: stats.f_favail,
                total_files: stats.f_files,
                max_name_len: stats.f_namemax,
            })
        })
        .await
    }
}
