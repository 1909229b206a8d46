//! The seam `wharf-ftps` plugs into, exercised with a pass-through provider: the session must
//! call it at the right moments, refuse what policy refuses, and log users in as FTPS once
//! the control connection is "secure". No real TLS here: that is `wharf-ftps`'s to test.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::{RawClient, TestServer};
use tokio::net::TcpStream;
use wharf_ftp::{
    BoxedStream, ControlConnection, DataDirection, FtpTls, FtpTlsConnection, TlsPolicy, TlsSetup,
};
use wharf_testkit::{TEST_PASSWORD, pattern};

#[derive(Default)]
struct Calls {
    connections: AtomicUsize,
    control: AtomicUsize,
    data: AtomicUsize,
    directions: std::sync::Mutex<Vec<DataDirection>>,
}

/// Hands streams back unchanged and counts the calls.
struct PassThrough(Arc<Calls>);

impl FtpTls for PassThrough {
    fn connection(&self) -> Arc<dyn FtpTlsConnection> {
        self.0.connections.fetch_add(1, Ordering::SeqCst);
        Arc::new(PassThroughConnection(self.0.clone()))
    }
}

struct PassThroughConnection(Arc<Calls>);

#[async_trait]
impl FtpTlsConnection for PassThroughConnection {
    async fn secure_control(&self, stream: BoxedStream) -> io::Result<BoxedStream> {
        self.0.control.fetch_add(1, Ordering::SeqCst);
        Ok(stream)
    }

    async fn secure_data(
        &self,
        stream: TcpStream,
        direction: DataDirection,
    ) -> io::Result<BoxedStream> {
        self.0.data.fetch_add(1, Ordering::SeqCst);
        self.0.directions.lock().expect("directions").push(direction);
        Ok(Box::new(stream))
    }
}

