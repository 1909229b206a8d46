//! The `storage` section of the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::local::{DEFAULT_STALE_TEMPORARY_AGE, LocalOptions};
use crate::object::ObjectStoreConfig;

/// Where the shared storage tree lives and how uploads are made durable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The directory served as the tree's root. Relative paths are taken from the data
    /// directory. Created at start if missing.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Flush every upload to stable storage before publishing it: survives power loss, costs
    /// throughput.
    #[serde(default)]
    pub fsync_on_commit: bool,
    /// A temporary upload file (`.wharf-tmp-…`) that no upload of this process is writing and
    /// that nothing wrote to for this long is a crash's leftover: the periodic sweep and
    /// folder removal delete it. It must be longer than any transfer of another Wharf process
    /// on the same share may stay silent (the binary refuses values below its own timeouts).
    #[serde(default = "default_stale_temporary_age", with = "humantime_serde")]
    pub stale_temporary_age: Duration,
    /// Buckets of S3-compatible object storage that take the place of folders of the share,
    /// by share path (`/` for the whole share): `{ "/archive": { endpoint, bucket, ... } }`.
    /// Users' homes and mounts under such a path are prefixes of the bucket.
    #[serde(default)]
    pub buckets: BTreeMap<String, ObjectStoreConfig>,
}

fn default_stale_temporary_age() -> Duration {
    DEFAULT_STALE_TEMPORARY_AGE
}

fn default_root() -> PathBuf {
    PathBuf::from("share")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            root: default_root(),
            fsync_on_commit: false,
            stale_temporary_age: default_stale_temporary_age(),
            buckets: BTreeMap::new(),
        }
    }
}

impl StorageConfig {
    /// The backend options these settings ask for.
    pub fn local_options(&self) -> LocalOptions {
        LocalOptions {
            fsync_on_commit: self.fsync_on_commit,
            stale_temporary_age: self.stale_temporary_age,
        }
    }
}
