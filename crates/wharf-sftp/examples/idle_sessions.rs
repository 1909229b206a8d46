//! Opens many idle SFTP sessions and holds them, to measure a server's memory per idle
//! session (compare its resident size before and after):
//!
//! ```text
//! cargo run --release -p wharf-sftp --example idle_sessions -- 127.0.0.1:2222 bench ~/.ssh/id_ed25519 200
//! ```
//!
//! Prints `ready` once every session is open, then waits for Ctrl-C.

use std::sync::Arc;

use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;

struct TrustAnyHost;

impl client::Handler for TrustAnyHost {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, user, key_path, count] = args.as_slice() else {
        return Err("usage: idle_sessions ADDR USER KEY_FILE COUNT".into());
    };
    let count: usize = count.parse()?;
    let key = Arc::new(russh::keys::load_secret_key(key_path, None)?);
    let config = Arc::new(client::Config::default());
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut ssh = client::connect(config.clone(), addr.as_str(), TrustAnyHost).await?;
        let auth = ssh
            .authenticate_publickey(user.as_str(), PrivateKeyWithHashAlg::new(key.clone(), None));
        if !auth.await?.success() {
            return Err("authentication failed".into());
        }
        let channel = ssh.channel_open_session().await?;
        channel.request_subsystem(true, "sftp").await?;
        let sftp = SftpSession::new(channel.into_stream()).await?;
        sftp.canonicalize(".").await?;
        held.push((ssh, sftp));
    }
    println!("ready");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
