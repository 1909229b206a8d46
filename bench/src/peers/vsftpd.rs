//! vsftpd, the FTP and FTPS peer.
//!
//! vsftpd checks local users' passwords through PAM against the system's accounts, which the
//! bench will not touch; it serves the share to anonymous sessions with uploads allowed
//! instead. After login a session is the same pair of processes either way (a privileged
//! parent and the unprivileged child that moves the data with sendfile), so transfer and
//! memory figures are those of a local-user session.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::credentials::Credentials;
use crate::endpoint::Endpoint;
use crate::net::{LOOPBACK, free_tcp_port, wait_for_tcp};
use crate::process::{ChildGuard, spawn_server};

/// Where Debian installs it.
pub const BINARY: &str = "/usr/sbin/vsftpd";

/// Sessions allowed at once, in total and per address: above the idle-memory scenario's.
const MAX_CLIENTS: usize = 5_000;

/// A running vsftpd.
pub struct Vsftpd {
    _process: ChildGuard,
    /// How clients reach it.
    pub endpoint: Endpoint,
}

fn config_text(share: &Path, port: u16, empty_dir: &Path, tls: Option<&Credentials>) -> String {
    let mut text = format!(
        "listen=YES\n\
         listen_ipv6=NO\n\
         listen_address=127.0.0.1\n\
         listen_port={port}\n\
         background=NO\n\
         anonymous_enable=YES\n\
         no_anon_password=YES\n\
         anon_root={share}\n\
         local_enable=NO\n\
         write_enable=YES\n\
         anon_upload_enable=YES\n\
         anon_mkdir_write_enable=YES\n\
         anon_other_write_enable=YES\n\
         anon_umask=022\n\
         allow_writeable_chroot=YES\n\
         pasv_enable=YES\n\
         pasv_address=127.0.0.1\n\
         max_clients={MAX_CLIENTS}\n\
         max_per_ip={MAX_CLIENTS}\n\
         secure_chroot_dir={empty}\n\
         xferlog_enable=NO\n\
         dirmessage_enable=NO\n\
         idle_session_timeout=900\n",
        share = share.display(),
        empty = empty_dir.display(),
    );
    if let Some(credentials) = tls {
        // Explicit TLS, required for login and data (PROT P), with vsftpd's default
        // require_ssl_reuse=YES: each data connection resumes the control's TLS session.
        // The certificate is the one Wharf presents too; `rsa_cert_file` is only the option's
        // name, OpenSSL loads any key type from it.
        text.push_str(&format!(
            "ssl_enable=YES\n\
             rsa_cert_file={}\n\
             rsa_private_key_file={}\n\
             allow_anon_ssl=YES\n\
             force_anon_logins_ssl=YES\n\
             force_anon_data_ssl=YES\n\
             ssl_ciphers=HIGH\n",
            credentials.tls_cert.display(),
            credentials.tls_key.display(),
        ));
    }
    text
}

impl Vsftpd {
    /// Starts vsftpd on a free loopback port serving `share`; with `tls`, FTPS only.
    pub fn start(share: &Path, dir: &Path, tls: Option<&Credentials>) -> anyhow::Result<Vsftpd> {
        let port = free_tcp_port()?;
        // vsftpd chroots its unprivileged helper into an empty directory owned by root.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        let config = dir.join("vsftpd.conf");
        std::fs::write(&config, config_text(share, port, &empty, tls))?;
        let log = dir.join("vsftpd.log");
        let process = spawn_server(Command::new(BINARY).arg(&config), &log, "vsftpd")?;
        let addr = SocketAddr::from((LOOPBACK, port));
        wait_for_tcp(addr, Duration::from_secs(10))
            .with_context(|| format!("vsftpd did not start; see {}", dir.display()))?;
        let endpoint = Endpoint {
            addr,
            user: "anonymous".to_owned(),
            password: "bench@example.org".to_owned(),
            key: None,
            curl_home: None,
            server_pid: process.pid(),
        };
        Ok(Vsftpd { _process: process, endpoint })
    }
}
