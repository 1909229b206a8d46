//! Helpers of the SFTP end-to-end tests: a server on a loopback port over a scratch share,
//! and a Rust SSH client (russh) speaking SFTP (russh-sftp).

#![allow(dead_code)] // Each test file uses a different part.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::ChannelStream;
use russh::client::{self, AuthResult, Handle, Msg};
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::{RawSftpSession, SftpSession};
use wharf_access::{ByteSize, MemoryBudget, MemoryConfig};
use wharf_sftp::{SftpConfig, SftpServer};
use wharf_testkit::{TEST_PASSWORD, TestShare};

/// A users file with one user, `alice`, whose home is `alice` (password [`TEST_PASSWORD`]).
pub const ALICE: &str = r#"
users:
  - name: alice
    password: "$HASH"
    home: alice
"#;

/// Time any single test may take.
pub const TEST_LIMIT: Duration = Duration::from_secs(120);

/// A client key pair and its `authorized_keys` line.
pub struct UserKey {
    /// The private key.
    pub private: Arc<PrivateKey>,
    /// `ssh-ed25519 AAAA...`.
    pub public_line: String,
}

/// A fresh Ed25519 key.
pub fn user_key() -> UserKey {
    let private = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .expect("generate key");
    let public_line = private.public_key().to_openssh().expect("encode public key");
    UserKey { private: Arc::new(private), public_line }
}

/// A running SFTP server over a scratch share.
pub struct Server {
    /// The share, its users and the gateway.
    pub share: TestShare,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Host key fingerprints.
    pub fingerprints: Vec<String>,
    /// The host key directory.
    pub key_dir: PathBuf,
    serving: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts a server for the users of `users_yaml` (see [`TestShare::new`]).
    pub async fn start(users_yaml: &str) -> Server {
        Self::start_with(users_yaml, |_| {}).await
    }

    /// Starts a server after `adjust` changed its configuration.
    pub async fn start_with(users_yaml: &str, adjust: impl FnOnce(&mut SftpConfig)) -> Server {
        Self::start_on(TestShare::new(users_yaml), adjust).await
    }

    /// Starts a server whose gateway has a memory budget of `per_session` and `total` bytes.
    pub async fn start_with_memory(users_yaml: &str, per_session: u64, total: u64) -> Server {
        let mut share = TestShare::new(users_yaml);
        let config = MemoryConfig { per_session: ByteSize(per_session), total: ByteSize(total) };
        Arc::get_mut(&mut share.gateway).expect("the gateway is not shared yet").memory =
            MemoryBudget::new(&config).expect("memory budget");
        Self::start_on(share, |_| {}).await
    }

    async fn start_on(share: TestShare, adjust: impl FnOnce(&mut SftpConfig)) -> Server {
        let key_dir = share.tmp.path().join("host-keys");
        let mut config = SftpConfig {
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            host_key_dir: key_dir.clone(),
            ..SftpConfig::default()
        };
        adjust(&mut config);
        let server = SftpServer::bind(config, share.gateway.clone()).await.expect("bind");
        let addr = server.local_addrs()[0];
        let fingerprints = server.host_key_fingerprints().to_vec();
        let serving = tokio::spawn(server.run());
        Server { share, addr, fingerprints, key_dir, serving }
    }

    /// Shuts the server down (short grace period) and waits for it.
    pub async fn stop(self) {
        self.share.gateway.shutdown.shut_down(Duration::from_secs(2)).await;
        tokio::time::timeout(Duration::from_secs(5), self.serving)
            .await
            .expect("server stops")
            .expect("server task");
    }
}

/// A client that trusts any host key and remembers the one it was shown.
#[derive(Default)]
pub struct Client {
    /// The server's host key, once seen.
    pub host_key: Arc<std::sync::Mutex<Option<russh::keys::PublicKey>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key
            && let Ok(mut slot) = self.host_key.lock()
        {
            *slot = Some(key.clone());
        }
        Ok(true)
    }
}

/// An SSH connection, not yet authenticated.
pub async fn connect(addr: SocketAddr) -> Handle<Client> {
    let config = client::Config {
        inactivity_timeout: Some(Duration::from_secs(60)),
        ..client::Config::default()
    };
    client::connect(Arc::new(config), addr, Client::default()).await.expect("connect")
}

/// Authenticates with a password; panics unless it succeeds.
pub async fn login_password(addr: SocketAddr, user: &str) -> Handle<Client> {
    let mut handle = connect(addr).await;
    let result = handle.authenticate_password(user, TEST_PASSWORD).await.expect("auth");
    assert!(result.success(), "password login of {user} failed: {result:?}");
    handle
}

/// Authenticates with a key; returns the result.
pub async fn try_key(handle: &mut Handle<Client>, user: &str, key: &UserKey) -> AuthResult {
    handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.private.clone(), None))
        .await
        .expect("auth")
}

/// Opens the SFTP subsystem on an authenticated connection and returns its byte stream, for
/// tests that write SFTP packets themselves.
pub async fn sftp_stream(handle: &Handle<Client>) -> ChannelStream<Msg> {
    let channel = handle.channel_open_session().await.expect("session channel");
    channel.request_subsystem(true, "sftp").await.expect("subsystem");
    channel.into_stream()
}

/// Opens the SFTP subsystem on an authenticated connection.
pub async fn sftp(handle: &Handle<Client>) -> SftpSession {
    SftpSession::new(sftp_stream(handle).await).await.expect("sftp init")
}

/// Opens the SFTP subsystem with the low-level client (exact status codes, raw requests).
pub async fn raw_sftp(handle: &Handle<Client>) -> RawSftpSession {
    let raw = RawSftpSession::new(sftp_stream(handle).await);
    raw.init().await.expect("sftp init");
    raw
}

/// The status code of a failed SFTP call.
pub fn status_code<T: std::fmt::Debug>(
    result: Result<T, russh_sftp::client::error::Error>,
) -> russh_sftp::protocol::StatusCode {
    match result {
        Err(russh_sftp::client::error::Error::Status(status)) => status.status_code,
        other => panic!("expected an SFTP status error, got {other:?}"),
    }
}

/// Runs `test` with the time limit every test has.
pub async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test).await.expect("test exceeded its time limit");
}

/// Reads one SFTP packet (length-prefixed) from a raw subsystem stream.
pub async fn read_packet(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let len = stream.read_u32().await.expect("length") as usize;
    let mut packet = vec![0; len];
    stream.read_exact(&mut packet).await.expect("packet");
    packet
}

/// `body` with its SFTP length prefix.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut packet = (body.len() as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(body);
    packet
}
