//! FTP, and FTPS on top of it, from the `ftp` and `ftps` sections.
//!
//! Without an `ftps` section the FTP listeners speak plain FTP. With one, the same listeners
//! offer `AUTH TLS` (explicit FTPS, as the section's policy says) and the implicit listeners
//! speak TLS from the first byte; certificate paths are taken from the data directory.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use wharf_access::Gateway;
use wharf_ftp::{FtpConfig, FtpServer};
use wharf_ftps::{FtpsConfig, FtpsServer, FtpsTls, ListenerKind};

use super::Started;
use crate::server::{ListenerInfo, ephemeral_ports, listen_addrs};

/// FTP and FTPS, bound and running, with the handle a reload swaps certificates through.
pub struct StartedFtp {
    /// The running front-end.
    pub started: Started,
    /// The TLS provider, when FTPS is configured.
    pub tls: Option<Arc<FtpsTls>>,
}

fn prepare(mut config: FtpConfig) -> FtpConfig {
    config.listen = listen_addrs(&config.listen);
    if ephemeral_ports() {
        config.passive_ports = None;
    }
    config
}

fn lftp(addr: std::net::SocketAddr) -> String {
    format!("lftp -u {{user}} -p {} {}", addr.port(), addr.ip())
}

/// Binds the FTP (and FTPS) listeners and starts serving. `ftp` absent with `ftps` present
/// serves implicit FTPS only.
pub fn start(
    ftp: Option<FtpConfig>,
    ftps: Option<FtpsConfig>,
    data_dir: &Path,
    gateway: Arc<Gateway>,
) -> anyhow::Result<StartedFtp> {
    let Some(mut ftps) = ftps else {
        let ftp = prepare(ftp.unwrap_or_default());
        let server = FtpServer::bind(ftp, gateway).context("starting FTP")?;
        let listeners = server
            .local_addrs()
            .into_iter()
            .map(|addr| ListenerInfo { protocol: "FTP", addr, example: lftp(addr) })
            .collect();
        let started = Started { listeners, notes: Vec::new(), task: tokio::spawn(server.run()) };
        return Ok(StartedFtp { started, tls: None });
    };
    let ftp = prepare(ftp.unwrap_or(FtpConfig { listen: Vec::new(), ..FtpConfig::default() }));
    ftps.implicit_listen = listen_addrs(&ftps.implicit_listen);
    ftps.generated_certificate_dir = data_dir.join(&ftps.generated_certificate_dir);
    for path in [&mut ftps.certificate_chain, &mut ftps.private_key].into_iter().flatten() {
        *path = data_dir.join(&*path);
    }
    let server = FtpsServer::bind(ftps, ftp, gateway).context("starting FTP/FTPS")?;
    let listeners = server
        .local_addrs()
        .into_iter()
        .map(|bound| match bound.kind {
            ListenerKind::Explicit => ListenerInfo {
                protocol: "FTP",
                addr: bound.addr,
                example: format!(
                    "{}   (AUTH TLS: curl --ssl-reqd -k ftp://{{user}}@{}/)",
                    lftp(bound.addr),
                    bound.addr
                ),
            },
            ListenerKind::PlainOnly => {
                ListenerInfo { protocol: "FTP", addr: bound.addr, example: lftp(bound.addr) }
            }
            ListenerKind::Implicit => ListenerInfo {
                protocol: "FTPS",
                addr: bound.addr,
                example: format!("curl -k ftps://{{user}}@{}/", bound.addr),
            },
        })
        .collect();
    let notes = vec![format!("FTPS certificate SHA-256: {}", server.fingerprint())];
    let tls = server.tls();
    let started = Started { listeners, notes, task: tokio::spawn(server.run()) };
    Ok(StartedFtp { started, tls: Some(tls) })
}
