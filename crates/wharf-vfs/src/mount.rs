//! Mounts: a user's view of the tree as a table of virtual folders.
//!
//! A [`Tree`] maps virtual prefixes onto storages, e.g. `/` onto `share/partners/acme` and
//! `/firmware` onto `share/firmware`; the longest matching prefix wins. Directories that exist
//! only because a mount lies below them (`/` when only `/firmware` is mounted) are virtual:
//! they can be listed and entered, not written. A `Tree` is itself a [`Storage`], so the layers
//! above see one interface whatever the mount table looks like.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::metadata::{DirEntry, Metadata, Space};
use crate::path::VPath;
use crate::storage::{Capabilities, DirLister, ReadFile, Storage, WriteFile, WriteMode};

/// One virtual folder: everything at and below `at` lives in `storage`.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Where the folder appears in the user's view.
    pub at: VPath,
    /// The storage holding it, rooted at the folder.
    pub storage: Arc<dyn Storage>,
}

/// Why a mount table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// Two mounts claim the same virtual path.
    #[error("two mounts at {0}")]
    Duplicate(VPath),
    /// The table has no mounts at all.
    #[error("no mounts: the user would see nothing")]
    Empty,
}

/// Where a virtual path lives.
enum Place<'a> {
    /// In a mount's storage, at the given path below the mount.
    Backed { mount: &'a Mount, inner: VPath },
    /// In a directory that exists only as a parent of mount points.
    Virtual,
}

/// A user's view: a mount table.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Sorted deepest first, so the first match is the longest prefix.
    mounts: Vec<Mount>,
}

impl Tree {
    /// Builds a view from its mounts.
    pub fn new(mut mounts: Vec<Mount>) -> Result<Tree, MountError> {
        if mounts.is_empty() {
            return Err(MountError::Empty);
        }
        mounts.sort_by(|a, b| b.at.depth().cmp(&a.at.depth()).then_with(|| a.at.cmp(&b.at)));
        for pair in mounts.windows(2) {
            if pair[0].at == pair[1].at {
                return Err(MountError::Duplicate(pair[0].at.clone()));
            }
        }
        Ok(Tree { mounts })
    }

    /// A view of a single storage at `/`.
    pub fn single(storage: Arc<dyn Storage>) -> Tree {
        Tree { mounts: vec![Mount { at: VPath::root(), storage }] }
    }

    /// The mounts, deepest first.
    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The virtual path of the mount holding `path` (`/` for the home), `None` for a path
    /// that lives in no mount (a virtual directory or nothing).
    pub fn mount_point_of(&self, path: &VPath) -> Option<&VPath> {
        self.mounts.iter().find(|m| path.starts_with(&m.at)).map(|m| &m.at)
    }

    /// What the storage holding `path` can do (the mount it is in; a folder that exists only
    /// as a parent of mount points can do nothing). A user's tree may mix backends, so a
    /// decision about one path asks this, not [`Storage::capabilities`] of the whole tree.
    pub fn capabilities_at(&self, path: &VPath) -> Capabilities {
        match self.place(path) {
            Ok(Place::Backed { mount, .. }) => mount.storage.capabilities(),
            Ok(Place::Virtual) | Err(_) => Capabilities {
                random_write: false,
                append: false,
                atomic_rename: false,
                hard_links: false,
                set_mode: false,
                set_times: false,
            },
        }
    }

    /// The storage mounted at `/` (the user's home), if any.
    pub fn home(&self) -> Option<&Arc<dyn Storage>> {
        self.mounts.iter().find(|m| m.at.is_root()).map(|m| &m.storage)
    }

