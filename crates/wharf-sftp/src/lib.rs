//! Wharf's SFTP front-end: an SSH server (russh) that serves only the SFTP subsystem.
//!
//! - [`SftpServer::bind`] loads (or creates on first start) the host keys, binds the
//!   listeners and [`SftpServer::run`] serves them until the gateway drains.
//! - Authentication goes through the shared login ([`wharf_access::Authenticator`]): password,
//!   public key, keyboard-interactive (a password prompt), and public key *and* password.
//! - Only the `sftp` subsystem is offered; shells, commands, terminals, X11, agents and port
//!   forwarding are refused.
//! - SFTP version 3 with the OpenSSH extensions clients use. Requests are answered by this
//!   crate's own request loop (not russh-sftp's serial one): reads are served concurrently with
//!   read-ahead, writes to a handle stay in order, replies are coalesced. Every operation goes
//!   through the user's [`wharf_access::Session`], so permissions, mounts and atomic uploads
//!   are the same as on every other protocol.
//!
//! The wire format of SFTP packets is russh-sftp's; see `docs/protocols/sftp.md` for the
//! mapping of requests onto the session and of errors onto status codes.

mod algorithms;
mod auth;
pub mod config;
pub mod errors;
pub mod host_keys;
mod server;
mod sftp;
mod ssh;
mod stream;

pub use config::{HostKeyType, SftpConfig};
pub use errors::{SftpError, status_for};
pub use host_keys::{HostKeyError, HostKeys};
pub use server::SftpServer;
pub use sftp::DecodeSummary;

/// Runs `bytes` through the framing and request decoding an SFTP session applies to what a
/// client sends, without a connection or storage: the entry point of the fuzz target and of
/// the property test mirroring it. Never panics, whatever the bytes.
pub fn decode_client_bytes(bytes: &[u8]) -> DecodeSummary {
    sftp::decode_client_bytes(bytes)
}
