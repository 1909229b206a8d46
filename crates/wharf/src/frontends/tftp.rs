//! TFTP, from the `tftp` section.

use std::sync::Arc;

use anyhow::Context as _;
use wharf_access::Gateway;
use wharf_tftp::{TftpConfig, TftpServer};

use super::Started;
use crate::server::{ListenerInfo, listen_addrs};

/// Binds the UDP listeners and starts serving.
pub async fn start(mut config: TftpConfig, gateway: Arc<Gateway>) -> anyhow::Result<Started> {
    config.listen = listen_addrs(&config.listen);
    let server = TftpServer::bind(config, gateway).await.context("starting TFTP")?;
    let listeners = server
        .local_addrs()
        .into_iter()
        .map(|addr| ListenerInfo {
            protocol: "TFTP",
            addr,
            example: format!("tftp {} {} -c get <file>", addr.ip(), addr.port()),
        })
        .collect();
    Ok(Started { listeners, notes: Vec::new(), task: tokio::spawn(server.run()) })
}