    fn place(&self, path: &VPath) -> Result<Place<'_>> {
        for mount in &self.mounts {
            if let Some(inner) = path.strip_prefix(&mount.at) {
                return Ok(Place::Backed { mount, inner });
            }
        }
        if self.mounts.iter().any(|m| m.at.starts_with(path)) {
            Ok(Place::Virtual)
        } else {
            Err(Error::NotFound)
        }
    }

    /// Whether `path` is the top of a mount other than `/` (it cannot be renamed or removed).
    fn is_mount_point(&self, path: &VPath) -> bool {
        !path.is_root() && self.mounts.iter().any(|m| &m.at == path)
    }

    /// Whether a mount lies strictly below `path` (so `path` exists in the view even when its
    /// storage has no such directory).
    fn has_mounts_below(&self, path: &VPath) -> bool {
        self.mounts.iter().any(|m| m.at.starts_with(path) && &m.at != path)
    }

    /// Names of entries of `dir` that come from the mount table: mount points directly inside
    /// it (`Some(mount)`), and directories leading to deeper mount points (`None`).
    fn mount_children(&self, dir: &VPath) -> Vec<(String, Option<&Mount>)> {
        let mut seen = BTreeSet::new();
        let mut children = Vec::new();
        // Shallow mounts first, so a direct mount point wins over a deeper one's ancestor.
        for mount in self.mounts.iter().rev() {
            let Some(below) = mount.at.strip_prefix(dir) else { continue };
            let Some(name) = below.components().next() else { continue };
            if seen.insert(name.to_owned()) {
                let direct = below.depth() == 1;
                children.push((name.to_owned(), direct.then_some(mount)));
            }
        }
        children
    }

    /// The backed place of `path`, refusing virtual directories with `virtual_err`.
    fn backed(&self, path: &VPath, virtual_err: Error) -> Result<(&Mount, VPath)> {
        match self.place(path)? {
            Place::Backed { mount, inner } => Ok((mount, inner)),
            Place::Virtual => Err(virtual_err),
        }
    }

    /// Refuses to modify a mount point or a virtual directory itself.
    fn modifiable(&self, path: &VPath) -> Result<(&Mount, VPath)> {
        if self.is_mount_point(path) {
            return Err(Error::PermissionDenied);
        }
        self.backed(path, Error::PermissionDenied)
    }
}

/// Lists a backed directory and adds the mount table's entries for it.
struct OverlayLister {
    inner: Option<Box<dyn DirLister>>,
    /// Mount points directly in this directory: they hide a storage entry of the same name.
    mount_points: Vec<(String, Arc<dyn Storage>)>,
    /// Directories leading to deeper mounts, shown as virtual unless storage has them.
    passages: BTreeSet<String>,
}

impl OverlayLister {
    fn new(inner: Option<Box<dyn DirLister>>, tree: &Tree, dir: &VPath) -> Self {
        let mut mount_points = Vec::new();
        let mut passages = BTreeSet::new();
        for (name, mount) in tree.mount_children(dir) {
            match mount {
                Some(mount) => mount_points.push((name, mount.storage.clone())),
                None => {
                    passages.insert(name);
                }
            }
        }
        OverlayLister { inner, mount_points, passages }
    }
}

#[async_trait]
impl DirLister for OverlayLister {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        while let Some(inner) = self.inner.as_mut() {
            let mut batch = inner.next_batch(max).await?;
            if batch.is_empty() {
                self.inner = None;
                break;
            }
            // An empty batch would end the listing, so one emptied by the filter is skipped.
            batch.retain(|entry| !self.mount_points.iter().any(|(name, _)| name == &entry.name));
            for entry in &batch {
                self.passages.remove(&entry.name);
            }
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
        let mut extra = Vec::new();
        while extra.len() < max.max(1) {
            if let Some((name, storage)) = self.mount_points.pop() {
                let metadata = match storage.stat(&VPath::root()).await {
                    Ok(meta) => meta,
                    Err(_) => Metadata::virtual_dir(),
                };
                extra.push(DirEntry { name, metadata });
            } else if let Some(name) = self.passages.pop_first() {
                extra.push(DirEntry { name, metadata: Metadata::virtual_dir() });
            } else {
                break;
            }
        }
        Ok(extra)
    }
}

#[async_trait]
impl Storage for Tree {
    /// What every mount can do.
    fn capabilities(&self) -> Capabilities {
        self.mounts.iter().map(|m| m.storage.capabilities()).fold(
            Capabilities {
                random_write: true,
                append: true,
                atomic_rename: true,
                hard_links: true,
                set_mode: true,
                set_times: true,
            },
            |a, b| Capabilities {
                random_write: a.random_write && b.random_write,
                append: a.append && b.append,
                atomic_rename: a.atomic_rename && b.atomic_rename,
                hard_links: a.hard_links && b.hard_links,
                set_mode: a.set_mode && b.set_mode,
                set_times: a.set_times && b.set_times,
            },
        )
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        match self.place(path)? {
            Place::Backed { mount, inner } => match mount.storage.stat(&inner).await {
                Err(Error::NotFound) if self.has_mounts_below(path) => Ok(Metadata::virtual_dir()),
                other => other,
            },
            Place::Virtual => Ok(Metadata::virtual_dir()),
        }
    }

