//! The S3-compatible object-storage backend.
//!
//! An object store is not a file system, and this backend says so through [`Capabilities`]
//! rather than pretend: objects are written whole (a multipart upload or one `PUT`, visible only
//! once complete), never in place; a rename is a server-side copy then a delete, not atomic;
//! there are no permission bits, settable times or links. What it guarantees:
//!
//! - **Atomic publish.** An upload streams into a multipart upload (at most
//!   [`PART_SIZE`] × [`PARTS_IN_FLIGHT`] bytes held) and the object appears only when it
//!   completes; an upload dropped without a commit aborts its multipart upload.
//! - **Create-only uploads are create-only at the store**: [`WriteMode::CreateNew`] completes
//!   with `If-None-Match: *`, so of two racing creators one gets [`Error::AlreadyExists`].
//! - **Ranged reads**: a read at an offset asks for that range only; a download streams.
//! - **Resume without resending**: an append, or a resume at the end of the stored object,
//!   publishes a new object that begins with a server-side copy of the old one
//!   (`UploadPartCopy`); until it completes the old object stays as it was.
//! - **Folders are prefixes**: `a/b` is a folder when any key starts with `a/b/`; an empty one
//!   is kept by a marker object `a/b/` (what `make_dir` writes).
//!
//! The S3 protocol (signing, multipart, listing) is spoken by OpenDAL
//! (docs/ARCHITECTURE.md, "Object storage": why it and not another client).

mod config;
mod errors;
mod keys;
mod list;
mod multipart;
mod read;
mod sweep;
mod write;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use opendal::Operator;

pub use config::{
    Addressing, ObjectStoreConfig, ObjectStoreCredentials, REQUEST_ATTEMPTS, REQUEST_TIMEOUT,
    Secret,
};
pub use sweep::{MultipartSweeper, SweepReport, UploadsInProgress};
pub use write::{COPY_MIN, REORDER_WINDOW};

use crate::error::{Error, Result};
use crate::metadata::{FileKind, Metadata, Space};
use crate::path::VPath;
use crate::storage::{
    Capabilities, DirLister, ReadFile, Storage, UploadMemory, WriteFile, WriteMode,
};
use errors::from_store;

/// Bytes of one part of a multipart upload (S3 requires 5 MiB at least, but for the last).
pub const PART_SIZE: usize = 6 * 1024 * 1024;

/// Parts of one upload being sent at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// The most one upload holds in memory: the parts in flight, a full part OpenDAL keeps back
/// until the next one is full (so that the last part may be short), the part being filled,
/// and the reordering window: 28 MiB. Reserved from the byte budgets ([`UploadMemory`]) when
/// the upload opens.
pub const UPLOAD_MEMORY: usize = PART_SIZE * (PARTS_IN_FLIGHT + 2) + write::REORDER_WINDOW as usize;

/// An S3-compatible bucket (or a prefix of one) served as a tree.
#[derive(Clone)]
pub struct ObjectStorage {
    operator: Operator,
    /// Prepended to every key: empty for the configured prefix itself, `folder/` for a
    /// [`ObjectStorage::subtree`].
    base: String,
    /// Where uploads take their buffers' memory from; unbounded when `None` (tests).
    memory: Option<Arc<dyn UploadMemory>>,
    /// The keys this process is writing, which the sweep of multipart uploads spares.
    in_progress: UploadsInProgress,
    /// Where it points, for logs and `Debug` (never the credentials).
    description: String,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage").field("at", &self.description).finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// A backend for the bucket and prefix `config` names, with `credentials`. Makes no
    /// request: a store that cannot be reached is reported by the first operation.
    pub fn open(config: &ObjectStoreConfig, credentials: &ObjectStoreCredentials) -> Result<Self> {
        // The process-wide HTTP transport (reqwest with rustls); idempotent.
        opendal::install_default();
        let operator = config.operator(credentials)?;
        Ok(ObjectStorage {
            operator,
            base: String::new(),
            memory: None,
            in_progress: UploadsInProgress::default(),
            description: config.describe(),
        })
    }

