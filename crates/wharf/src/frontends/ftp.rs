//! FTP (plain), from the `ftp` section.

use std::sync::Arc;

use anyhow::Context as _;
use wharf_access::Gateway;
use wharf_ftp::{FtpConfig, FtpServer};

use super::Started;
use crate::server::{ListenerInfo, ephemeral_ports, listen_addrs};

/// Binds the FTP listeners and starts serving.
pub fn start(mut config: FtpConfig, gateway: Arc<Gateway>) -> anyhow::Result<Started> {
    config.listen = listen_addrs(&config.listen);
    if ephemeral_ports() {
        config.passive_ports = None;
    }
    let server = FtpServer::bind(config, gateway).context("starting FTP")?;
    let listeners = server
        .local_addrs()
        .into_iter()
        .map(|addr| ListenerInfo {
            protocol: "FTP",
            addr,
            example: format!("lftp -u {{user}} -p {} {}", addr.port(), addr.ip()),
        })
        .collect();
    Ok(Started { listeners, notes: Vec::new(), task: tokio::spawn(server.run()) })
}
