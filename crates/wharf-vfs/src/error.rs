//! The one protocol-neutral error every layer returns and every front-end maps to its replies.

use std::io;

use crate::path::PathError;

/// What went wrong with a storage or session operation, independent of any protocol.
///
/// Front-ends translate [`ErrorKind`] into their own replies with one table each (FTP reply
/// codes, SFTP status codes, TFTP error codes); see `docs/ERRORS.md`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file or directory does not exist (or is not visible to this user).
    #[error("no such file or directory")]
    NotFound,
    /// The user's rules or the storage refuse the operation.
    #[error("permission denied")]
    PermissionDenied,
    /// The target already exists.
    #[error("file exists")]
    AlreadyExists,
    /// A directory was expected.
    #[error("not a directory")]
    NotADirectory,
    /// A file was expected but the path names a directory.
    #[error("is a directory")]
    IsADirectory,
    /// The directory still holds entries.
    #[error("directory not empty")]
    DirectoryNotEmpty,
    /// The user's quota would be exceeded.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The storage is full.
    #[error("no space left on storage")]
    NoSpace,
    /// The path was malformed or could not be resolved safely.
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    /// The backend or this folder cannot do what was asked (e.g. resume on a backend without
    /// random-offset writes, or a rename between two mounts).
    #[error("not supported here: {0}")]
    Unsupported(&'static str),
    /// A byte offset or length from the client lies beyond the largest file position
    /// (see [`crate::offset`]).
    #[error("offset {0} is beyond the largest file position")]
    InvalidOffset(u64),
    /// Any other failure of the storage.
    #[error("storage I/O error: {0}")]
    Io(#[source] io::Error),
}

/// The kind of an [`Error`], without its payload; what front-end mapping tables are keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::PermissionDenied`].
    PermissionDenied,
    /// See [`Error::AlreadyExists`].
    AlreadyExists,
    /// See [`Error::NotADirectory`].
    NotADirectory,
    /// See [`Error::IsADirectory`].
    IsADirectory,
    /// See [`Error::DirectoryNotEmpty`].
    DirectoryNotEmpty,
    /// See [`Error::QuotaExceeded`].
    QuotaExceeded,
    /// See [`Error::NoSpace`].
    NoSpace,
    /// See [`Error::InvalidPath`].
    InvalidPath,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::InvalidOffset`].
    InvalidOffset,
    /// See [`Error::Io`].
    Io,
}

impl ErrorKind {
    /// Every kind, for tests that check a mapping table is complete.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::AlreadyExists,
        ErrorKind::NotADirectory,
        ErrorKind::IsADirectory,
        ErrorKind::DirectoryNotEmpty,
        ErrorKind::QuotaExceeded,
        ErrorKind::NoSpace,
        ErrorKind::InvalidPath,
        ErrorKind::Unsupported,
        ErrorKind::InvalidOffset,
        ErrorKind::Io,
    ];

    /// A short stable name for logs and metrics (`not_found`, `permission_denied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::IsADirectory => "is_a_directory",
            ErrorKind::DirectoryNotEmpty => "directory_not_empty",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::InvalidPath => "invalid_path",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidOffset => "invalid_offset",
            ErrorKind::Io => "io",
        }
    }
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound => ErrorKind::NotFound,
            Error::PermissionDenied => ErrorKind::PermissionDenied,
            Error::AlreadyExists => ErrorKind::AlreadyExists,
            Error::NotADirectory => ErrorKind::NotADirectory,
            Error::IsADirectory => ErrorKind::IsADirectory,
            Error::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty,
            Error::QuotaExceeded => ErrorKind::QuotaExceeded,
            Error::NoSpace => ErrorKind::NoSpace,
            Error::InvalidPath(_) => ErrorKind::InvalidPath,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::InvalidOffset(_) => ErrorKind::InvalidOffset,
            Error::Io(_) => ErrorKind::Io,
        }
    }
}

