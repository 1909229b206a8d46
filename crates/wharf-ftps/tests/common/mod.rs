//! Shared by the end-to-end tests: a real FTPS server (explicit and implicit listeners) on
//! ephemeral loopback ports over a scratch share with a generated certificate, clients that
//! trust that certificate, and a line-level control client over plain TCP or TLS.

#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use wharf_ftp::FtpConfig;
use wharf_ftps::{FtpsConfig, FtpsServer, FtpsTls};
use wharf_testkit::{TEST_PASSWORD, TestShare};

/// Users of the tests: a full user, a user who must use TLS for everything, and one who may
/// log in without TLS but must protect data connections.
pub const USERS: &str = r#"
users:
  - name: alice
    password: "$HASH"
    home: alice
  - name: secure
    password: "$HASH"
    home: secure
    require_tls: true
  - name: datasafe
    password: "$HASH"
    home: alice
    require_tls: { control: false, data: true }
"#;

/// Every step of a test is bounded by this.
pub const STEP: Duration = Duration::from_secs(60);

/// A whole test is bounded by this.
pub const TEST_LIMIT: Duration = Duration::from_secs(240);

/// Awaits `future` for at most `limit`; the test fails, naming `what`, when it takes longer.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
}

/// Runs a test's body, bounded by [`TEST_LIMIT`].
pub async fn whole_test<T>(test: impl Future<Output = T>) -> T {
    within(TEST_LIMIT, "the test", test).await
}

/// Awaits one step of a test, bounded by [`STEP`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    within(STEP, what, future).await
}

/// The name clients verify the generated certificate for.
pub const SERVER_NAME: &str = "localhost";

/// A running FTPS server over a scratch share; stopped when dropped.
pub struct TestServer {
    pub share: TestShare,
    /// The FTP listener (explicit FTPS with `AUTH TLS`).
    pub ftp: SocketAddr,
    /// The implicit FTPS listener.
    pub implicit: SocketAddr,
    /// The generated certificate's PEM file.
    pub certificate: PathBuf,
    /// The provider, for fingerprints and reloads.
    pub tls: Arc<FtpsTls>,
    task: tokio::task::JoinHandle<()>,
}

/// The FTPS section the tests start from: a generated certificate under `dir`, an implicit
/// listener on a free loopback port.
pub fn test_ftps_config(dir: PathBuf) -> FtpsConfig {
    FtpsConfig {
        generated_certificate_dir: dir,
        implicit_listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
        ..FtpsConfig::default()
    }
}

/// The FTP section the tests start from: one listener on a free loopback port.
pub fn test_ftp_config() -> FtpConfig {
    FtpConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
        data_connect_timeout: Duration::from_secs(10),
        ..FtpConfig::default()
    }
}

