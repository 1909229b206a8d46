//! The share: the one storage tree every user's folders are cut from. Its root is a local
//! directory; buckets of object storage can take the place of any of its folders (the whole
//! share, when placed at `/`). A folder a user's mount names is looked up here: under a
//! bucket's place, it is that bucket's prefix; anywhere else, a directory of the local root.

use std::sync::Arc;

use crate::error::Result;
use crate::local::LocalStorage;
use crate::object::ObjectStorage;
use crate::path::VPath;
use crate::storage::Storage;

/// The local root and the buckets placed in it.
#[derive(Debug, Clone)]
pub struct Share {
    local: LocalStorage,
    /// Buckets by the share path they take, longest first (the deepest place wins).
    buckets: Vec<(VPath, ObjectStorage)>,
}

impl From<LocalStorage> for Share {
    fn from(local: LocalStorage) -> Self {
        Share { local, buckets: Vec::new() }
    }
}

impl Share {
    /// A share whose folders at the given places are the given buckets (their uploads'
    /// memory reserved as each was configured, see [`ObjectStorage::with_upload_memory`]).
    pub fn new(local: LocalStorage, buckets: Vec<(VPath, ObjectStorage)>) -> Self {
        let mut buckets = buckets;
        buckets.sort_by_key(|(at, _)| std::cmp::Reverse(at.components().count()));
        Share { local, buckets }
    }

    /// The local root (for what only a local directory has, such as the sweep of temporary
    /// upload files).
    pub fn local(&self) -> &LocalStorage {
        &self.local
    }

    /// Whether any folder of the share is object storage.
    pub fn has_buckets(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// The folder `path` of the share as a storage of its own, created first when `create`
    /// (a local directory; a bucket's prefix needs nothing created).
    pub async fn subtree(&self, path: &VPath, create: bool) -> Result<Arc<dyn Storage>> {
        for (at, bucket) in &self.buckets {
            if let Some(inside) = path.strip_prefix(at) {
                return Ok(Arc::new(bucket.subtree(&inside)));
            }
        }
        Ok(Arc::new(self.local.subtree(path, create).await?))
    }
}
