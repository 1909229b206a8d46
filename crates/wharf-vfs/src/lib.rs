//! Wharf's storage tree.
//!
//! This crate owns where bytes live and nothing about who asks for them: the normalized
//! virtual path ([`VPath`]), the [`Storage`] trait every backend implements, the sandboxed
//! local-disk backend ([`LocalStorage`]), the S3-compatible object-storage backend
//! ([`ObjectStorage`]), mounts ([`Tree`]), atomic uploads and resumable
//! writes. Users, permissions and protocols live in the layers above.

pub mod config;
pub mod error;
pub mod local;
pub mod ls;
pub mod metadata;
pub mod mount;
pub mod object;
pub mod offset;
pub mod path;
pub mod share;
pub mod storage;

pub use config::StorageConfig;
pub use error::{Error, ErrorKind, Result};
pub use local::{
    LocalOptions, LocalStorage, SWEEP_ENTRIES_PER_RUN, SWEEP_INTERVAL, SWEEP_MAX_DEPTH,
    SWEEP_PAUSE, SweepRun, TemporarySweeper,
};
pub use metadata::{DirEntry, DiskUsage, FileId, FileKind, Metadata, Space};
pub use mount::{Mount, MountError, Tree};
pub use object::{Addressing, ObjectStorage, ObjectStoreConfig, ObjectStoreCredentials};
pub use path::{PathError, VPath};
pub use share::Share;
pub use storage::{
    Capabilities, CheckAnswer, Committed, DirLister, PublishCheck, ReadFile, ReadStream,
    ReadStreamSender, Storage, TRANSFER_CHUNK, UploadMemory, WriteFile, WriteMode,
};
