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

/// A provider whose data handshakes say when they begin and then wait for the test's word. A
/// client that began its handshake first sent `HELLO`, which the handshake takes; the
/// handshake then sends `TICKET` (what a TLS 1.3 server sends when its handshake ends).
struct Gated {
    started: tokio::sync::mpsc::UnboundedSender<DataDirection>,
    go: Arc<tokio::sync::Semaphore>,
}

impl FtpTls for Gated {
    fn connection(&self) -> Arc<dyn FtpTlsConnection> {
        Arc::new(Gated { started: self.started.clone(), go: self.go.clone() })
    }
}

#[async_trait]
impl FtpTlsConnection for Gated {
    async fn secure_control(&self, stream: BoxedStream) -> io::Result<BoxedStream> {
        Ok(stream)
    }

    async fn secure_data(
        &self,
        mut stream: TcpStream,
        direction: DataDirection,
    ) -> io::Result<BoxedStream> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = self.started.send(direction);
        self.go.acquire().await.map_err(io::Error::other)?.forget();
        if direction == DataDirection::ClientFirst {
            let mut hello = [0u8; 5];
            stream.read_exact(&mut hello).await?;
            assert_eq!(&hello, b"HELLO");
        }
        stream.write_all(b"TICKET").await?;
        Ok(Box::new(stream))
    }
}

/// A server whose data handshakes go through [`Gated`]: the handshakes' directions arrive on
/// the receiver as they begin; each waits for a permit of the semaphore.
async fn gated_server()
-> (TestServer, tokio::sync::mpsc::UnboundedReceiver<DataDirection>, Arc<tokio::sync::Semaphore>) {
    let (started, handshakes) = tokio::sync::mpsc::unbounded_channel();
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let provider = Gated { started, go: go.clone() };
    let tls = TlsSetup { provider: Arc::new(provider), policy: TlsPolicy::default() };
    (TestServer::start_with(common::USERS, |_| {}, Some(tls)).await, handshakes, go)
}

/// alice, logged in after `AUTH TLS`, with `PROT P`.
async fn protected_session(server: &TestServer) -> RawClient {
    let mut client = RawClient::connect(server.addr).await;
    client.expect("AUTH TLS", 234).await;
    client.login("alice").await;
    client.expect("PBSZ 0", 200).await;
    client.expect("PROT P", 200).await;
    client
}

/// Sends `content` on `data`, ends it, and checks the `226` and what was stored at `stored`.
async fn finish_upload(
    client: &mut RawClient,
    mut data: TcpStream,
    content: &[u8],
    stored: &std::path::Path,
) {
    use tokio::io::AsyncWriteExt as _;
    data.write_all(content).await.expect("upload");
    data.shutdown().await.expect("end of the file");
    assert_eq!(client.reply().await.expect("226").code, 226);
    assert!(std::fs::read(stored).expect("stored") == content, "{stored:?}");
}

/// A protected upload whose client began the data connection's handshake before it sent the
/// command gets its 150 only once the handshake has returned, so whatever the handshake sent
/// is at the client before it sends the file (curl then reads the TLS 1.3 tickets before it
/// closes, and has one for its next upload). A client that waits for the 150 before its
/// handshake gets it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_client_began_the_handshake_hears_150_after_it() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    common::within_test_limit(async {
        let (server, mut handshakes, go) = gated_server().await;
        let mut client = protected_session(&server).await;
        let content = pattern(100_000);

        // The client's hello is on the data connection before STOR.
        let data_addr = client.epsv().await;
        let mut data =
            common::bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
        data.write_all(b"HELLO").await.expect("hello");
        client.send("STOR early.bin").await;
        let direction = common::bounded("handshake", handshakes.recv()).await.expect("begun");
        assert_eq!(direction, DataDirection::ClientFirst);
        assert!(!client.reply_waiting(), "the 150 came before the handshake returned");
        go.add_permits(1);
        assert_eq!(client.reply().await.expect("150").code, 150);
        let mut ticket = [0u8; 6];
        data.read_exact(&mut ticket).await.expect("what the handshake sent");
        assert_eq!(&ticket, b"TICKET");
        finish_upload(&mut client, data, &content, &server.share.root.join("alice/early.bin"))
            .await;

        // A client that waits for the 150 before its handshake is answered at once, and its
        // upload's handshake is told that it may not read what comes after it.
        let data_addr = client.epsv().await;
        let data = common::bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
        client.send("STOR late.bin").await;
        assert_eq!(client.reply().await.expect("150").code, 150);
        let direction = common::bounded("handshake", handshakes.recv()).await.expect("begun");
        assert_eq!(direction, DataDirection::FromClient);
        go.add_permits(1);
        finish_upload(&mut client, data, &content, &server.share.root.join("alice/late.bin")).await;

        // Downloads are never held.
        let data_addr = client.epsv().await;
        let mut data =
            common::bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
        client.send("RETR early.bin").await;
        assert_eq!(client.reply().await.expect("150").code, 150);
        assert_eq!(
            common::bounded("handshake", handshakes.recv()).await,
            Some(DataDirection::ToClient)
        );
        go.add_permits(1);
        let mut received = Vec::new();
        data.read_to_end(&mut received).await.expect("download");
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert!(received.len() == 6 + content.len(), "TICKET, then the file");
    })
    .await
}

/// A client that begins the data connection's handshake and then asks something else first
/// (curl sends `SIZE` between its hello and its `RETR`, and before 8.7 waits for the
/// handshake before it reads the answer) has the handshake served before any transfer
/// command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_the_client_begins_is_served_before_its_transfer_command() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    common::within_test_limit(async {
        let (server, mut handshakes, go) = gated_server().await;
        server.share.put("alice/file.bin", b"the file");
        let mut client = protected_session(&server).await;
        let data_addr = client.epsv().await;
        let mut data =
            common::bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
        data.write_all(b"HELLO").await.expect("hello");
        client.expect("SIZE file.bin", 213).await;
        let direction = common::bounded("handshake", handshakes.recv()).await.expect("begun");
        assert_eq!(direction, DataDirection::ClientFirst, "not yet known which way");
        go.add_permits(1);
        let mut ticket = [0u8; 6];
        common::bounded("the handshake's end", data.read_exact(&mut ticket)).await.expect("read");
        assert_eq!(&ticket, b"TICKET");
        let status = client.expect("STAT", 211).await;
        assert!(status.text().contains("TLS ready"), "{status:?}");
        client.expect("RETR file.bin", 150).await;
        let mut received = Vec::new();
        data.read_to_end(&mut received).await.expect("download");
        assert_eq!(received, b"the file");
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert!(handshakes.try_recv().is_err(), "one handshake for the connection");
    })
    .await
}
