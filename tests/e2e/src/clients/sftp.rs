//! SFTP client: russh for SSH, russh-sftp for SFTP. Each client holds two channels on one
//! connection: the high-level session (streams, pipelined transfers) and the raw one (exact
//! status codes, any request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::{RawSftpSession, SftpSession, error::Error as SftpError};
use russh_sftp::protocol::{Packet, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wharf_testkit::TEST_PASSWORD;

use super::{Entry, Refusal};
use crate::server::Wharf;
use crate::step;

/// Seconds russh-sftp waits for any one reply.
const REQUEST_TIMEOUT_SECS: u64 = 60;

/// Accepts the server's host key (the tests check the server, not host key pinning).
pub struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// An SSH connection, not yet authenticated.
pub async fn connect(server: SocketAddr) -> Handle<AnyHostKey> {
    let config = client::Config {
        inactivity_timeout: Some(Duration::from_secs(120)),
        ..client::Config::default()
    };
    step("SSH connect", client::connect(Arc::new(config), server, AnyHostKey))
        .await
        .expect("SSH connection")
}

/// A way to cut a connection at the TCP level, as a killed client or a pulled cable would:
/// no SSH disconnect, no SFTP close.
pub struct Cut(std::net::TcpStream);

impl Cut {
    /// Shuts the connection down in both directions.
    pub fn cut(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// An SSH connection that [`Cut`] can cut, not yet authenticated.
pub async fn connect_cuttable(server: SocketAddr) -> (Handle<AnyHostKey>, Cut) {
    let tcp = step("TCP connect", tokio::net::TcpStream::connect(server)).await.expect("connect");
    let std_stream = tcp.into_std().expect("std stream");
    let cut = Cut(std_stream.try_clone().expect("clone the socket"));
    let tcp = tokio::net::TcpStream::from_std(std_stream).expect("tokio stream");
    let config = client::Config {
        inactivity_timeout: Some(Duration::from_secs(120)),
        ..client::Config::default()
    };
    let handle = step("SSH handshake", client::connect_stream(Arc::new(config), tcp, AnyHostKey))
        .await
        .expect("SSH connection");
    (handle, cut)
}

/// The status of a refused SFTP request as a [`Refusal`].
pub fn refusal(err: SftpError) -> Refusal {
    match err {
        SftpError::Status(status) => {
            Refusal::Sftp { status: status.status_code as u32, message: status.error_message }
        }
        other => Refusal::Failed(other.to_string()),
    }
}

/// A logged-in SFTP client.
pub struct SftpClient {
    ssh: Handle<AnyHostKey>,
    /// The high-level session.
    pub sftp: SftpSession,
    /// The raw session, for exact status codes.
    pub raw: RawSftpSession,
}

impl SftpClient {
    /// Logs `user` in with the suite's client key.
    pub async fn login_key(wharf: &Wharf, user: &str) -> SftpClient {
        SftpClient::login_with_key(wharf.sftp, user, wharf.key.clone()).await
    }

    /// Logs `user` in with `key`.
    pub async fn login_with_key(
        server: SocketAddr,
        user: &str,
        key: Arc<PrivateKey>,
    ) -> SftpClient {
        SftpClient::authenticate_key(connect(server).await, user, key).await
    }

    /// Logs `user` in with the suite's key over a connection the returned [`Cut`] cuts.
    pub async fn login_key_cuttable(wharf: &Wharf, user: &str) -> (SftpClient, Cut) {
        let (ssh, cut) = connect_cuttable(wharf.sftp).await;
        (SftpClient::authenticate_key(ssh, user, wharf.key.clone()).await, cut)
    }

    async fn authenticate_key(
        mut ssh: Handle<AnyHostKey>,
        user: &str,
        key: Arc<PrivateKey>,
    ) -> SftpClient {
        let result = step(
            "SSH publickey",
            ssh.authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None)),
        )
        .await
        .expect("SSH authentication");
        assert!(result.success(), "key login of {user}: {result:?}");
        SftpClient::on(ssh).await
    }

    /// Logs `user` in with the test password.
    pub async fn login_password(server: SocketAddr, user: &str) -> SftpClient {
        let mut ssh = connect(server).await;
        let result = step("SSH password", ssh.authenticate_password(user, TEST_PASSWORD))
            .await
            .expect("SSH authentication");
        assert!(result.success(), "password login of {user}: {result:?}");
        SftpClient::on(ssh).await
    }

    async fn on(ssh: Handle<AnyHostKey>) -> SftpClient {
        let channel = step("SSH channel", ssh.channel_open_session()).await.expect("channel");
        step("sftp subsystem", channel.request_subsystem(true, "sftp")).await.expect("subsystem");
        let sftp =
            step("sftp init", SftpSession::new(channel.into_stream())).await.expect("sftp init");
        sftp.set_timeout(REQUEST_TIMEOUT_SECS);
        let channel = step("SSH channel", ssh.channel_open_session()).await.expect("channel");
        step("sftp subsystem", channel.request_subsystem(true, "sftp")).await.expect("subsystem");
        let raw = RawSftpSession::new(channel.into_stream());
        raw.set_timeout(REQUEST_TIMEOUT_SECS);
        step("raw sftp init", raw.init()).await.expect("raw sftp init");
        SftpClient { ssh, sftp, raw }
    }

    /// Opens `path` for writing (create, truncate: a whole-file upload) and writes `data`.
    pub async fn upload(&self, path: &str, data: &[u8]) -> Result<(), Refusal> {
        let mut file = step("sftp create", self.sftp.create(path)).await.map_err(refusal)?;
        let io = |err: std::io::Error| Refusal::Failed(err.to_string());
        step("sftp write", file.write_all(data)).await.map_err(io)?;
        step("sftp close", file.shutdown()).await.map_err(io)?;
        Ok(())
    }

    /// Reads `path` to its end.
    pub async fn download(&self, path: &str) -> Result<Vec<u8>, Refusal> {
        let mut file = step("sftp open", self.sftp.open(path)).await.map_err(refusal)?;
        let mut content = Vec::new();
        step("sftp read", file.read_to_end(&mut content))
            .await
            .map_err(|err| Refusal::Failed(err.to_string()))?;
        step("sftp close", file.shutdown())
            .await
            .map_err(|err| Refusal::Failed(err.to_string()))?;
        Ok(content)
    }

    /// Lists `dir`.
    pub async fn list(&self, dir: &str) -> Result<Vec<Entry>, Refusal> {
        let entries = step("sftp readdir", self.sftp.read_dir(dir)).await.map_err(refusal)?;
        Ok(entries
            .map(|entry| {
                let meta = entry.metadata();
                Entry { name: entry.file_name(), size: meta.size, is_dir: meta.is_dir() }
            })
            .filter(|entry| entry.name != "." && entry.name != "..")
            .collect())
    }

    /// The names a listing of `dir` shows.
    pub async fn names(&self, dir: &str) -> Result<Vec<String>, Refusal> {
        Ok(self.list(dir).await?.into_iter().map(|entry| entry.name).collect())
    }

    /// `posix-rename@openssh.com`: a rename that replaces the target.
    pub async fn posix_rename(&self, from: &str, to: &str) -> Result<(), Refusal> {
        let mut data = Vec::new();
        for path in [from, to] {
            data.extend_from_slice(&(path.len() as u32).to_be_bytes());
            data.extend_from_slice(path.as_bytes());
        }
        let answer = step("posix-rename", self.raw.extended("posix-rename@openssh.com", data))
            .await
            .map_err(refusal)?;
        match answer {
            Packet::Status(status) if status.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(status) => Err(Refusal::Sftp {
                status: status.status_code as u32,
                message: status.error_message,
            }),
            other => Err(Refusal::Failed(format!("unexpected answer {other:?}"))),
        }
    }

    /// The SSH connection, to drop it abruptly or open more channels.
    pub fn ssh(&self) -> &Handle<AnyHostKey> {
        &self.ssh
    }

    /// Ends the SFTP sessions and disconnects.
    pub async fn close(self) {
        let _ = step("sftp close", self.sftp.close()).await;
        let _ =
            step("SSH disconnect", self.ssh.disconnect(russh::Disconnect::ByApplication, "", "en"))
                .await;
    }
}