impl Error {
    /// An equivalent error, for reporting one failure of a background write to every later
    /// call (an `io::Error` cannot be cloned, so its kind and message are copied).
    pub fn replicate(&self) -> Error {
        match self {
            Error::NotFound => Error::NotFound,
            Error::PermissionDenied => Error::PermissionDenied,
            Error::AlreadyExists => Error::AlreadyExists,
            Error::NotADirectory => Error::NotADirectory,
            Error::IsADirectory => Error::IsADirectory,
            Error::DirectoryNotEmpty => Error::DirectoryNotEmpty,
            Error::QuotaExceeded => Error::QuotaExceeded,
            Error::NoSpace => Error::NoSpace,
            Error::InvalidPath(err) => Error::InvalidPath(err.clone()),
            Error::Unsupported(what) => Error::Unsupported(what),
            Error::InvalidOffset(offset) => Error::InvalidOffset(*offset),
            Error::Io(err) => Error::Io(io::Error::new(err.kind(), err.to_string())),
        }
    }
}

impl From<io::Error> for Error {
    /// Classifies an operating-system error. Escapes refused by the sandbox arrive as
    /// `PermissionDenied` (`EXDEV` from `RESOLVE_BENEATH`, or cap-std's own check).
    fn from(err: io::Error) -> Self {
        use rustix::io::Errno;
        if let Some(errno) = err.raw_os_error().map(Errno::from_raw_os_error) {
            match errno {
                Errno::NOENT => return Error::NotFound,
                Errno::ACCESS | Errno::PERM | Errno::ROFS | Errno::XDEV => {
                    return Error::PermissionDenied;
                }
                Errno::EXIST => return Error::AlreadyExists,
                Errno::NOTDIR => return Error::NotADirectory,
                Errno::ISDIR => return Error::IsADirectory,
                Errno::NOTEMPTY => return Error::DirectoryNotEmpty,
                Errno::DQUOT => return Error::QuotaExceeded,
                Errno::NOSPC | Errno::FBIG => return Error::NoSpace,
                Errno::LOOP => return Error::InvalidPath(PathError::TooManySymlinks),
                Errno::NAMETOOLONG => return Error::InvalidPath(PathError::PathTooLong),
                _ => {}
            }
        }
        match err.kind() {
            io::ErrorKind::NotFound => Error::NotFound,
            io::ErrorKind::PermissionDenied => Error::PermissionDenied,
            io::ErrorKind::AlreadyExists => Error::AlreadyExists,
            io::ErrorKind::NotADirectory => Error::NotADirectory,
            io::ErrorKind::IsADirectory => Error::IsADirectory,
            io::ErrorKind::DirectoryNotEmpty => Error::DirectoryNotEmpty,
            io::ErrorKind::StorageFull => Error::NoSpace,
            io::ErrorKind::QuotaExceeded => Error::QuotaExceeded,
            _ => Error::Io(err),
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(errno: rustix::io::Errno) -> Self {
        Error::from(io::Error::from(errno))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classification() {
        let cases = [
            (rustix::io::Errno::NOENT, ErrorKind::NotFound),
            (rustix::io::Errno::ACCESS, ErrorKind::PermissionDenied),
            (rustix::io::Errno::XDEV, ErrorKind::PermissionDenied),
            (rustix::io::Errno::EXIST, ErrorKind::AlreadyExists),
            (rustix::io::Errno::NOTDIR, ErrorKind::NotADirectory),
            (rustix::io::Errno::ISDIR, ErrorKind::IsADirectory),
            (rustix::io::Errno::NOTEMPTY, ErrorKind::DirectoryNotEmpty),
            (rustix::io::Errno::DQUOT, ErrorKind::QuotaExceeded),
            (rustix::io::Errno::NOSPC, ErrorKind::NoSpace),
            (rustix::io::Errno::LOOP, ErrorKind::InvalidPath),
            (rustix::io::Errno::IO, ErrorKind::Io),
        ];
        for (errno, kind) in cases {
            let err = Error::from(io::Error::from_raw_os_error(errno.raw_os_error()));
            assert_eq!(err.kind(), kind, "{errno:?}");
        }
    }
}
