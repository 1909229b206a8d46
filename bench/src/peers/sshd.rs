//! OpenSSH's sshd with its sftp-server, the SFTP peer: its own configuration, host key and
//! authorized keys in the scratch directory, on a loopback port, for the account the bench
//! runs as.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::clients::write_curl_home;
use crate::credentials::{Credentials, generate_ed25519_key};
use crate::endpoint::Endpoint;
use crate::net::{LOOPBACK, free_tcp_port, wait_for_tcp};
use crate::process::{ChildGuard, spawn_server};

/// Where Debian installs sshd (it must be started by its absolute path: it re-executes itself).
pub const BINARY: &str = "/usr/sbin/sshd";
/// Where Debian installs OpenSSH's SFTP server.
pub const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
/// The privilege-separation directory compiled into Debian's sshd. Its systemd unit creates
/// it at start; on a machine where the service never ran it is missing and sshd refuses to
/// start.
const PRIVSEP_DIR: &str = "/run/sshd";

/// A running sshd.
pub struct Sshd {
    _process: ChildGuard,
    /// How clients reach it.
    pub endpoint: Endpoint,
}

impl Sshd {
    /// Starts sshd on a free loopback port; SFTP sessions start in `share`.
    pub fn start(share: &Path, dir: &Path, credentials: &Credentials) -> anyhow::Result<Sshd> {
        if !Path::new(PRIVSEP_DIR).is_dir() {
            eprintln!("note: creating {PRIVSEP_DIR}, which sshd needs (as its systemd unit does)");
            std::fs::create_dir_all(PRIVSEP_DIR)
                .with_context(|| format!("creating {PRIVSEP_DIR} for sshd"))?;
        }
        let host_key = dir.join("ssh_host_ed25519_key");
        generate_ed25519_key(&host_key, "bench-host")?;
        let authorized_keys = dir.join("authorized_keys");
        std::fs::write(&authorized_keys, format!("{}\n", credentials.ssh_public_key))?;
        let port = free_tcp_port()?;
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 PidFile none\n\
                 AuthorizedKeysFile {authorized_keys}\n\
                 StrictModes no\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 AllowUsers {user}\n\
                 UsePAM no\n\
                 PrintMotd no\n\
                 LogLevel ERROR\n\
                 MaxStartups 1000:30:2000\n\
                 Subsystem sftp {SFTP_SERVER} -d {share}\n",
                host_key = host_key.display(),
                authorized_keys = authorized_keys.display(),
                user = credentials.unix_user,
                share = share.display(),
            ),
        )?;
        let log = dir.join("sshd.log");
        let process =
            spawn_server(Command::new(BINARY).args(["-D", "-e", "-f"]).arg(&config), &log, "sshd")?;
        let addr = SocketAddr::from((LOOPBACK, port));
        wait_for_tcp(addr, Duration::from_secs(10))
            .with_context(|| format!("sshd did not start; see {}/sshd.log", dir.display()))?;
        let endpoint = Endpoint {
            addr,
            user: credentials.unix_user.clone(),
            password: String::new(),
            key: Some(credentials.ssh_key.clone()),
            curl_home: Some(write_curl_home(
                &dir.join("curl-home"),
                addr,
                &host_key.with_extension("pub"),
            )?),
            server_pid: process.pid(),
        };
        Ok(Sshd { _process: process, endpoint })
    }
}
