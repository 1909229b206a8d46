//! The shared defender: FTP reports bounce attempts and control bytes in paths (and, through
//! the shared login, failed logins a successful login of the same user does not forgive), not
//! the mistakes legitimate clients make; it refuses banned addresses at accept.

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
async fn control_bytes_in_paths_count_unknown_commands_do_not() {
    within_test_limit(async {
        let server = TestServer::start().await;
        server.share.gateway.defender().reconfigure(strict());
        let mut client = server.login("alice").await;
        // Commands the server does not know, with any argument: answered, not scored.
        for _ in 0..20 {
            client.expect("XYZZY", 500).await;
            client.expect("SITE EXEC ls", 501).await;
            client.expect("TYPE X", 501).await;
        }
        assert!(!refused_at_accept(&server).await, "nothing scored so far");
        // A control byte in a path: 2 points each.
        client.send_raw(b"CWD a\x01b\r\n").await;
        assert_eq!(client.reply().await.map(|r| r.code), Some(553));
        assert!(!refused_at_accept(&server).await, "2 points so far");
        for _ in 0..4 {
            client.send_raw(b"MKD x\x7fy\r\n").await;
            let _ = client.reply().await;
        }
        assert!(refused_at_accept(&server).await, "10 points: banned");
        // The ban applies to every protocol through the shared defender.
        assert!(
            !server.share.gateway.defender().verdict("127.0.0.1".parse().expect("ip")).is_allowed()
        );
    })
    .await;
}

/// One address for many legitimate clients (a NAT), each making the mistakes such clients
/// make, is not banned; the same address guessing passwords is.
#[tokio::test]
async fn a_nat_of_clumsy_clients_is_not_banned_a_password_guesser_is() {
    within_test_limit(async {
        let server = TestServer::start().await;
        let defaults = DefenderConfig::default();
        server.share.gateway.defender().reconfigure(defaults.clone());
        // Each session alone scored 8 points before (a failed login 2, an unknown command 1,
        // an unknown SITE subcommand 1, two names that are not UTF-8 2 each): two sessions
        // would have banned the address at the default threshold of 15.
        for session in 0..10 {
            let mut client = RawClient::connect(server.addr).await;
            client.expect("USER alice", 331).await;
            client.expect("PASS mistyped", 530).await;
            client.login("alice").await;
            client.expect("CLNT SomeClient 1.0", 500).await;
            client.expect("SITE UTIME 20240101000000 f.txt", 501).await;
            // A Latin-1 name, as older clients send them.
            client.send_raw(b"MKD caf\xe9\r\n").await;
            assert_eq!(client.reply().await.map(|r| r.code), Some(553), "session {session}");
            client.send_raw(b"CWD r\xe9sum\xe9s\r\n").await;
            assert_eq!(client.reply().await.map(|r| r.code), Some(553), "session {session}");
            client.expect("QUIT", 221).await;
        }
        assert!(!refused_at_accept(&server).await, "ten clumsy clients behind one address");
        // Guessing: wrong passwords only, three per session (the session cap), from the same
        // address. 2 points each; the eighth failure reaches 15.
        let failures_to_ban = defaults.threshold.div_ceil(defaults.scores.login_failed);
        let mut failures = 0;
        while failures < failures_to_ban {
            let mut client = RawClient::connect(server.addr).await;
            for _ in 0..3 {
                if failures == failures_to_ban {
                    break;
                }
                client.expect("USER alice", 331).await;
                client.expect("PASS guess", 530).await;
                failures += 1;
            }
        }
        assert!(refused_at_accept(&server).await, "a password-guessing flood is banned");
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
