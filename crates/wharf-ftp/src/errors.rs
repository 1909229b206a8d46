//! The one table mapping storage and session errors to FTP replies.
//!
//! | error kind | reply |
//! |---|---|
//! | `NotFound` | 550 No such file or directory |
//! | `PermissionDenied` | 550 Permission denied |
//! | `AlreadyExists` | 553 File exists |
//! | `NotADirectory` | 550 Not a directory |
//! | `IsADirectory` | 550 Is a directory |
//! | `DirectoryNotEmpty` | 550 Directory not empty |
//! | `QuotaExceeded` | 552 Quota exceeded |
//! | `NoSpace` | 452 Insufficient storage space |
//! | `InvalidPath` | 553 Invalid path: (why) |
//! | `Unsupported` | 504 Not supported here: (what) |
//! | `Io` | 451 Local error in processing |
//!
//! `550` is RFC 959's "file unavailable", `553` "file name not allowed", `552` "exceeded storage
//! allocation", `452` "insufficient storage space", `451` "local error", `504` "not implemented
//! for that parameter". The detail of an I/O error stays in the server's log.

use wharf_vfs::{Error, ErrorKind};

use crate::reply::Reply;

/// The reply code and text for an error kind.
pub fn reply_for_kind(kind: ErrorKind) -> (u16, &'static str) {
    match kind {
        ErrorKind::NotFound => (550, "No such file or directory"),
        ErrorKind::PermissionDenied => (550, "Permission denied"),
        ErrorKind::AlreadyExists => (553, "File exists"),
        ErrorKind::NotADirectory => (550, "Not a directory"),
        ErrorKind::IsADirectory => (550, "Is a directory"),
        ErrorKind::DirectoryNotEmpty => (550, "Directory not empty"),
        ErrorKind::QuotaExceeded => (552, "Quota exceeded"),
        ErrorKind::NoSpace => (452, "Insufficient storage space"),
        ErrorKind::InvalidPath => (553, "Invalid path"),
        ErrorKind::Unsupported => (504, "Not supported here"),
        ErrorKind::InvalidOffset => (501, "Offset beyond the largest file position"),
        ErrorKind::Io => (451, "Local error in processing"),
    }
}

/// The reply answering a failed operation. Path and capability errors say why; I/O errors are
/// logged and answered without their detail.
pub fn reply_for_error(err: &Error) -> Reply {
    let (code, text) = reply_for_kind(err.kind());
    match err {
        Error::InvalidPath(why) => Reply::new(code, format!("{text}: {why}.")),
        Error::Unsupported(what) => Reply::new(code, format!("{text}: {what}.")),
        Error::Io(detail) => {
            tracing::warn!(error = %detail, "storage error answered with 451");
            Reply::new(code, format!("{text}."))
        }
        _ => Reply::new(code, format!("{text}.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_failure_reply() {
        for kind in ErrorKind::ALL {
            let (code, text) = reply_for_kind(kind);
            assert!((450..560).contains(&code) && code / 100 != 3, "{kind:?}: {code}");
            assert!(!text.is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn table_values() {
        let expected = [
            (ErrorKind::NotFound, 550),
            (ErrorKind::PermissionDenied, 550),
            (ErrorKind::AlreadyExists, 553),
            (ErrorKind::NotADirectory, 550),
            (ErrorKind::IsADirectory, 550),
            (ErrorKind::DirectoryNotEmpty, 550),
            (ErrorKind::QuotaExceeded, 552),
            (ErrorKind::NoSpace, 452),
            (ErrorKind::InvalidPath, 553),
            (ErrorKind::Unsupported, 504),
            (ErrorKind::InvalidOffset, 501),
            (ErrorKind::Io, 451),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len(), "a new kind needs a row here");
        for (kind, code) in expected {
            assert_eq!(reply_for_kind(kind).0, code, "{kind:?}");
        }
    }

    #[test]
    fn details_are_shown_except_for_io() {
        let reply = reply_for_error(&Error::Unsupported("appending is not supported"));
        assert_eq!(reply.lines()[0], "Not supported here: appending is not supported.");
        let io = Error::Io(std::io::Error::other("disk /dev/sda1 on fire"));
        assert_eq!(reply_for_error(&io).lines()[0], "Local error in processing.");
    }
}
