//! Protected data connections must resume their control connection's TLS session: driven at
//! the TLS level with rustls clients, over TLS 1.3 and TLS 1.2 (tickets and session IDs), with
//! a hello retry, and with the requirement turned off.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use common::{Control, TestServer, bounded, client_config_with, read_all, tls_connect};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Tls12Resumption};
use rustls::{ClientConfig, HandshakeKind, NamedGroup, ProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wharf_testkit::pattern;

/// What the client saw of one protected download.
enum Outcome {
    /// The file arrived, over a handshake of this kind.
    Received(Vec<u8>, Option<HandshakeKind>),
    /// The server refused the data connection with this reply.
    Refused(common::Reply),
}

/// `RETR name` over a data connection whose handshake uses `data_config`.
async fn download(
    control: &mut Control<TlsStream<TcpStream>>,
    data_config: &Arc<ClientConfig>,
    name: &str,
) -> Outcome {
    let data_addr: SocketAddr = control.epsv(std::net::Ipv4Addr::LOCALHOST.into()).await;
    let tcp = bounded("data connect", TcpStream::connect(data_addr)).await.expect("data connect");
    control.expect(&format!("RETR {name}"), 150).await;
    let handshake = bounded("data handshake", tls_connect(data_config, tcp)).await;
    let received = match handshake {
        Ok(tls) => {
            let kind = tls.get_ref().1.handshake_kind();
            bounded("data read", read_all(tls)).await.ok().map(|bytes| (bytes, kind))
        }
        Err(_) => None,
    };
    let reply = control.reply().await.expect("final reply");
    match (received, reply.code) {
        (Some((bytes, kind)), 226) => Outcome::Received(bytes, kind),
        (_, 425) => Outcome::Refused(reply),
        (_, code) => panic!("unexpected reply {code}: {reply:?}"),
    }
}

fn assert_received(outcome: Outcome, content: &[u8], what: &str) {
    match outcome {
        Outcome::Received(bytes, kind) => {
            assert_eq!(kind, Some(HandshakeKind::Resumed), "{what}: the client resumed");
            assert!(bytes == content, "{what}: byte-exact");
        }
        Outcome::Refused(reply) => panic!("{what}: refused: {reply:?}"),
    }
}

fn assert_refused(outcome: Outcome, what: &str) {
    match outcome {
        Outcome::Refused(reply) => {
            assert!(reply.text().contains("did not resume"), "{what}: {reply:?}");
        }
        Outcome::Received(..) => panic!("{what}: a non-resuming data connection was served"),
    }
}

/// A logged-in explicit FTPS session with `PROT P`, on `config`.
async fn protected_session(
    server: &TestServer,
    config: &Arc<ClientConfig>,
) -> Control<TlsStream<TcpStream>> {
    let mut control = server.control().await.auth_tls(config).await;
    control.login("alice").await;
    control.expect("PBSZ 0", 200).await;
    control.expect("PROT P", 200).await;
    control
}

/// Resumption with the configuration `make_config` builds: many transfers in a row (each
/// resumed handshake must hand out fresh tickets to clients that use a TLS 1.3 ticket once), a
/// stranger refused twice (a refused handshake must not have handed it a session to come back
/// with), and the owner still served afterwards.
async fn owner_served_stranger_refused(
    make_config: impl Fn(&Path) -> Arc<ClientConfig>,
    version: ProtocolVersion,
    control_handshake: HandshakeKind,
    transfers: usize,
) {
    let server = TestServer::start().await;
    let config = make_config(&server.certificate);
    let content = pattern(256 * 1024 + 7);
    server.share.put("alice/file.bin", &content);
    let mut control = protected_session(&server, &config).await;
    assert_eq!(control.tls().protocol_version(), Some(version));
    assert_eq!(control.tls().handshake_kind(), Some(control_handshake));
    for round in 0..transfers {
        let outcome = download(&mut control, &config, "file.bin").await;
        assert_received(outcome, &content, &format!("{version:?} transfer {round}"));
    }
    let stranger = make_config(&server.certificate);
    for attempt in 0..2 {
        let outcome = download(&mut control, &stranger, "file.bin").await;
        assert_refused(outcome, &format!("{version:?} stranger, attempt {attempt}"));
    }
    let outcome = download(&mut control, &config, "file.bin").await;
    assert_received(outcome, &content, &format!("{version:?} owner after the stranger"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_tickets() {
    common::whole_test(owner_served_stranger_refused(
        |pem| client_config_with(pem, &[&rustls::version::TLS13], None),
        ProtocolVersion::TLSv1_3,
        HandshakeKind::Full,
        6,
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_tickets() {
    common::whole_test(owner_served_stranger_refused(
        |pem| client_config_with(pem, &[&rustls::version::TLS12], None),
        ProtocolVersion::TLSv1_2,
        HandshakeKind::Full,
        4,
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_session_ids() {
    common::whole_test(owner_served_stranger_refused(
        |pem| {
            let mut config =
                Arc::unwrap_or_clone(client_config_with(pem, &[&rustls::version::TLS12], None));
            config.resumption = config.resumption.tls12_resumption(Tls12Resumption::SessionIdOnly);
            Arc::new(config)
        },
        ProtocolVersion::TLSv1_2,
        HandshakeKind::Full,
        4,
    ))
    .await
}

/// A client session store that keeps sessions but forgets which key exchange group the server
/// chose, so every handshake starts with a key share the server does not take.
#[derive(Debug)]
struct ForgetsKeyExchange(Arc<ClientSessionMemoryCache>);

impl ClientSessionStore for ForgetsKeyExchange {
    fn set_kx_hint(&self, _: rustls::pki_types::ServerName<'static>, _: NamedGroup) {}

    fn kx_hint(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.0.set_tls12_session(name, value)
    }

    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.0.tls12_session(name)
    }

    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.0.remove_tls12_session(name)
    }

    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.insert_tls13_ticket(name, value)
    }

    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.0.take_tls13_ticket(name)
    }
}

/// Every handshake of this client needs a hello retry: its first key share is for a group the
/// server does not offer.
fn retrying_client(pem: &Path) -> Arc<ClientConfig> {
    use rustls::crypto::aws_lc_rs::kx_group;
    let groups = vec![kx_group::MLKEM1024, kx_group::X25519];
    let mut config =
        Arc::unwrap_or_clone(client_config_with(pem, &[&rustls::version::TLS13], Some(groups)));
    let store = Arc::new(ForgetsKeyExchange(Arc::new(ClientSessionMemoryCache::new(32))));
    config.resumption = rustls::client::Resumption::store(store);
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_after_a_hello_retry() {
    // After a retry the server cannot hand out new tickets (it decides before the second
    // hello), so a client that uses each ticket once has the control connection's two: one
    // here, one after the stranger.
    common::whole_test(owner_served_stranger_refused(
        retrying_client,
        ProtocolVersion::TLSv1_3,
        HandshakeKind::FullWithHelloRetryRequest,
        1,
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_requirement_any_handshake_is_served() {
    common::whole_test(async {
        let server =
            TestServer::start_with(|ftps| ftps.require_session_reuse = false, |_| {}).await;
        let content = pattern(100_000);
        server.share.put("alice/file.bin", &content);
        let config = server.client_config();
        let mut control = protected_session(&server, &config).await;
        let stranger = server.client_config();
        match download(&mut control, &stranger, "file.bin").await {
            Outcome::Received(bytes, kind) => {
                assert_eq!(kind, Some(HandshakeKind::Full));
                assert!(bytes == content);
            }
            Outcome::Refused(reply) => panic!("refused without the requirement: {reply:?}"),
        }
        assert_received(download(&mut control, &config, "file.bin").await, &content, "owner");
    })
    .await
}

/// TLS 1.3 tickets received on one data connection that moves `content` by `command`
/// (`RETR name` or `STOR name`), read to the server's close so that every ticket it sent is
/// counted.
async fn tickets_on_data_connection(
    control: &mut Control<TlsStream<TcpStream>>,
    config: &Arc<ClientConfig>,
    command: &str,
    content: &[u8],
) -> u32 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data_addr: SocketAddr = control.epsv(std::net::Ipv4Addr::LOCALHOST.into()).await;
    let tcp = bounded("data connect", TcpStream::connect(data_addr)).await.expect("data connect");
    control.expect(command, 150).await;
    let mut tls =
        bounded("data handshake", tls_connect(config, tcp)).await.expect("data handshake");
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed));
    if command.starts_with("STOR") {
        bounded("upload", tls.write_all(content)).await.expect("upload");
        bounded("close", tls.shutdown()).await.expect("close_notify");
        let mut rest = Vec::new();
        let _ = bounded("drain", tls.read_to_end(&mut rest)).await;
    } else {
        let mut received = Vec::new();
        bounded("download", tls.read_to_end(&mut received)).await.expect("download");
        assert!(received == content, "{command}: byte-exact");
    }
    let done = control.reply().await.expect("final reply");
    assert_eq!(done.code, 226, "{command}: {done:?}");
    tls.get_ref().1.tls13_tickets_received()
}

/// Tickets a TLS 1.3 client receives on one upload and then one download, on a server with
/// `tls13_tickets_on_uploads` set to `on_uploads`.
async fn tickets_on_upload_then_download(on_uploads: bool) -> (u32, u32) {
    let server =
        TestServer::start_with(|ftps| ftps.tls13_tickets_on_uploads = on_uploads, |_| {}).await;
    let config = client_config_with(&server.certificate, &[&rustls::version::TLS13], None);
    let content = pattern(300_000);
    server.share.put("alice/file.bin", &content);
    let mut control = protected_session(&server, &config).await;
    let upload = tickets_on_data_connection(&mut control, &config, "STOR up.bin", &content).await;
    let stored = std::fs::read(server.share.root.join("alice/up.bin")).expect("stored");
    assert!(stored == content, "the upload is byte-exact");
    let download =
        tickets_on_data_connection(&mut control, &config, "RETR file.bin", &content).await;
    (upload, download)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_uploads_get_no_tickets_downloads_do() {
    // An uploading client may close its data connection without reading what follows the
    // handshake; a ticket arriving then makes its kernel reset the connection and lose the end
    // of the upload. So by default only downloads and listings hand out fresh tickets.
    common::whole_test(async {
        let (upload, download) = tickets_on_upload_then_download(false).await;
        assert_eq!(upload, 0, "no ticket on an upload");
        assert!(download > 0, "a download hands out fresh tickets");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_tickets_on_uploads_when_configured() {
    common::whole_test(async {
        let (upload, download) = tickets_on_upload_then_download(true).await;
        assert!(upload > 0, "tls13_tickets_on_uploads: an upload hands out tickets");
        assert!(download > 0);
    })
    .await
}