    async fn lstat(&self, path: &VPath) -> Result<Metadata> {
        match self.place(path)? {
            Place::Backed { mount, inner } => match mount.storage.lstat(&inner).await {
                Err(Error::NotFound) if self.has_mounts_below(path) => Ok(Metadata::virtual_dir()),
                other => other,
            },
            Place::Virtual => Ok(Metadata::virtual_dir()),
        }
    }

    async fn list(&self, path: &VPath) -> Result<Box<dyn DirLister>> {
        let inner = match self.place(path)? {
            Place::Backed { mount, inner } => match mount.storage.list(&inner).await {
                Ok(lister) => Some(lister),
                Err(Error::NotFound) if self.has_mounts_below(path) => None,
                Err(err) => return Err(err),
            },
            Place::Virtual => None,
        };
        Ok(Box::new(OverlayLister::new(inner, self, path)))
    }

    async fn open_read(&self, path: &VPath) -> Result<Box<dyn ReadFile>> {
        let (mount, inner) = self.backed(path, Error::IsADirectory)?;
        mount.storage.open_read(&inner).await
    }

    async fn open_write(&self, path: &VPath, mode: WriteMode) -> Result<Box<dyn WriteFile>> {
        if self.is_mount_point(path) || self.has_mounts_below(path) {
            return Err(Error::IsADirectory);
        }
        let (mount, inner) = self.backed(path, Error::IsADirectory)?;
        mount.storage.open_write(&inner, mode).await
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<Option<u64>> {
        if self.has_mounts_below(from) || self.has_mounts_below(to) || self.is_mount_point(to) {
            return Err(Error::PermissionDenied);
        }
        let (from_mount, from_inner) = self.modifiable(from)?;
        let (to_mount, to_inner) = self.modifiable(to)?;
        if from_mount.at != to_mount.at {
            return Err(Error::Unsupported(
                "rename between two folders mounted from different places",
            ));
        }
        from_mount.storage.rename(&from_inner, &to_inner).await
    }

    async fn remove_file(&self, path: &VPath) -> Result<Option<u64>> {
        if self.is_mount_point(path) || self.has_mounts_below(path) {
            return Err(Error::IsADirectory);
        }
        let (mount, inner) = self.modifiable(path)?;
        mount.storage.remove_file(&inner).await
    }

    async fn make_dir(&self, path: &VPath) -> Result<()> {
        if self.is_mount_point(path) || self.has_mounts_below(path) {
            return Err(Error::AlreadyExists);
        }
        let (mount, inner) = self.backed(path, Error::AlreadyExists)?;
        mount.storage.make_dir(&inner).await
    }

    async fn remove_dir(&self, path: &VPath) -> Result<()> {
        if self.has_mounts_below(path) {
            return Err(Error::PermissionDenied);
        }
        let (mount, inner) = self.modifiable(path)?;
        mount.storage.remove_dir(&inner).await
    }

    async fn set_times(
        &self,
        path: &VPath,
        modified: SystemTime,
        accessed: Option<SystemTime>,
    ) -> Result<()> {
        let (mount, inner) = self.backed(path, Error::PermissionDenied)?;
        mount.storage.set_times(&inner, modified, accessed).await
    }

    async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()> {
        let (mount, inner) = self.backed(path, Error::PermissionDenied)?;
        mount.storage.set_mode(&inner, mode).await
    }

    async fn read_link(&self, path: &VPath) -> Result<String> {
        let (mount, inner) = self.backed(path, Error::InvalidPath(crate::PathError::NotAName))?;
        mount.storage.read_link(&inner).await
    }

    async fn space(&self, path: &VPath) -> Result<Space> {
        match self.place(path)? {
            Place::Backed { mount, inner } => mount.storage.space(&inner).await,
            // A virtual directory holds nothing; report the first mount's filesystem.
            Place::Virtual => match self.mounts.last() {
                Some(mount) => mount.storage.space(&VPath::root()).await,
                None => Err(Error::NotFound),
            },
        }
    }
}
