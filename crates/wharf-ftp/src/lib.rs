//! Wharf's FTP front-end (RFC 959, 2389, 2428, 3659 and common extensions).
//!
//! - [`codec`] splits the control connection into lines and [`command`] parses each into a
//!   [`Command`] — pure functions over bytes, tested alone.
//! - [`reply`] formats every reply; [`errors`] maps storage errors onto reply codes.
//! - The session state machine (private `session` module) turns commands into calls on
//!   `wharf_access::Session`, with transfers running beside the control connection.
//! - Data connections (passive from a port range, active only back to the client) move bytes
//!   with `sendfile` where the data is plain and unchanged, and in large buffers elsewhere.
//! - [`tls`] is the seam `wharf-ftps` plugs TLS into; [`FtpServer`] and [`FtpService`] run
//!   listeners and sessions.
//!
//! See `docs/protocols/ftp.md` for what is supported and how.

pub mod ascii;
pub mod codec;
pub mod command;
pub mod config;
mod control;
mod data;
pub mod errors;
pub mod hash;
pub mod listing;
mod pacing;
mod probe;
pub mod reply;
mod server;
mod session;
pub mod tls;

pub use command::{Command, ParseError, parse};
pub use config::{FtpConfig, PassiveAddress, PortRange};
pub use probe::PeerProbe;
pub use reply::Reply;
pub use server::{ControlConnection, DESCRIPTORS_PER_SESSION, FtpError, FtpServer, FtpService};
pub use tls::{
    BoxedStream, DataDirection, FtpStream, FtpTls, FtpTlsConnection, TlsPolicy, TlsSetup,
};
