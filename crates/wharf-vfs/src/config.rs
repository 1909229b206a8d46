//! The `storage` section of the configuration.

use std::path::PathBuf;

use serde::Deserialize;

use crate::local::LocalOptions;

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
}

fn default_root() -> PathBuf {
    PathBuf::from("share")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { root: default_root(), fsync_on_commit: false }
    }
}

impl StorageConfig {
    /// The backend options these settings ask for.
    pub fn local_options(&self) -> LocalOptions {
        LocalOptions { fsync_on_commit: self.fsync_on_commit }
    }
}
