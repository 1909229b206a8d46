//! What the tree knows about a file or directory.

use std::time::SystemTime;

/// The type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link that was not followed.
    Symlink,
    /// Anything else (device, socket, FIFO). Listed but never opened.
    Other,
}

/// Identifies a file uniquely on its storage (MLSD's `unique` fact, SFTP handles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device or volume number.
    pub device: u64,
    /// Inode or object number.
    pub inode: u64,
}

/// Attributes of a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// File, directory, ...
    pub kind: FileKind,
    /// Size in bytes (0 for directories on backends without one).
    pub size: u64,
    /// Last modification time, when the backend keeps one.
    pub modified: Option<SystemTime>,
    /// Last access time, when the backend keeps one.
    pub accessed: Option<SystemTime>,
    /// Unix permission bits (`0o7777` mask); backends without them report `0o644`/`0o755`.
    pub mode: u32,
    /// Number of hard links (1 where unknown).
    pub nlink: u64,
    /// Owner user id as stored (0 where unknown).
    pub uid: u32,
    /// Owner group id as stored (0 where unknown).
    pub gid: u32,
    /// Unique identity on the storage, when the backend has one.
    pub id: Option<FileId>,
}

impl Metadata {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    /// Attributes of a regular file known only by its size and time (an object in a store, an
    /// upload not yet published): mode `0o644`, one link, no owner, no identity.
    pub fn plain_file(size: u64, modified: Option<SystemTime>) -> Self {
        Metadata {
            kind: FileKind::File,
            size,
            modified,
            accessed: None,
            mode: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            id: None,
        }
    }

    /// Attributes for a directory that exists only in the user's view (a parent of mount
    /// points), so front-ends can list and stat it like any other.
    pub fn virtual_dir() -> Self {
        Metadata {
            kind: FileKind::Dir,
            size: 0,
            modified: None,
            accessed: None,
            mode: 0o555,
            nlink: 2,
            uid: 0,
            gid: 0,
            id: None,
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (one path component).
    pub name: String,
    /// Its attributes (symbolic links inside the tree are followed).
    pub metadata: Metadata,
}

/// Free and total space of the storage holding a path (SFTP `statvfs`, FTP `AVBL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer can still use.
    pub free_bytes: u64,
    /// Size of the filesystem in bytes.
    pub total_bytes: u64,
    /// Block size the figures are counted in.
    pub block_size: u64,
    /// Free file slots (inodes) an unprivileged writer can still use.
    pub free_files: u64,
    /// Total file slots.
    pub total_files: u64,
    /// Longest name the filesystem accepts.
    pub max_name_len: u64,
}

/// What a directory tree holds: the figures a quota counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Total size of the regular files.
    pub bytes: u64,
    /// Number of regular files.
    pub files: u64,
}
