//! What the TFTP end-to-end tests share: a server on a loopback port over a scratch share,
//! and a small TFTP client ([`client`]) whose behaviour the tests control packet by packet.
#![allow(dead_code)]

pub mod client;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use wharf_testkit::{TestShare, run_bounded};
use wharf_tftp::{AccessRule, OverCap, TftpConfig, TftpServer};

/// Users of most tests. `devices` reads everything under its home `tftp`, may create files in
/// `/incoming` and create or replace them in `/public`; `other` sees only `other-home`.
pub const USERS: &str = r#"
users:
  - name: devices
    passwordless: true
    protocols: [tftp]
    home: tftp
    permissions:
      /: [read]
      /incoming: [read, upload]
      /public: [read, upload, overwrite]
  - name: other
    passwordless: true
    protocols: [tftp]
    home: other-home
    permissions:
      /: [read]
"#;

/// A rule mapping `network` onto `identity`.
pub fn rule(network: &str, identity: &str) -> AccessRule {
    AccessRule { network: network.parse().expect("network"), identity: identity.to_owned() }
}

/// The configuration of most tests: loopback clients act as `devices`, retransmissions after
/// 200 ms so lost packets cost little time. Requests over a cap are refused with the reason,
/// which the cap tests of `safety.rs` look for; `load.rs` tests the default, waiting.
pub fn config() -> TftpConfig {
    TftpConfig {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        rules: vec![rule("127.0.0.0/8", "devices"), rule("::1/128", "devices")],
        timeout: Duration::from_millis(200),
        over_cap: OverCap::Refuse,
        ..TftpConfig::default()
    }
}

/// A running server over a scratch share.
pub struct TestServer {
    /// The share and its gateway.
    pub share: TestShare,
    /// The first listening address.
    pub addr: SocketAddr,
    /// The server's `run`, until [`TestServer::listeners_closed`] or [`TestServer::stop`]
    /// waits for it.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with `users` and `config`.
    pub async fn start(users: &str, config: TftpConfig) -> TestServer {
        let share = TestShare::new(users);
        let server = TftpServer::bind(config, share.gateway.clone()).await.expect("bind");
        let addr = server.local_addrs()[0];
        let task = Some(tokio::spawn(server.run()));
        TestServer { share, addr, task }
    }

    /// Starts the usual server ([`USERS`], [`config`]) with the folders `devices` writes to.
    pub async fn usual() -> TestServer {
        Self::with_config(config()).await
    }

    /// Starts a server with [`USERS`], `config` and the folders `devices` writes to.
    pub async fn with_config(config: TftpConfig) -> TestServer {
        let server = Self::start(USERS, config).await;
        for dir in ["incoming", "public"] {
            std::fs::create_dir_all(server.share.root.join("tftp").join(dir)).expect("mkdir");
        }
        server
    }

    /// Writes `content` at `relative` inside the `devices` home.
    pub fn put(&self, relative: &str, content: &[u8]) {
        self.share.put(&format!("tftp/{relative}"), content);
    }

    /// The content of `relative` inside the `devices` home.
    pub fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.share.root.join("tftp").join(relative)).expect("file in share")
    }

    /// Whether `relative` exists inside the `devices` home.
    pub fn exists(&self, relative: &str) -> bool {
        self.share.root.join("tftp").join(relative).exists()
    }

    /// The share's root directory.
    pub fn root(&self) -> &Path {
        &self.share.root
    }

    /// Shuts the server down and waits for it.
    pub async fn stop(mut self) {
        let clean = self.share.gateway.shutdown.shut_down(Duration::from_secs(5)).await;
        assert!(clean, "transfers still running at shutdown");
        self.listeners_closed().await;
    }

    /// Waits (at most 5 s) for `run` to return, which it does once draining has started and
    /// every listening socket is closed; transfers in progress go on.
    pub async fn listeners_closed(&mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("server stops listening when draining")
                .expect("server task");
        }
    }
}

/// Runs `test` and fails it if it takes longer than `secs` seconds.
pub async fn bounded<F: Future>(secs: u64, test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test exceeded {secs} s"))
}

/// Runs a real client to completion (at most `secs` seconds) off the async threads, so the
/// server keeps running meanwhile.
pub async fn run_client(mut command: Command, secs: u64) -> std::process::Output {
    tokio::task::spawn_blocking(move || run_bounded(&mut command, Duration::from_secs(secs)))
        .await
        .expect("client thread")
}

/// A real client's stdout and stderr, for assertions (tftp-hpa reports errors there and
/// exits 0).
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// atftp moving `remote` (`-g` get, `-p` put) to or from `local`, asking for `options` such
/// as `blksize 1468`.
pub fn atftp(
    atftp: &Path,
    server: &TestServer,
    options: &[&str],
    direction: &str,
    remote: &str,
    local: &Path,
) -> Command {
    let mut cmd = Command::new(atftp);
    for option in options {
        cmd.args(["--option", option]);
    }
    cmd.args([direction, "-r", remote, "-l"])
        .arg(local)
        .args(["127.0.0.1", &server.addr.port().to_string()]);
    cmd
}