impl TestServer {
    /// A server with the default test configuration.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}, |_| {}).await
    }

    /// A server with `tweak_ftps` and `tweak_ftp` applied to the test configuration.
    pub async fn start_with(
        tweak_ftps: impl FnOnce(&mut FtpsConfig),
        tweak_ftp: impl FnOnce(&mut FtpConfig),
    ) -> TestServer {
        let share = TestShare::new(USERS);
        let mut ftps = test_ftps_config(share.tmp.path().join("tls"));
        tweak_ftps(&mut ftps);
        let mut ftp = test_ftp_config();
        tweak_ftp(&mut ftp);
        let certificate = match &ftps.certificate_chain {
            Some(chain) => chain.clone(),
            None => ftps.generated_certificate_dir.join("ftps-certificate.pem"),
        };
        let server =
            FtpsServer::bind(ftps, ftp, share.gateway.clone()).expect("bind the FTPS server");
        let ftp = server.ftp_addrs()[0];
        let implicit = server.implicit_addrs()[0];
        let tls = server.tls();
        let task = tokio::spawn(server.run());
        TestServer { share, ftp, implicit, certificate, tls, task }
    }

    /// A client configuration trusting the server's certificate as it is on disk now.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        client_config_trusting(&self.certificate)
    }

    /// A suppaftp client over explicit FTPS (`AUTH TLS`, `PBSZ 0`, `PROT P`), logged in as
    /// `user`, in binary mode.
    pub async fn suppa_explicit(&self, user: &str) -> AsyncRustlsFtpStream {
        let ftp = bounded("connect", AsyncRustlsFtpStream::connect(self.ftp))
            .await
            .expect("suppaftp connects");
        let connector = AsyncRustlsConnector::from(TlsConnector::from(self.client_config()));
        let ftp = bounded("AUTH TLS", ftp.into_secure(connector, SERVER_NAME))
            .await
            .expect("suppaftp secures the control connection");
        logged_in(ftp, user).await
    }

    /// A suppaftp client over implicit FTPS, logged in as `user`, in binary mode.
    pub async fn suppa_implicit(&self, user: &str) -> AsyncRustlsFtpStream {
        let connector = AsyncRustlsConnector::from(TlsConnector::from(self.client_config()));
        #[allow(deprecated)]
        let connect =
            AsyncRustlsFtpStream::connect_secure_implicit(self.implicit, connector, SERVER_NAME);
        let mut ftp = bounded("implicit connect", connect).await.expect("implicit handshake");
        // suppaftp sends nothing after an implicit handshake; these are what clients send.
        bounded("PBSZ", ftp.custom_command("PBSZ 0", &[suppaftp::Status::CommandOk]))
            .await
            .expect("PBSZ 0");
        bounded("PROT", ftp.custom_command("PROT P", &[suppaftp::Status::CommandOk]))
            .await
            .expect("PROT P");
        logged_in(ftp, user).await
    }

    /// A line-level client on the FTP listener, greeted.
    pub async fn control(&self) -> Control<TcpStream> {
        Control::connect(self.ftp).await
    }

    /// The URL of `path` for `user` on the FTP listener (explicit FTPS).
    pub fn explicit_url(&self, user: &str, path: &str) -> String {
        format!("ftp://{user}:{TEST_PASSWORD}@{}{path}", self.ftp)
    }

    /// The URL of `path` for `user` on the implicit listener.
    pub fn implicit_url(&self, user: &str, path: &str) -> String {
        format!("ftps://{user}:{TEST_PASSWORD}@{}{path}", self.implicit)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn logged_in(mut ftp: AsyncRustlsFtpStream, user: &str) -> AsyncRustlsFtpStream {
    bounded("login", ftp.login(user, TEST_PASSWORD)).await.expect("suppaftp logs in");
    bounded("TYPE I", ftp.transfer_type(suppaftp::types::FileType::Binary)).await.expect("binary");
    ftp
}

/// A client configuration (TLS 1.2 and 1.3, resumption on) trusting the certificate in `pem`.
pub fn client_config_trusting(pem: &std::path::Path) -> Arc<ClientConfig> {
    client_config_with(pem, rustls::DEFAULT_VERSIONS, None)
}

/// A client configuration for `versions`, with the key exchange groups `groups` when given.
pub fn client_config_with(
    pem: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(pem).expect("certificate file") {
        roots.add(certificate.expect("certificate")).expect("trusted");
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Some(groups) = groups {
        provider.kx_groups = groups;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The TLS handshake of a client over `tcp`.
pub async fn tls_connect(
    config: &Arc<ClientConfig>,
    tcp: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(SERVER_NAME).expect("server name");
    TlsConnector::from(config.clone()).connect(name, tcp).await
}

/// One reply as read from the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// Every line without code and line ending.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A control connection that sends exactly what the test says, over plain TCP or TLS.
pub struct Control<S> {
    stream: BufReader<S>,
    pub greeting: Option<Reply>,
}

impl Control<TcpStream> {
    /// Connects to `addr` and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> Control<TcpStream> {
        let tcp = bounded("connect", TcpStream::connect(addr)).await.expect("connect");
        let mut control = Control { stream: BufReader::new(tcp), greeting: None };
        control.greeting = Some(control.reply().await.expect("greeting"));
        control
    }

    /// `AUTH TLS` and the client's handshake with `config`.
    pub async fn auth_tls(mut self, config: &Arc<ClientConfig>) -> Control<TlsStream<TcpStream>> {
        self.expect("AUTH TLS", 234).await;
        assert!(self.stream.buffer().is_empty(), "nothing may follow 234 in the clear");
        let tcp = self.stream.into_inner();
        let tls = bounded("handshake", tls_connect(config, tcp)).await.expect("TLS handshake");
        Control { stream: BufReader::new(tls), greeting: self.greeting }
    }
}

impl Control<TlsStream<TcpStream>> {
    /// Connects to an implicit listener and reads the greeting over TLS.
    pub async fn implicit(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
    ) -> Control<TlsStream<TcpStream>> {
        let tcp = bounded("connect", TcpStream::connect(addr)).await.expect("connect");
        let tls = bounded("handshake", tls_connect(config, tcp)).await.expect("TLS handshake");
        let mut control = Control { stream: BufReader::new(tls), greeting: None };
        control.greeting = Some(control.reply().await.expect("greeting"));
        control
    }

    /// The control connection's TLS state (protocol version, resumption).
    pub fn tls(&self) -> &rustls::ClientConnection {
        self.stream.get_ref().get_ref().1
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Control<S> {
    /// Sends one command line.
    pub async fn send(&mut self, line: &str) {
        let bytes = format!("{line}\r\n");
        let stream = self.stream.get_mut();
        bounded("send", async {
            stream.write_all(bytes.as_bytes()).await?;
            stream.flush().await
        })
        .await
        .expect("send");
    }

    /// Reads one reply; `None` when the server closed the connection.
    pub async fn reply(&mut self) -> Option<Reply> {
        bounded("reply", read_reply(&mut self.stream)).await
    }

    /// Sends `line` and checks the reply's code.
    pub async fn expect(&mut self, line: &str, code: u16) -> Reply {
        self.send(line).await;
        let reply =
            self.reply().await.unwrap_or_else(|| panic!("connection closed after {line:?}"));
        assert_eq!(reply.code, code, "{line:?} answered {reply:?}");
        reply
    }

    /// `USER` and `PASS`.
    pub async fn login(&mut self, user: &str) {
        self.expect(&format!("USER {user}"), 331).await;
        self.expect(&format!("PASS {TEST_PASSWORD}"), 230).await;
    }

    /// `EPSV`: the data address.
    pub async fn epsv(&mut self, host: IpAddr) -> SocketAddr {
        let reply = self.expect("EPSV", 229).await;
        let text = reply.text();
        let port = text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("bad EPSV reply {text:?}"));
        SocketAddr::new(host, port)
    }
}

async fn read_reply<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<Reply> {
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (head, rest) = line.split_at(line.len().min(4));
        let this_code = head.get(..3).and_then(|digits| digits.parse::<u16>().ok());
        let first = code.is_none();
        if first {
            code = Some(this_code.unwrap_or_else(|| panic!("bad reply line {line:?}")));
        }
        let last = this_code == code && head.as_bytes().get(3).is_none_or(|&c| c == b' ');
        lines.push(if first || last { rest.to_owned() } else { line.to_owned() });
        if last {
            return code.map(|code| Reply { code, lines });
        }
    }
}

/// Reads a protected data connection to its end.
pub async fn read_all<S: AsyncRead + Unpin>(mut data: S) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// curl with `args`, quiet but for errors, failing on an FTP error, trusting the server's
/// certificate.
pub fn curl(server: &TestServer, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("curl");
    command
        .args(["--silent", "--show-error", "--fail", "--max-time", "60", "--cacert"])
        .arg(&server.certificate)
        .args(args);
    command
}

/// An lftp run that forces TLS on the control and data connections (listings included),
/// trusts any certificate, gives up quickly, and runs `commands` as alice on `url`.
pub fn lftp(url: &str, commands: &str) -> std::process::Command {
    let settings = [
        "ftp:ssl-force true",
        "ftp:ssl-protect-data true",
        "ftp:ssl-protect-list true",
        "ssl:verify-certificate no",
        "net:max-retries 1",
        "net:timeout 10",
        "cmd:fail-exit yes",
    ];
    let script: String = settings.iter().map(|setting| format!("set {setting}; ")).collect();
    let mut command = std::process::Command::new("lftp");
    command.arg("-c").arg(format!("{script}open -u alice,{TEST_PASSWORD} {url}; {commands}"));
    command
}

/// Python running `script` with the arguments the tests' ftplib scripts take: the FTP
/// listener's address and port, alice's name and password, the certificate to trust.
pub fn ftplib_script(server: &TestServer, script: &str) -> std::process::Command {
    let mut python = std::process::Command::new("python3");
    python
        .arg("-c")
        .arg(script)
        .arg(server.ftp.ip().to_string())
        .arg(server.ftp.port().to_string())
        .args(["alice", TEST_PASSWORD])
        .arg(&server.certificate);
    python
}

/// Runs a real client to its end on a blocking thread (so the server keeps running on the
/// test's runtime), bounded by [`STEP`], and fails the test with its output unless it
/// succeeded.
pub async fn run_client(what: &str, mut command: std::process::Command) -> std::process::Output {
    let output =
        tokio::task::spawn_blocking(move || wharf_testkit::run_bounded(&mut command, STEP))
            .await
            .expect("client thread");
    assert!(
        output.status.success(),
        "{what} failed ({})\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
