//! Errors of this crate, and the one table that turns a storage or session error into an SFTP
//! status code.

use std::net::SocketAddr;

use russh_sftp::protocol::StatusCode;
use wharf_vfs::{Error, ErrorKind};

use crate::config::ConfigError;
use crate::host_keys::HostKeyError;

/// Why the SFTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// The `sftp` section is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The host keys could not be loaded or created.
    #[error(transparent)]
    HostKeys(#[from] HostKeyError),
    /// A listening address could not be bound.
    #[error("cannot listen for SFTP on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Preparing the host keys was interrupted (the runtime is shutting down).
    #[error("preparing the SFTP host keys was interrupted: {0}")]
    Interrupted(#[source] tokio::task::JoinError),
}

/// The SFTP (version 3) status code for an error kind.
///
/// Version 3 has no codes for "already exists", "not empty", "quota" or "no space"; those are
/// `SSH_FX_FAILURE` with the reason in the message, as OpenSSH's server answers them. Like
/// OpenSSH, "not a directory" reads as "no such file" (a path through a file leads nowhere).
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound | ErrorKind::NotADirectory => StatusCode::NoSuchFile,
        ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        ErrorKind::AlreadyExists
        | ErrorKind::IsADirectory
        | ErrorKind::DirectoryNotEmpty
        | ErrorKind::QuotaExceeded
        | ErrorKind::NoSpace
        | ErrorKind::Io => StatusCode::Failure,
        ErrorKind::InvalidPath | ErrorKind::InvalidOffset => StatusCode::BadMessage,
        ErrorKind::Unsupported => StatusCode::OpUnsupported,
    }
}

/// The status code and message a client is told for `err`. Messages never carry host paths:
/// the error types only name virtual paths and operating-system reasons.
pub(crate) fn status_of(err: &Error) -> (StatusCode, String) {
    (status_for(err.kind()), err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_status_a_server_may_send() {
        for kind in ErrorKind::ALL {
            let code = status_for(kind);
            // OK and EOF are not errors; NO_CONNECTION and CONNECTION_LOST are client-local.
            assert!(
                !matches!(
                    code,
                    StatusCode::Ok
                        | StatusCode::Eof
                        | StatusCode::NoConnection
                        | StatusCode::ConnectionLost
                ),
                "{kind:?} -> {code:?}"
            );
        }
    }

    #[test]
    fn the_table() {
        let expected = [
            (ErrorKind::NotFound, StatusCode::NoSuchFile),
            (ErrorKind::PermissionDenied, StatusCode::PermissionDenied),
            (ErrorKind::AlreadyExists, StatusCode::Failure),
            (ErrorKind::NotADirectory, StatusCode::NoSuchFile),
            (ErrorKind::IsADirectory, StatusCode::Failure),
            (ErrorKind::DirectoryNotEmpty, StatusCode::Failure),
            (ErrorKind::QuotaExceeded, StatusCode::Failure),
            (ErrorKind::NoSpace, StatusCode::Failure),
            (ErrorKind::InvalidPath, StatusCode::BadMessage),
            (ErrorKind::Unsupported, StatusCode::OpUnsupported),
            (ErrorKind::InvalidOffset, StatusCode::BadMessage),
            (ErrorKind::Io, StatusCode::Failure),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len(), "a kind is missing from this test");
        for (kind, code) in expected {
            assert_eq!(status_for(kind), code, "{kind:?}");
        }
    }

    #[test]
    fn failures_carry_their_reason() {
        let (code, message) = status_of(&Error::DirectoryNotEmpty);
        assert_eq!(code, StatusCode::Failure);
        assert_eq!(message, "directory not empty");
        let (code, message) = status_of(&Error::Unsupported("appending is not supported here"));
        assert_eq!(code, StatusCode::OpUnsupported);
        assert!(message.contains("appending"), "{message}");
    }
}
