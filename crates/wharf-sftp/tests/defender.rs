//! The shared defender: wrong SSH passwords and hostile paths score the address, and a banned
//! address is refused at accept.

mod common;

use std::time::Duration;

use common::{Server, bounded, connect, login_password, raw_sftp};
use tokio::io::AsyncReadExt as _;
use wharf_access::DefenderConfig;

const USERS: &str = "users:\n  - name: alice\n    password: \"$HASH\"\n    home: alice\n";

/// Whether a new TCP connection is closed before the server's identification line.
async fn refused_at_accept(server: &Server) -> bool {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    matches!(read, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn wrong_passwords_ban_the_address() {
    bounded(async {
        let server = Server::start(USERS).await;
        server
            .share
            .gateway
            .defender()
            .reconfigure(DefenderConfig { threshold: 6, ..DefenderConfig::default() });
        for attempt in 0..3 {
            let mut handle = connect(server.addr).await;
            let result =
                handle.authenticate_password("alice", "guess").await.expect("auth exchange");
            assert!(!result.success(), "attempt {attempt}");
        }
        assert!(refused_at_accept(&server).await, "three failures (2 points each) reach 6");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hostile_paths_score_the_address() {
    bounded(async {
        let server = Server::start(USERS).await;
        server
            .share
            .gateway
            .defender()
            .reconfigure(DefenderConfig { threshold: 6, ..DefenderConfig::default() });
        let handle = login_password(server.addr, "alice").await;
        let sftp = raw_sftp(&handle).await;
        for _ in 0..3 {
            assert!(sftp.stat("bad\u{1}name").await.is_err());
        }
        assert!(refused_at_accept(&server).await, "three control characters in paths reach 6");
        server.stop().await;
    })
    .await;
}
