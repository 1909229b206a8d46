//! The protocols a session can arrive by.

use std::fmt;

use serde::Deserialize;

/// The protocol a session speaks, as recorded in audit events and checked against a user's
/// allowed protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// FTP with a clear-text control connection.
    Ftp,
    /// FTP protected by TLS (explicit `AUTH TLS` or implicit).
    Ftps,
    /// SFTP over SSH.
    Sftp,
    /// TFTP.
    Tftp,
}

impl Protocol {
    /// The lowercase name used in logs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ftp => "ftp",
            Protocol::Ftps => "ftps",
            Protocol::Sftp => "sftp",
            Protocol::Tftp => "tftp",
        }
    }

    /// The family a user is granted in configuration: FTPS is FTP with TLS.
    pub fn family(self) -> ProtocolFamily {
        match self {
            Protocol::Ftp | Protocol::Ftps => ProtocolFamily::Ftp,
            Protocol::Sftp => ProtocolFamily::Sftp,
            Protocol::Tftp => ProtocolFamily::Tftp,
        }
    }

    /// Whether the channel carrying credentials and data is encrypted.
    pub fn is_encrypted(self) -> bool {
        matches!(self, Protocol::Ftps | Protocol::Sftp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol as granted to a user in the users file (`protocols: [ftp, sftp]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolFamily {
    /// FTP and FTPS (whether TLS is required is the user's `require_tls`).
    Ftp,
    /// SFTP.
    Sftp,
    /// TFTP (only for passwordless identities that TFTP rules map clients onto).
    Tftp,
}
