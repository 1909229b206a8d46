//! Explicit FTPS (`AUTH TLS` on the FTP listener) with a Rust client (suppaftp over rustls)
//! and at the protocol level: byte-exact transfers over protected data connections in every
//! data mode, listings, and the policies of listeners and users.

mod common;

use std::time::Duration;

use common::{Control, TestServer, bounded, read_all, tls_connect};
use suppaftp::tokio::AsyncRustlsFtpStream;
use suppaftp::types::Mode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use wharf_ftps::{ControlProtection, DataProtection, ExplicitTls, ListenerKind};
use wharf_testkit::pattern;

/// Uploads `content` as `name`, checks the stored file, downloads it back and compares.
async fn round_trip(
    server: &TestServer,
    ftp: &mut AsyncRustlsFtpStream,
    home: &str,
    name: &str,
    content: &[u8],
) {
    let mut reader = content;
    let sent = bounded("put", ftp.put_file(name, &mut reader)).await.expect("upload");
    assert_eq!(sent, content.len() as u64);
    let stored = std::fs::read(server.share.root.join(home).join(name)).expect("stored");
    assert!(stored == content, "{name}: upload is byte-exact ({} bytes)", content.len());
    let mut download = bounded("retr", ftp.retr_as_stream(name)).await.expect("download");
    let mut received = Vec::new();
    bounded("read", download.read_to_end(&mut received)).await.expect("read");
    bounded("finish", download.finish()).await.expect("226");
    assert!(received == content, "{name}: download is byte-exact ({} bytes)", content.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppaftp_transfers_and_lists_in_every_data_mode() {
    common::whole_test(async {
        let server = TestServer::start().await;
        let mut ftp = server.suppa_explicit("alice").await;
        for size in [0, 1024 * 1024] {
            round_trip(&server, &mut ftp, "alice", &format!("pasv-{size}.bin"), &pattern(size))
                .await;
        }
        ftp.set_mode(Mode::ExtendedPassive);
        for size in [0, 1024 * 1024] {
            round_trip(&server, &mut ftp, "alice", &format!("epsv-{size}.bin"), &pattern(size))
                .await;
        }
        // Listings travel over protected data connections too.
        let mut names = bounded("NLST", ftp.nlst(None)).await.expect("NLST");
        names.sort();
        assert_eq!(names, ["epsv-0.bin", "epsv-1048576.bin", "pasv-0.bin", "pasv-1048576.bin"]);
        let long = bounded("LIST", ftp.list(None)).await.expect("LIST");
        assert!(long.iter().any(|line| line.ends_with(" epsv-1048576.bin")), "{long:?}");
        let facts = bounded("MLSD", ftp.mlsd(None)).await.expect("MLSD");
        assert!(facts.iter().any(|line| line.contains("size=1048576;")), "{facts:?}");
        bounded("quit", ftp.quit()).await.expect("QUIT");

        // Active mode: the server connects to the client and is still the TLS server.
        let mut active = server.suppa_explicit("alice").await.active_mode(Duration::from_secs(10));
        for size in [0, 1024 * 1024] {
            round_trip(&server, &mut active, "alice", &format!("port-{size}.bin"), &pattern(size))
                .await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mebibytes_both_ways() {
    common::whole_test(async {
        let server = TestServer::start().await;
        let mut ftp = server.suppa_explicit("alice").await;
        ftp.set_mode(Mode::ExtendedPassive);
        round_trip(&server, &mut ftp, "alice", "big.bin", &pattern(100 * 1024 * 1024)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_must_use_tls_is_refused_before_the_password() {
    common::whole_test(async {
        let server = TestServer::start().await;
        server.share.put("secure/report.pdf", b"confidential");
        let mut plain = server.control().await;
        let feat = plain.expect("FEAT", 211).await;
        for feature in [" AUTH TLS", " PBSZ", " PROT"] {
            assert!(feat.lines.iter().any(|line| line == feature), "{feat:?}");
        }
        let refusal = plain.expect("USER secure", 530).await;
        assert!(refusal.text().contains("requires a TLS-protected connection"), "{refusal:?}");
        // The password is never asked for, so a client sending it gets no login.
        plain.expect(&format!("PASS {}", wharf_testkit::TEST_PASSWORD), 503).await;

        let config = server.client_config();
        let mut secure = plain.auth_tls(&config).await;
        secure.login("secure").await;
        let status = secure.expect("STAT", 211).await;
        assert!(status.text().contains("Control connection: TLS"), "{status:?}");
        // The user's data must be protected too.
        secure.epsv(server.ftp.ip()).await;
        secure.expect("RETR report.pdf", 521).await;
        secure.expect("PBSZ 0", 200).await;
        secure.expect("PROT C", 534).await;
        secure.expect("PROT P", 200).await;
        let data_addr = secure.epsv(server.ftp.ip()).await;
        let tcp = bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
        secure.expect("RETR report.pdf", 150).await;
        let data = bounded("handshake", tls_connect(&config, tcp)).await.expect("data TLS");
        let bytes = bounded("read", read_all(data)).await.expect("read");
        assert_eq!(bytes, b"confidential");
        assert_eq!(secure.reply().await.expect("226").code, 226);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_must_protect_data_cannot_transfer_in_the_clear() {
    common::whole_test(async {
        let server = TestServer::start().await;
        server.share.put("alice/notes.txt", b"notes");
        let mut plain = server.control().await;
        plain.login("datasafe").await;
        plain.epsv(server.ftp.ip()).await;
        let refusal = plain.expect("RETR notes.txt", 521).await;
        assert!(refusal.text().contains("PROT P"), "{refusal:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_can_require_tls_for_control_and_data() {
    common::whole_test(async {
        let server = TestServer::start_with(
            |ftps| {
                ftps.explicit = ExplicitTls {
                    control: ControlProtection::Required,
                    data: DataProtection::Required,
                }
            },
            |_| {},
        )
        .await;
        server.share.put("alice/f.txt", b"x");
        let mut plain = server.control().await;
        let refusal = plain.expect("USER alice", 530).await;
        assert!(refusal.text().contains("requires TLS"), "{refusal:?}");
        let mut secure = plain.auth_tls(&server.client_config()).await;
        secure.login("alice").await;
        secure.epsv(server.ftp.ip()).await;
        secure.expect("LIST", 521).await;
        secure.expect("PBSZ 0", 200).await;
        secure.expect("PROT C", 534).await;
        secure.expect("CCC", 534).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_tls_can_be_off_while_implicit_is_served() {
    common::whole_test(async {
        let server =
            TestServer::start_with(|ftps| ftps.explicit.control = ControlProtection::Off, |_| {})
                .await;
        let mut plain: Control<TcpStream> = server.control().await;
        let feat = plain.expect("FEAT", 211).await;
        assert!(!feat.lines.iter().any(|line| line.contains("AUTH")), "{feat:?}");
        plain.expect("AUTH TLS", 502).await;
        plain.login("alice").await;

        let mut implicit = server.suppa_implicit("alice").await;
        round_trip(&server, &mut implicit, "alice", "implicit.bin", &pattern(70_000)).await;
    })
    .await
}

#[test]
fn listeners_are_reported_with_their_kind() {
    let share = wharf_testkit::TestShare::new(common::USERS);
    let dir = share.tmp.path().join("tls");
    let bind = |control| {
        let mut ftps = common::test_ftps_config(dir.clone());
        ftps.explicit.control = control;
        wharf_ftps::FtpsServer::bind(ftps, common::test_ftp_config(), share.gateway.clone())
            .expect("bind")
    };
    let server = bind(ControlProtection::Optional);
    let kinds: Vec<_> = server.local_addrs().iter().map(|listener| listener.kind).collect();
    assert_eq!(kinds, [ListenerKind::Explicit, ListenerKind::Implicit]);
    assert_eq!(server.local_addrs()[0].addr, server.ftp_addrs()[0]);
    assert_eq!(server.local_addrs()[1].addr, server.implicit_addrs()[0]);
    assert_ne!(server.implicit_addrs()[0].port(), 0);
    let server = bind(ControlProtection::Off);
    let kinds: Vec<_> = server.local_addrs().iter().map(|listener| listener.kind).collect();
    assert_eq!(kinds, [ListenerKind::PlainOnly, ListenerKind::Implicit]);
}
