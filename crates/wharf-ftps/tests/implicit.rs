//! Implicit FTPS: TLS from the first byte, sessions that start with protected data, and
//! connections that never complete a handshake.

mod common;

use std::time::Duration;

use common::{Control, TestServer, bounded, read_all, tls_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_ftps::DataProtection;
use wharf_testkit::pattern;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppaftp_transfers_and_lists_over_implicit_tls() {
    common::whole_test(async {
        let server = TestServer::start().await;
        let mut ftp = server.suppa_implicit("alice").await;
        for size in [0usize, 1024 * 1024] {
            let content = pattern(size);
            let name = format!("implicit-{size}.bin");
            let mut reader = content.as_slice();
            bounded("put", ftp.put_file(&name, &mut reader)).await.expect("upload");
            let stored = std::fs::read(server.share.root.join("alice").join(&name)).expect("file");
            assert!(stored == content, "upload of {size} bytes is byte-exact");
            let mut download = bounded("retr", ftp.retr_as_stream(&name)).await.expect("RETR");
            let mut received = Vec::new();
            bounded("read", download.read_to_end(&mut received)).await.expect("read");
            bounded("finish", download.finish()).await.expect("226");
            assert!(received == content, "download of {size} bytes is byte-exact");
        }
        let mut names = bounded("NLST", ftp.nlst(None)).await.expect("NLST");
        names.sort();
        assert_eq!(names, ["implicit-0.bin", "implicit-1048576.bin"]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_sessions_start_with_protected_data() {
    common::whole_test(async {
        let server = TestServer::start().await;
        server.share.put("alice/f.txt", b"implicit");
        let config = server.client_config();
        let mut control = Control::implicit(server.implicit, &config).await;
        control.expect("AUTH TLS", 503).await;
        control.login("alice").await;
        // No PBSZ or PROT was sent: data connections are protected already, and must be.
        control.expect("PROT C", 534).await;
        let data_addr = control.epsv(server.implicit.ip()).await;
        let tcp = bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
        control.expect("RETR f.txt", 150).await;
        let data = bounded("handshake", tls_connect(&config, tcp)).await.expect("data TLS");
        assert_eq!(data.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        assert_eq!(bounded("read", read_all(data)).await.expect("read"), b"implicit");
        assert_eq!(control.reply().await.expect("226").code, 226);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_data_protection_can_be_optional() {
    common::whole_test(async {
        let server =
            TestServer::start_with(|ftps| ftps.implicit_data = DataProtection::Optional, |_| {})
                .await;
        server.share.put("alice/f.txt", b"in the clear");
        let mut control = Control::implicit(server.implicit, &server.client_config()).await;
        control.login("alice").await;
        control.expect("PROT C", 200).await;
        let data_addr = control.epsv(server.implicit.ip()).await;
        let tcp = bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
        control.expect("RETR f.txt", 150).await;
        assert_eq!(bounded("read", read_all(tcp)).await.expect("read"), b"in the clear");
        assert_eq!(control.reply().await.expect("226").code, 226);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_speak_tls_are_cut_off() {
    common::whole_test(async {
        let server =
            TestServer::start_with(|_| {}, |ftp| ftp.login_timeout = Duration::from_millis(300))
                .await;
        // Plain FTP on the implicit port: no greeting, the connection is closed.
        let mut plain = bounded("connect", TcpStream::connect(server.implicit)).await.expect("tcp");
        bounded("send", plain.write_all(b"USER alice\r\n")).await.expect("send");
        let mut answer = Vec::new();
        let _ = bounded("read", plain.read_to_end(&mut answer)).await;
        assert!(!answer.starts_with(b"220"), "no plaintext greeting: {answer:?}");

        // A client that never starts the handshake is closed after the login timeout.
        let mut silent =
            bounded("connect", TcpStream::connect(server.implicit)).await.expect("tcp");
        let mut byte = [0u8; 1];
        let closed = bounded("close", silent.read(&mut byte)).await;
        assert!(matches!(closed, Ok(0) | Err(_)), "closed without a byte: {closed:?}");

        // Others are still served.
        let mut control = Control::implicit(server.implicit, &server.client_config()).await;
        control.login("alice").await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_address_gets_no_handshake() {
    common::whole_test(async {
        let server = TestServer::start().await;
        let defender = server.share.gateway.defender();
        defender.reconfigure(wharf_access::DefenderConfig { threshold: 1, ..Default::default() });
        defender.report("127.0.0.1".parse().expect("ip"), wharf_access::Offense::BounceAttempt);
        // The connection is closed before the server sends a byte of its handshake.
        let config = server.client_config();
        let tcp = bounded("connect", TcpStream::connect(server.implicit)).await.expect("tcp");
        let refused = bounded("handshake", tls_connect(&config, tcp)).await;
        assert!(refused.is_err(), "a banned address completed a TLS handshake");
        let mut raw = bounded("connect", TcpStream::connect(server.implicit)).await.expect("tcp");
        let mut answer = Vec::new();
        let _ = bounded("read", raw.read_to_end(&mut answer)).await;
        assert!(answer.is_empty(), "nothing sent to a banned address: {answer:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_accept_without_a_handshake() {
    common::whole_test(async {
        const CAP: usize = 3;
        let server = TestServer::start_with(
            |_| {},
            |ftp| {
                ftp.limits = wharf_access::SessionLimits {
                    max_sessions: 100,
                    max_sessions_per_address: CAP,
                };
                // Longer than the test: a connection still waiting for its handshake is not
                // closed by the timeout while the test runs.
                ftp.login_timeout = Duration::from_secs(600);
            },
        )
        .await;
        // CAP idle connections that never start a handshake hold every place of the address.
        let mut idle = Vec::new();
        for _ in 0..CAP {
            idle.push(bounded("connect", TcpStream::connect(server.implicit)).await.expect("tcp"));
        }
        // The next one is closed at once: end of stream, not a byte of a handshake.
        let mut over = bounded("connect", TcpStream::connect(server.implicit)).await.expect("tcp");
        let mut answer = Vec::new();
        bounded("closed at accept", over.read_to_end(&mut answer)).await.expect("EOF");
        assert!(answer.is_empty(), "nothing sent over the cap: {answer:?}");
        // The caps are the FTP listeners' too.
        let mut plain = bounded("connect", TcpStream::connect(server.ftp)).await.expect("tcp");
        let mut refusal = String::new();
        bounded("421", plain.read_to_string(&mut refusal)).await.expect("read");
        assert!(refusal.starts_with("421 too many sessions from your address"), "{refusal:?}");
        // A connection that ends gives its place back (once its task has seen the end).
        drop(idle.pop());
        let config = server.client_config();
        let mut served = false;
        for _ in 0..100 {
            let tcp = bounded("connect", TcpStream::connect(server.implicit)).await.expect("tcp");
            if bounded("handshake", tls_connect(&config, tcp)).await.is_ok() {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served, "a handshake is served once a place is free");
    })
    .await
}