    /// This backend with its uploads' memory reserved from `memory` ([`UPLOAD_MEMORY`] each):
    /// an upload that finds no room is refused when it opens.
    pub fn with_upload_memory(mut self, memory: Arc<dyn UploadMemory>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// The sweeper of the multipart uploads left open under this bucket's prefix (`config`
    /// and `credentials` as this backend was opened with), sparing this backend's uploads in
    /// progress and any upload that gained a part within `max_age`.
    pub fn multipart_sweeper(
        &self,
        config: &ObjectStoreConfig,
        credentials: &ObjectStoreCredentials,
        max_age: std::time::Duration,
    ) -> Result<MultipartSweeper> {
        MultipartSweeper::new(config, credentials, self.in_progress.clone(), max_age)
    }

    /// The folder `path` of this tree as a tree of its own: the same store and connection
    /// pool, its keys under a longer prefix. Nothing is created: the root of a prefix always
    /// exists, and lists empty until something is put in it.
    pub fn subtree(&self, path: &VPath) -> ObjectStorage {
        if path.is_root() {
            return self.clone();
        }
        ObjectStorage {
            operator: self.operator.clone(),
            memory: self.memory.clone(),
            in_progress: self.in_progress.clone(),
            base: format!("{}{}/", self.base, path.relative()),
            description: format!("{}/{}", self.description, path.relative()),
        }
    }

    /// The key of the file `path`.
    fn file_key(&self, path: &VPath) -> String {
        keys::file_key(&self.base, path)
    }

    /// The prefix of the folder `path`.
    fn dir_key(&self, path: &VPath) -> String {
        keys::dir_key(&self.base, path)
    }

    /// Whether a key starts with the folder prefix of `path` (the folder exists).
    async fn folder_exists(&self, path: &VPath) -> Result<bool> {
        if path.is_root() {
            return Ok(true);
        }
        let mut lister =
            self.operator.lister_with(&self.dir_key(path)).limit(1).await.map_err(from_store)?;
        match lister.next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(err)) => match from_store(err) {
                Error::NotFound => Ok(false),
                other => Err(other),
            },
            None => Ok(false),
        }
    }

    /// The object `path` as a file, `None` when there is none.
    async fn file_metadata(&self, path: &VPath) -> Result<Option<Metadata>> {
        if path.is_root() {
            return Ok(None);
        }
        match self.operator.stat(&self.file_key(path)).await {
            Ok(meta) if meta.is_file() => Ok(Some(file_metadata(&meta))),
            Ok(_) => Ok(None),
            Err(err) => match from_store(err) {
                Error::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The folder containing `path` must exist (as on a file system, nothing is created in a
    /// folder that is not there).
    async fn require_parent(&self, path: &VPath) -> Result<()> {
        match path.parent() {
            Some(parent) if !self.folder_exists(&parent).await? => Err(Error::NotFound),
            _ => Ok(()),
        }
    }

    /// A file may be stored as `path`: its folder exists and `path` is not a folder. Both
    /// questions are asked at once.
    async fn require_place_for_file(&self, path: &VPath) -> Result<()> {
        let name_is_folder = async {
            match self.folder_exists(path).await? {
                true => Err(Error::IsADirectory),
                false => Ok(()),
            }
        };
        tokio::try_join!(self.require_parent(path), name_is_folder).map(drop)
    }
}

/// The largest object one `CopyObject` may copy (S3's limit); larger ones are copied part by
/// part into a multipart upload.
const SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Copies the object `from` (`size` bytes) to `to` inside the store: one `CopyObject` up to
/// `single_limit` bytes, else a multipart upload of parts copied in the store (`UploadPartCopy`,
/// at most `single_limit` bytes each), so no byte passes through Wharf either way.
async fn copy_object(
    operator: &Operator,
    from: &str,
    to: &str,
    size: u64,
    single_limit: u64,
) -> Result<()> {
    if size <= single_limit {
        return operator.copy(from, to).await.map(drop).map_err(from_store);
    }
    let mut writer = operator.writer(to).await.map_err(from_store)?;
    let mut start = 0;
    while start < size {
        let end = (start + single_limit).min(size);
        if let Err(err) = writer.copy_from(from, start..end).await {
            let _ = writer.abort().await;
            return Err(from_store(err));
        }
        start = end;
    }
    if let Err(err) = writer.close().await {
        let _ = writer.abort().await;
        return Err(from_store(err));
    }
    Ok(())
}

/// Attributes of an object.
fn file_metadata(meta: &opendal::Metadata) -> Metadata {
    Metadata::plain_file(meta.content_length(), meta.last_modified().map(SystemTime::from))
}

/// Attributes of a folder (a prefix has no size, time or owner).
fn folder_metadata() -> Metadata {
    Metadata {
        kind: FileKind::Dir,
        size: 0,
        modified: None,
        accessed: None,
        mode: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        id: None,
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_write: false,
            // By a server-side copy of the stored object into the new one (write.rs).
            append: true,
            atomic_rename: false,
            hard_links: false,
            set_mode: false,
            set_times: false,
        }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        if let Some(meta) = self.file_metadata(path).await? {
            return Ok(meta);
        }
        if self.folder_exists(path).await? {
            return Ok(folder_metadata());
        }
        Err(Error::NotFound)
    }

    async fn lstat(&self, path: &VPath) -> Result<Metadata> {
        // No links in an object store.
        self.stat(path).await
    }

    async fn list(&self, path: &VPath) -> Result<Box<dyn DirLister>> {
        if self.file_metadata(path).await?.is_some() {
            return Err(Error::NotADirectory);
        }
        if !self.folder_exists(path).await? {
            return Err(Error::NotFound);
        }
        let lister = self.operator.lister(&self.dir_key(path)).await.map_err(from_store)?;
        Ok(Box::new(list::ObjectLister::new(lister, self.dir_key(path))))
    }

    async fn open_read(&self, path: &VPath) -> Result<Box<dyn ReadFile>> {
        let opened = if path.is_root() {
            None
        } else {
            let key = self.file_key(path);
            read::ObjectReader::open(self.operator.clone(), key, file_metadata).await?
        };
        match opened {
            Some(reader) => Ok(Box::new(reader)),
            None if self.folder_exists(path).await? => Err(Error::IsADirectory),
            None => Err(Error::NotFound),
        }
    }

    async fn open_write(&self, path: &VPath, mode: WriteMode) -> Result<Box<dyn WriteFile>> {
        if path.is_root() {
            return Err(Error::IsADirectory);
        }
        // A resume (or an append) continues the stored object: the new object starts with
        // a server-side copy of it, so nothing stored is sent again (write.rs).
        let start = match mode {
            WriteMode::Replace | WriteMode::CreateNew => write::Start::Fresh { creates: false },
            WriteMode::Append | WriteMode::At(_) => {
                let stored = self.file_metadata(path).await?.map(|meta| meta.size);
                match (mode, stored) {
                    (_, None | Some(0)) if matches!(mode, WriteMode::Append | WriteMode::At(0)) => {
                        write::Start::Fresh { creates: stored.is_none() }
                    }
                    (WriteMode::Append, Some(size)) => write::Start::Continue(size),
                    (WriteMode::At(offset), Some(size)) if offset == size => {
                        write::Start::Continue(size)
                    }
                    // Opened in place at 0 (SFTP without truncate or append, as OpenSSH's
                    // `reput` opens): the first write says whether it resumes.
                    (WriteMode::At(0), Some(size)) => write::Start::Decide(size),
                    _ => {
                        return Err(Error::Unsupported(
                            "object storage resumes an upload only at the end of what is stored",
                        ));
                    }
                }
            }
        };
        // Whether the upload has a place (its folder exists, its name is not a folder) is
        // asked now but awaited only before the first part is sent or at the commit: for a
        // small file the answers arrive while the client sends, and the commit is one `PUT`.
        let place_check = {
            let storage = self.clone();
            let path = path.clone();
            tokio::spawn(async move { storage.require_place_for_file(&path).await })
        };
        let memory = match &self.memory {
            Some(budget) => Some(budget.try_reserve(UPLOAD_MEMORY).ok_or_else(|| {
                Error::Io(std::io::Error::other(
                    "the server's memory budget has no room for another upload to object \
                     storage; try again later",
                ))
            })?),
            None => None,
        };
        let writer =
            write::ObjectWriter::open(self.clone(), path.clone(), mode, memory, start, place_check)
                .await?;
        Ok(Box::new(writer))
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<Option<u64>> {
        if from.is_root() || to.is_root() {
            return Err(Error::PermissionDenied);
        }
        let Some(source) = self.file_metadata(from).await? else {
            return Err(match self.folder_exists(from).await? {
                true => Error::Unsupported("folders cannot be renamed on object storage"),
                false => Error::NotFound,
            });
        };
        if from == to {
            return Ok(None);
        }
        if self.folder_exists(to).await? {
            return Err(Error::IsADirectory);
        }
        self.require_parent(to).await?;
        let replaced = self.file_metadata(to).await?.map(|meta| meta.size);
        // A copy then a delete: not atomic (between the two both names hold the file).
        let (from_key, to_key) = (self.file_key(from), self.file_key(to));
        copy_object(&self.operator, &from_key, &to_key, source.size, SINGLE_COPY_LIMIT).await?;
        self.operator.delete(&from_key).await.map_err(from_store)?;
        Ok(replaced)
    }

    async fn remove_file(&self, path: &VPath) -> Result<Option<u64>> {
        match self.file_metadata(path).await? {
            Some(meta) => {
                self.operator.delete(&self.file_key(path)).await.map_err(from_store)?;
                Ok(Some(meta.size))
            }
            None if path.is_root() || self.folder_exists(path).await? => Err(Error::IsADirectory),
            None => Err(Error::NotFound),
        }
    }

    async fn make_dir(&self, path: &VPath) -> Result<()> {
        if path.is_root() || self.folder_exists(path).await? {
            return Err(Error::AlreadyExists);
        }
        if self.file_metadata(path).await?.is_some() {
            return Err(Error::AlreadyExists);
        }
        self.require_parent(path).await?;
        self.operator.create_dir(&self.dir_key(path)).await.map_err(from_store)
    }

    async fn remove_dir(&self, path: &VPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::PermissionDenied);
        }
        let prefix = self.dir_key(path);
        let mut lister = self.operator.lister(&prefix).await.map_err(from_store)?;
        let mut marker = false;
        // The marker and one more entry are all it takes to know.
        for _ in 0..2 {
            match lister.next().await {
                Some(Ok(entry)) if entry.path() == prefix => marker = true,
                Some(Ok(_)) => return Err(Error::DirectoryNotEmpty),
                Some(Err(err)) => return Err(from_store(err)),
                None => break,
            }
        }
        if !marker {
            return Err(match self.file_metadata(path).await? {
                Some(_) => Error::NotADirectory,
                None => Error::NotFound,
            });
        }
        self.operator.delete(&prefix).await.map_err(from_store)
    }

    async fn set_times(
        &self,
        _path: &VPath,
        _modified: SystemTime,
        _accessed: Option<SystemTime>,
    ) -> Result<()> {
        Err(Error::Unsupported("object storage keeps no settable times"))
    }

    async fn set_mode(&self, _path: &VPath, _mode: u32) -> Result<()> {
        Err(Error::Unsupported("object storage keeps no permission bits"))
    }

    async fn read_link(&self, _path: &VPath) -> Result<String> {
        Err(Error::Unsupported("object storage has no symbolic links"))
    }

    async fn space(&self, _path: &VPath) -> Result<Space> {
        Err(Error::Unsupported("object storage reports no free space"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy of an object above the single-copy limit, with a limit lowered to 6 MiB so
    /// that a 15 MiB object takes three copied parts (the real limit is 5 GiB).
    #[tokio::test]
    async fn a_copy_above_the_single_copy_limit_goes_part_by_part() {
        let Some(server) = wharf_testkit::Seaweed::start() else { return };
        let config = ObjectStoreConfig {
            endpoint: server.endpoint.clone(),
            region: server.region.clone(),
            bucket: server.bucket.clone(),
            prefix: String::new(),
            addressing: Addressing::Path,
            credentials_file: None,
        };
        let credentials = ObjectStoreCredentials {
            access_key_id: server.access_key.clone(),
            secret_access_key: Secret::new(server.secret_key.clone()),
        };
        let storage = ObjectStorage::open(&config, &credentials).expect("storage");
        let data: Vec<u8> = (0..15 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        storage.operator.write("big.bin", data.clone()).await.expect("put");
        let limit = 6 * 1024 * 1024;
        copy_object(&storage.operator, "big.bin", "copy.bin", data.len() as u64, limit)
            .await
            .expect("copy");
        let copied = storage.operator.read("copy.bin").await.expect("read").to_vec();
        assert!(copied == data, "the copy is byte-exact");
    }
}
