//! Wharf's TFTP front-end (RFC 1350 with options: RFC 2347, 2348, 2349 and 7440).
//!
//! TFTP has no login. A request is mapped by the client's source network ([`AccessRule`],
//! first match wins) onto an identity of the shared layer, a passwordless user with its own
//! mounts and permissions; every file operation then goes through that identity's session,
//! and so through its permission checks and audit events like any other protocol. Requested
//! names may be rewritten first ([`RemapRule`], DOS-path folding) for devices that ask for
//! fixed names.
//!
//! - [`TftpServer`]: bind the configured addresses, then [`TftpServer::run`].
//! - [`packet`]: the pure parser and serializer of TFTP packets.
//! - [`options`]: option negotiation (blksize, timeout, tsize, windowsize).
//! - [`netascii`]: netascii conversion both ways.
//! - [`errors`]: the table from the shared layer's errors to TFTP error codes.
//!
//! Why this crate has its own engine rather than wrapping async-tftp is written down in
//! `docs/protocols/tftp.md`.

mod admission;
pub mod config;
pub mod errors;
pub mod netascii;
pub mod options;
pub mod packet;
pub mod remap;
pub mod rules;
mod server;
mod transfer;

pub use config::{InvalidSetting, OverCap, TftpConfig};
pub use remap::{FilenameMapper, RemapError, RemapRule};
pub use rules::{AccessRule, AccessRules};
pub use server::{TftpError, TftpServer, check_config};
pub use transfer::DESCRIPTORS_PER_TRANSFER;
