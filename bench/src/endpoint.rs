//! Where a client reaches one protocol of one server, and how it logs in.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A served protocol, ready for clients.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The address clients connect to (always on 127.0.0.1).
    pub addr: SocketAddr,
    /// Login name (FTP, SFTP); empty for TFTP.
    pub user: String,
    /// Password (FTP, FTPS).
    pub password: String,
    /// Private key file (SFTP).
    pub key: Option<PathBuf>,
    /// The server process whose tree holds this protocol's sessions (for memory figures).
    pub server_pid: u32,
}

/// Which server of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The server users would otherwise run.
    Peer,
    /// Wharf.
    Wharf,
}

impl Side {
    /// Both sides, in the order of the first run; later runs alternate (see [`Side::order`]).
    pub const BOTH: [Side; 2] = [Side::Peer, Side::Wharf];

    /// The order of run `run`: alternating, so that a drift of the machine (writeback, a
    /// neighbour's build) does not always favour the same side.
    pub fn order(run: usize) -> [Side; 2] {
        if run.is_multiple_of(2) { [Side::Peer, Side::Wharf] } else { [Side::Wharf, Side::Peer] }
    }

    /// Lower-case name for file names and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Side::Peer => "peer",
            Side::Wharf => "wharf",
        }
    }
}

/// Why a side cannot be measured for a protocol.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum Unavailable {
    /// The binary does not serve this protocol (yet).
    NotServed(String),
    /// It is served but could not be started or did not pass the first transfer.
    Broken(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NotServed(reason) => write!(f, "not served: {reason}"),
            Unavailable::Broken(reason) => write!(f, "failed: {reason}"),
        }
    }
}

/// One side's endpoints, per protocol.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// FTP.
    pub ftp: Result<Endpoint, Unavailable>,
    /// FTPS, explicit.
    pub ftps: Result<Endpoint, Unavailable>,
    /// SFTP.
    pub sftp: Result<Endpoint, Unavailable>,
    /// TFTP.
    pub tftp: Result<Endpoint, Unavailable>,
}

impl Endpoints {
    /// Every protocol unavailable for the same reason.
    pub fn none(reason: Unavailable) -> Endpoints {
        Endpoints {
            ftp: Err(reason.clone()),
            ftps: Err(reason.clone()),
            sftp: Err(reason.clone()),
            tftp: Err(reason),
        }
    }

    /// The endpoint of `protocol`.
    pub fn get(&self, protocol: crate::cli::Protocol) -> &Result<Endpoint, Unavailable> {
        use crate::cli::Protocol;
        match protocol {
            Protocol::Ftp => &self.ftp,
            Protocol::Ftps => &self.ftps,
            Protocol::Sftp => &self.sftp,
            Protocol::Tftp => &self.tftp,
        }
    }

    /// Mutable access to the endpoint of `protocol`.
    pub fn get_mut(
        &mut self,
        protocol: crate::cli::Protocol,
    ) -> &mut Result<Endpoint, Unavailable> {
        use crate::cli::Protocol;
        match protocol {
            Protocol::Ftp => &mut self.ftp,
            Protocol::Ftps => &mut self.ftps,
            Protocol::Sftp => &mut self.sftp,
            Protocol::Tftp => &mut self.tftp,
        }
    }
}
