//! The shared defender: FTP reports bounce attempts, hostile paths and protocol errors, and
//! refuses banned addresses at accept.

mod common;

use std::time::Duration;

use common::{RawClient, TestServer, bounded, within_test_limit};
use tokio::io::AsyncReadExt as _;
use wharf_access::{DefenderConfig, Offense};

fn strict() -> DefenderConfig {
    DefenderConfig { threshold: 10, ..DefenderConfig::default() }
}

/// Whether a new connection from loopback is closed without a greeting.
async fn refused_at_accept(server: &TestServer) -> bool {
    let mut stream =
        bounded("connect", tokio::net::TcpStream::connect(server.addr)).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    matches!(read, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn bounce_attempts_ban_the_address() {
    within_test_limit(async {
        let server = TestServer::start().await;
        server.share.gateway.defender().reconfigure(strict());
        let mut client = server.login("alice").await;
        client.expect("PORT 192,0,2,7,200,10", 504).await;
        assert!(!refused_at_accept(&server).await, "one bounce attempt is not enough");
        client.expect("EPRT |1|192.0.2.7|51210|", 504).await;
        assert!(refused_at_accept(&server).await, "two bounce attempts (5 each) reach 10");
    })
    .await;
}

#[tokio::test]
async fn hostile_paths_and_garbage_count_too() {
    within_test_limit(async {
        let server = TestServer::start().await;
        server.share.gateway.defender().reconfigure(strict());
        let mut client = server.login("alice").await;
        // A control byte in a path (2 points each) and unknown commands (1 point each).
        client.send_raw(b"CWD a\x01b\r\n").await;
        assert_eq!(client.reply().await.map(|r| r.code), Some(553));
        for _ in 0..3 {
            client.expect("XYZZY", 500).await;
        }
        assert!(!refused_at_accept(&server).await, "5 points so far");
        for _ in 0..3 {
            client.send_raw(b"MKD x\x7fy\r\n").await;
            let _ = client.reply().await;
        }
        assert!(refused_at_accept(&server).await, "11 points: banned");
        // The ban applies to every protocol through the shared defender.
        assert!(
            !server.share.gateway.defender().verdict("127.0.0.1".parse().expect("ip")).is_allowed()
        );
    })
    .await;
}

#[tokio::test]
async fn allow_listed_addresses_are_never_banned() {
    within_test_limit(async {
        let server = TestServer::start().await;
        server.share.gateway.defender().reconfigure(DefenderConfig {
            allow: vec!["127.0.0.0/8".parse().expect("net")],
            ..strict()
        });
        for _ in 0..20 {
            server
                .share
                .gateway
                .defender()
                .report("127.0.0.1".parse().expect("ip"), Offense::BounceAttempt);
        }
        let mut client = RawClient::connect(server.addr).await;
        client.login("alice").await;
    })
    .await;
}
