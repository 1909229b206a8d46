//! SFTP (SSH), from the `sftp` section.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use wharf_access::Gateway;
use wharf_sftp::{SftpConfig, SftpServer};

use super::Started;
use crate::server::{ListenerInfo, listen_addrs};

/// Binds the SSH listeners (host keys under `data_dir` unless configured absolute) and starts
/// serving.
pub async fn start(
    mut config: SftpConfig,
    data_dir: &Path,
    gateway: Arc<Gateway>,
) -> anyhow::Result<Started> {
    config.listen = listen_addrs(&config.listen);
    config.host_key_dir = data_dir.join(&config.host_key_dir);
    let server = SftpServer::bind(config, gateway).await.context("starting SFTP")?;
    let listeners = server
        .local_addrs()
        .iter()
        .map(|addr| ListenerInfo {
            protocol: "SFTP",
            addr: *addr,
            example: format!("sftp -P {} {{user}}@{}", addr.port(), addr.ip()),
        })
        .collect();
    let notes =
        server.host_key_fingerprints().iter().map(|fp| format!("SSH host key: {fp}")).collect();
    Ok(Started { listeners, notes, task: tokio::spawn(server.run()) })
}
