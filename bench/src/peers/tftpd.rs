//! tftpd-hpa, the TFTP peer: standalone (`-L`) on a loopback port, chrooted into the share,
//! allowed to create files (uploads go to new names).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::endpoint::Endpoint;
use crate::net::{LOOPBACK, free_udp_port, udp_port_taken};
use crate::process::{ChildGuard, spawn_server};

/// Where Debian installs it.
pub const BINARY: &str = "/usr/sbin/in.tftpd";

/// A running tftpd-hpa.
pub struct Tftpd {
    _process: ChildGuard,
    /// How clients reach it.
    pub endpoint: Endpoint,
}

impl Tftpd {
    /// Starts tftpd-hpa serving `share` (as Debian's `tftp` user, like its service).
    pub fn start(share: &Path, dir: &Path) -> anyhow::Result<Tftpd> {
        let port = free_udp_port()?;
        let process = spawn_server(
            Command::new(BINARY)
                .args(["-L", "-s", "-c", "-u", "tftp", "-a"])
                .arg(format!("127.0.0.1:{port}"))
                .arg(share),
            &dir.join("tftpd.log"),
            "tftpd-hpa",
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_port_taken(port) {
            if Instant::now() > deadline {
                bail!("tftpd-hpa did not bind 127.0.0.1:{port}; see {}/tftpd.log", dir.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let endpoint = Endpoint {
            addr: SocketAddr::from((LOOPBACK, port)),
            user: String::new(),
            password: String::new(),
            key: None,
            curl_home: None,
            server_pid: process.pid(),
        };
        Ok(Tftpd { _process: process, endpoint })
    }
}
