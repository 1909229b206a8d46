//! A folder's listing, streamed from the store's paginated listing (no cap on entries): the
//! store's pages are fetched as the front-end asks for batches.

use async_trait::async_trait;
use futures_util::StreamExt as _;
use opendal::Lister;

use super::errors::from_store;
use super::{file_metadata, folder_metadata};
use crate::error::Result;
use crate::metadata::DirEntry;
use crate::storage::DirLister;

/// The entries of one folder.
pub(super) struct ObjectLister {
    lister: Lister,
    /// The folder's own prefix: its marker object is not an entry of it.
    prefix: String,
    done: bool,
}

impl ObjectLister {
    pub(super) fn new(lister: Lister, prefix: String) -> Self {
        ObjectLister { lister, prefix, done: false }
    }
}

#[async_trait]
impl DirLister for ObjectLister {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        let mut batch = Vec::new();
        while !self.done && batch.len() < max {
            let Some(entry) = self.lister.next().await else {
                self.done = true;
                break;
            };
            let entry = entry.map_err(from_store)?;
            if entry.path() == self.prefix || entry.path() == self.prefix.trim_end_matches('/') {
                continue;
            }
            let name = entry.name().trim_end_matches('/');
            if name.is_empty() {
                continue;
            }
            let metadata = match entry.metadata().is_dir() {
                true => folder_metadata(),
                false => file_metadata(entry.metadata()),
            };
            batch.push(DirEntry { name: name.to_owned(), metadata });
        }
        Ok(batch)
    }
}
