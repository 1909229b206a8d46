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
    /// For curl's SFTP client: a `CURL_HOME` whose `.ssh/known_hosts` names this server's
    /// Ed25519 host key (see [`crate::clients::write_curl_home`]).
    pub curl_home: Option<PathBuf>,
    /// The server process whose tree holds this protocol's sessions (for memory figures).
    pub server_pid: u32,
}

/// Which server of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The server users would otherwise run: vsftpd, OpenSSH's sftp-server, tftpd-hpa.
    Peer,
    /// unFTP, the second FTP and FTPS peer (a Rust server like Wharf, on libunftp).
    Unftp,
    /// Wharf.
    Wharf,
}

impl Side {
    /// Every side, in the order of the first run; later runs reverse it (see [`Side::order`]).
    pub const ALL: [Side; 3] = [Side::Peer, Side::Unftp, Side::Wharf];

    /// The run order of run `run`: the first run's order, reversed on every other run, so
    /// that each pair of servers swaps places from one run to the next and a drift of the
    /// machine (writeback, a neighbour's build) does not always favour the same side.
    pub fn order(run: usize) -> [Side; 3] {
        let mut order = Side::ALL;
        if !run.is_multiple_of(2) {
            order.reverse();
        }
        order
    }

    /// The peers Wharf is compared with for `protocol`: unFTP only speaks FTP and FTPS.
    pub fn peers_of(protocol: crate::cli::Protocol) -> &'static [Side] {
        use crate::cli::Protocol;
        match protocol {
            Protocol::Ftp | Protocol::Ftps => &[Side::Peer, Side::Unftp],
            Protocol::Sftp | Protocol::Tftp => &[Side::Peer],
        }
    }

    /// Lower-case name for file names and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Side::Peer => "peer",
            Side::Unftp => "unftp",
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
    /// The server's program is not on this machine; the reason says how to get it.
    NotInstalled(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NotServed(reason) => write!(f, "not served: {reason}"),
            Unavailable::Broken(reason) => write!(f, "failed: {reason}"),
            Unavailable::NotInstalled(reason) => write!(f, "not installed: {reason}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Protocol;

    #[test]
    fn every_pair_of_sides_swaps_places_between_runs() {
        let position = |run: usize, side: Side| Side::order(run).iter().position(|s| *s == side);
        for (a, b) in
            [(Side::Peer, Side::Wharf), (Side::Unftp, Side::Wharf), (Side::Peer, Side::Unftp)]
        {
            let first = position(0, a) < position(0, b);
            assert_ne!(first, position(1, a) < position(1, b), "{a:?} and {b:?}");
            assert_eq!(first, position(2, a) < position(2, b), "{a:?} and {b:?}");
        }
    }

    #[test]
    fn unftp_is_a_peer_of_ftp_and_ftps_only() {
        assert_eq!(Side::peers_of(Protocol::Ftps), [Side::Peer, Side::Unftp]);
        assert_eq!(Side::peers_of(Protocol::Sftp), [Side::Peer]);
        assert!(Protocol::ALL.iter().all(|p| !Side::peers_of(*p).contains(&Side::Wharf)));
    }
}
