//! Serves a directory over SFTP alone, for trying clients and measuring speed:
//!
//! ```text
//! cargo run --release -p wharf-sftp --example serve -- \
//!     --share /srv/share --users users.yaml --host-keys /tmp/keys --listen 127.0.0.1:2222
//! ```
//!
//! `users.yaml` holds `users: [...]` as in the main configuration. Stops on Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wharf_access::{AccessConfig, Authenticator, Gateway, UsersFile};
use wharf_sftp::{SftpConfig, SftpServer};
use wharf_vfs::{LocalOptions, LocalStorage};

struct Args {
    share: PathBuf,
    users: PathBuf,
    host_keys: PathBuf,
    listen: std::net::SocketAddr,
}

fn parse_args() -> Result<Args, String> {
    let mut share = None;
    let mut users = None;
    let mut host_keys = None;
    let mut listen = "127.0.0.1:2222".parse().map_err(|e| format!("{e}"))?;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--share" => share = Some(PathBuf::from(value)),
            "--users" => users = Some(PathBuf::from(value)),
            "--host-keys" => host_keys = Some(PathBuf::from(value)),
            "--listen" => listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        share: share.ok_or("--share is required")?,
        users: users.ok_or("--users is required")?,
        host_keys: host_keys.ok_or("--host-keys is required")?,
        listen,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = parse_args()?;
    let storage = LocalStorage::open(&args.share, true, LocalOptions::default())?;
    let file: UsersFile = serde_yaml::from_str(&std::fs::read_to_string(&args.users)?)?;
    let access = AccessConfig { users: file.users, ..AccessConfig::default() };
    let users = access.load_users(std::path::Path::new("."))?;
    let gateway =
        Arc::new(Gateway::new(Authenticator::new(storage, users, access.login_settings())));
    let config = SftpConfig {
        listen: vec![args.listen],
        host_key_dir: args.host_keys,
        ..SftpConfig::default()
    };
    let server = SftpServer::bind(config, gateway.clone()).await?;
    for addr in server.local_addrs() {
        println!("SFTP on {addr}");
    }
    for fingerprint in server.host_key_fingerprints() {
        println!("host key {fingerprint}");
    }
    let serving = tokio::spawn(server.run());
    tokio::signal::ctrl_c().await?;
    gateway.shutdown.shut_down(Duration::from_secs(5)).await;
    serving.await?;
    Ok(())
}
