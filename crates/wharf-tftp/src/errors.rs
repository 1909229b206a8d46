//! TFTP error codes (RFC 1350, 2347) and the one table mapping the shared layer's errors onto
//! them. `docs/protocols/tftp.md` shows the same table.

use wharf_vfs::{Error, ErrorKind};

/// The error codes of an ERROR packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see the message.
    NotDefined = 0,
    /// File not found.
    FileNotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Disk full or allocation exceeded.
    DiskFull = 3,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
    /// Unknown transfer ID.
    UnknownTransferId = 5,
    /// File already exists.
    FileExists = 6,
    /// No such user.
    NoSuchUser = 7,
    /// The transfer ends because of option negotiation (RFC 2347).
    OptionRefused = 8,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn wire(self) -> u16 {
        self as u16
    }
}

/// The code and message a client is sent for an error of the shared layer. Messages say what
/// went wrong without revealing anything of the host (no host paths, no OS error text).
pub fn for_kind(kind: ErrorKind) -> (ErrorCode, &'static str) {
    match kind {
        ErrorKind::NotFound => (ErrorCode::FileNotFound, "file not found"),
        ErrorKind::PermissionDenied => (ErrorCode::AccessViolation, "access violation"),
        ErrorKind::AlreadyExists => (ErrorCode::FileExists, "file already exists"),
        ErrorKind::NotADirectory => {
            (ErrorCode::FileNotFound, "file not found (a parent is not a directory)")
        }
        ErrorKind::IsADirectory => (ErrorCode::AccessViolation, "is a directory"),
        ErrorKind::DirectoryNotEmpty => (ErrorCode::NotDefined, "directory not empty"),
        ErrorKind::QuotaExceeded => (ErrorCode::DiskFull, "allocation exceeded"),
        ErrorKind::NoSpace => (ErrorCode::DiskFull, "disk full"),
        ErrorKind::InvalidPath => (ErrorCode::AccessViolation, "invalid file name"),
        ErrorKind::Unsupported => (ErrorCode::NotDefined, "not supported on this folder"),
        ErrorKind::InvalidOffset => (ErrorCode::IllegalOperation, "beyond the largest file size"),
        ErrorKind::Io => (ErrorCode::NotDefined, "storage error"),
    }
}

/// The code and message for `err`.
pub fn for_error(err: &Error) -> (ErrorCode, &'static str) {
    for_kind(err.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_a_defined_code_with_a_message() {
        for kind in ErrorKind::ALL {
            let (code, message) = for_kind(kind);
            assert!(code.wire() <= 8, "{kind:?}");
            assert!(!message.is_empty(), "{kind:?}");
            assert!(message.is_ascii() && !message.contains('\0'), "{kind:?}");
        }
    }

    #[test]
    fn the_table() {
        let expected = [
            (ErrorKind::NotFound, 1),
            (ErrorKind::PermissionDenied, 2),
            (ErrorKind::AlreadyExists, 6),
            (ErrorKind::NotADirectory, 1),
            (ErrorKind::IsADirectory, 2),
            (ErrorKind::DirectoryNotEmpty, 0),
            (ErrorKind::QuotaExceeded, 3),
            (ErrorKind::NoSpace, 3),
            (ErrorKind::InvalidPath, 2),
            (ErrorKind::Unsupported, 0),
            (ErrorKind::InvalidOffset, 4),
            (ErrorKind::Io, 0),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len());
        for (kind, code) in expected {
            assert_eq!(for_kind(kind).0.wire(), code, "{kind:?}");
        }
    }
}
