//! The shared defender: wrong SSH passwords and hostile paths score the address, and a banned
//! address is refused at accept.

mod common;

use std::time::Duration;

use common::{
    Server, bounded, connect, framed, login_password, raw_sftp, read_packet, sftp_stream,
};
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

/// A server whose defender bans an address at `threshold` points.
async fn server_banning_at(threshold: u32) -> Server {
    let server = Server::start(USERS).await;
    let config = DefenderConfig { threshold, ..DefenderConfig::default() };
    server.share.gateway.defender().reconfigure(config);
    server
}

#[tokio::test]
async fn wrong_passwords_ban_the_address() {
    bounded(async {
        let server = server_banning_at(6).await;
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
        let server = server_banning_at(6).await;
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

#[tokio::test]
async fn names_the_storage_cannot_take_are_not_offenses() {
    bounded(async {
        let server = server_banning_at(2).await;
        let handle = login_password(server.addr, "alice").await;
        let sftp = raw_sftp(&handle).await;
        let long_name = "n".repeat(300);
        let long_path = "d/".repeat(2100);
        for _ in 0..3 {
            assert!(sftp.stat(long_name.as_str()).await.is_err(), "a name over 255 bytes");
            assert!(sftp.stat(long_path.as_str()).await.is_err(), "a path over 4096 bytes");
        }
        assert!(!refused_at_accept(&server).await, "refused, not scored");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_score_the_address_unknown_extensions_do_not() {
    bounded(async {
        use tokio::io::AsyncWriteExt as _;
        let server = server_banning_at(2).await;
        let ssh = login_password(server.addr, "alice").await;
        let mut stream = sftp_stream(&ssh).await;
        stream.write_all(&framed(&[1, 0, 0, 0, 3])).await.expect("init");
        read_packet(&mut stream).await;
        // Request types the server does not know: a client probing for extensions.
        for id in 0..3u8 {
            stream.write_all(&framed(&[99, 0, 0, 0, id])).await.expect("unknown type");
            assert_eq!(read_packet(&mut stream).await[0], 101, "answered with a status");
        }
        assert!(!refused_at_accept(&server).await, "unknown types are not offenses");
        // WRITE requests cut short: malformed, one point each.
        for id in 10..12u8 {
            let truncated = [6, 0, 0, 0, id, 0, 0, 0, 1, b'1', 0];
            stream.write_all(&framed(&truncated)).await.expect("truncated write");
            assert_eq!(read_packet(&mut stream).await[0], 101, "answered with a status");
        }
        assert!(refused_at_accept(&server).await, "two malformed requests reach 2");
        server.stop().await;
    })
    .await;
}