fn setup(policy: TlsPolicy) -> (TlsSetup, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    (TlsSetup { provider: Arc::new(PassThrough(calls.clone())), policy }, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_tls_commands_are_refused() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut client = RawClient::connect(server.addr).await;
        for command in ["AUTH TLS", "PBSZ 0", "PROT P", "CCC"] {
            client.expect(command, 502).await;
        }
        // A user who must use TLS is refused at USER, before any password is sent, and the
        // refusal does not leave an earlier USER waiting for its password.
        client.expect("USER alice", 331).await;
        let reply = client.expect("USER secure", 530).await;
        assert!(reply.text().contains("requires a TLS-protected connection"), "{reply:?}");
        client.expect(&format!("PASS {TEST_PASSWORD}"), 503).await;
        client.login("alice").await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tls_then_protected_transfers() {
    common::within_test_limit(async {
        let (tls, calls) = setup(TlsPolicy::default());
        let server = TestServer::start_with(common::USERS, |_| {}, Some(tls)).await;
        let content = pattern(3 * 1024 * 1024 + 17);
        server.share.put("secure/file.bin", &content);
        let mut client = RawClient::connect(server.addr).await;
        let feat = client.expect("FEAT", 211).await;
        for feature in [" AUTH TLS", " PBSZ", " PROT"] {
            assert!(feat.lines.iter().any(|l| l == feature), "{feat:?}");
        }
        client.expect("PBSZ 0", 503).await;
        client.expect("PROT P", 503).await;
        client.expect("USER secure", 530).await;
        client.expect("AUTH GSSAPI", 504).await;
        client.expect("AUTH TLS", 234).await;
        assert_eq!(calls.control.load(Ordering::SeqCst), 1);
        client.expect("AUTH TLS", 503).await;
        client.expect("PROT P", 503).await;
        client.login("secure").await;
        // The user requires protected data: transfers in the clear are refused.
        client.epsv().await;
        client.expect("RETR file.bin", 521).await;
        client.expect("PBSZ 0", 200).await;
        client.expect("PROT C", 534).await;
        client.expect("PROT S", 536).await;
        client.expect("PROT P", 200).await;
        let (got, done) = client.download("RETR file.bin").await;
        assert_eq!(done.code, 226);
        assert!(got == content, "protected (buffered) download is byte-exact");
        let done = client.upload("STOR back.bin", &content).await;
        assert_eq!(done.code, 226);
        assert!(
            std::fs::read(server.share.root.join("secure/back.bin")).expect("stored") == content
        );
        let (listing, _) = client.download("NLST").await;
        assert!(String::from_utf8_lossy(&listing).contains("back.bin"));
        assert_eq!(calls.data.load(Ordering::SeqCst), 3, "every data connection went through TLS");
        assert_eq!(
            *calls.directions.lock().expect("directions"),
            [DataDirection::ToClient, DataDirection::FromClient, DataDirection::ToClient],
            "the provider learns which way each data connection's bytes flow"
        );
        client.expect("CCC", 534).await;
        let status = client.expect("STAT", 211).await;
        assert!(
            status.text().contains("Control connection: TLS; data connections: TLS"),
            "{status:?}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_pipelined_after_auth_is_discarded() {
    common::within_test_limit(async {
        let (tls, _) = setup(TlsPolicy::default());
        let server = TestServer::start_with(common::USERS, |_| {}, Some(tls)).await;
        let mut client = RawClient::connect(server.addr).await;
        // A man in the middle appends a command after AUTH in the same packet: it must not run
        // as if it had come over the protected channel.
        client
            .send_raw(format!("AUTH TLS\r\nUSER alice\r\nPASS {TEST_PASSWORD}\r\n").as_bytes())
            .await;
        assert_eq!(client.reply().await.expect("234").code, 234);
        client.expect("PWD", 530).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_policy_requires_tls_for_control_and_data() {
    common::within_test_limit(async {
        let (tls, _) = setup(TlsPolicy { require_control: true, require_data: true });
        let server = TestServer::start_with(common::USERS, |_| {}, Some(tls)).await;
        server.share.put("alice/f.txt", b"x");
        let mut client = RawClient::connect(server.addr).await;
        let reply = client.expect("USER alice", 530).await;
        assert!(reply.text().contains("requires TLS"), "{reply:?}");
        client.expect("AUTH SSL", 234).await;
        client.login("alice").await;
        // `AUTH SSL` implies protected data connections, so the policy is met at once.
        let (got, done) = client.download("RETR f.txt").await;
        assert_eq!((got.as_slice(), done.code), (&b"x"[..], 226));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_connections_start_secure() {
    common::within_test_limit(async {
        let (tls, calls) = setup(TlsPolicy { require_control: true, require_data: true });
        let share = wharf_testkit::TestShare::new(common::USERS);
        share.put("secure/f.txt", b"implicit");
        // What wharf-ftps's implicit listener does: accept, admit, handshake, hand over to the
        // service.
        let config = wharf_ftp::FtpConfig { listen: vec![], ..wharf_ftp::FtpConfig::default() };
        let service = wharf_ftp::FtpService::new(config, share.gateway.clone(), Some(tls.clone()))
            .expect("service");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let addr = listener.local_addr().expect("addr");
        let provider = tls.provider.clone();
        let gateway = share.gateway.clone();
        tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.expect("accept");
            let permit = service.admit(peer.ip()).expect("admitted");
            let local = stream.local_addr().expect("local");
            let connection = provider.connection();
            let secured = connection.secure_control(Box::new(stream)).await.expect("handshake");
            let control = ControlConnection {
                stream: secured,
                peer,
                local,
                tls: Some(connection),
                policy: TlsPolicy { require_control: true, require_data: true },
                probe: None,
            };
            gateway.shutdown.spawn(service.serve(control, permit));
        });
        let mut client = RawClient::connect(addr).await;
        client.expect("AUTH TLS", 503).await;
        client.login("secure").await;
        let (got, done) = client.download("RETR f.txt").await;
        assert_eq!((got.as_slice(), done.code), (&b"implicit"[..], 226));
        assert_eq!(calls.data.load(Ordering::SeqCst), 1);
    })
    .await
}

/// A provider whose control handshake never completes.
struct Stuck;

impl FtpTls for Stuck {
    fn connection(&self) -> Arc<dyn FtpTlsConnection> {
        Arc::new(Stuck)
    }
}

#[async_trait]
impl FtpTlsConnection for Stuck {
    async fn secure_control(&self, _stream: BoxedStream) -> io::Result<BoxedStream> {
        std::future::pending().await
    }

    async fn secure_data(
        &self,
        stream: TcpStream,
        _direction: DataDirection,
    ) -> io::Result<BoxedStream> {
        Ok(Box::new(stream))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_handshake_that_never_ends_is_cut_off() {
    common::within_test_limit(async {
        let tls = TlsSetup { provider: Arc::new(Stuck), policy: TlsPolicy::default() };
        let server = TestServer::start_with(
            common::USERS,
            |c| c.login_timeout = std::time::Duration::from_millis(300),
            Some(tls),
        )
        .await;
        let mut client = RawClient::connect(server.addr).await;
        client.expect("AUTH TLS", 234).await;
        assert!(client.reply().await.is_none(), "the connection is closed");
    })
    .await
}
