//! Shared by the end-to-end tests: a real server on an ephemeral loopback port over a scratch
//! share, and a raw control-connection client that sees replies exactly as sent.

#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wharf_ftp::{FtpConfig, FtpServer, TlsSetup};
use wharf_testkit::{TEST_PASSWORD, TestShare};

/// Users of most tests: a full user, a read-only user on the same home, an anonymous
/// identity, and a user who must use TLS.
pub const USERS: &str = r#"
users:
  - name: alice
    password: "$HASH"
    home: alice
  - name: reader
    password: "$HASH"
    home: alice
    permissions: { /: [read] }
  - name: guest
    passwordless: true
    home: public
    protocols: [ftp]
  - name: secure
    password: "$HASH"
    home: secure
    require_tls: true
"#;

/// Every test step is bounded.
pub const STEP: Duration = Duration::from_secs(60);

/// Runs `future` with a time limit, failing the test when it is exceeded.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} took longer than {STEP:?}"),
    }
}

/// Waits (bounded) until `done` holds, checking every few milliseconds.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    bounded(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A whole test is bounded too, whatever it awaits.
pub const TEST_LIMIT: Duration = Duration::from_secs(180);

/// Runs a test's body with [`TEST_LIMIT`].
pub async fn within_test_limit<T>(test: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TEST_LIMIT, test).await {
        Ok(value) => value,
        Err(_) => panic!("the test took longer than {TEST_LIMIT:?}"),
    }
}

/// A running FTP server over a scratch share; stopped when dropped.
pub struct TestServer {
    pub share: TestShare,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server for [`USERS`] with the default test configuration.
    pub async fn start() -> TestServer {
        Self::start_with(USERS, |_| {}, None).await
    }

    /// Starts a server for `users`, with `tweak` applied to the configuration and an optional
    /// TLS provider.
    pub async fn start_with(
        users: &str,
        tweak: impl FnOnce(&mut FtpConfig),
        tls: Option<TlsSetup>,
    ) -> TestServer {
        let share = TestShare::new(users);
        let mut config = FtpConfig {
            listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
            data_connect_timeout: Duration::from_secs(10),
            ..FtpConfig::default()
        };
        tweak(&mut config);
        let server =
            FtpServer::bind_with_tls(config, share.gateway.clone(), tls).expect("bind FTP server");
        let addr = server.local_addrs()[0];
        let task = tokio::spawn(server.run());
        TestServer { share, addr, task }
    }

    /// A raw client, logged in as `user`.
    pub async fn login(&self, user: &str) -> RawClient {
        let mut client = RawClient::connect(self.addr).await;
        client.login(user).await;
        client
    }

    /// A suppaftp client in binary mode, logged in as `user`.
    pub async fn suppa(&self, user: &str) -> suppaftp::tokio::AsyncFtpStream {
        let mut ftp = bounded("connect", suppaftp::tokio::AsyncFtpStream::connect(self.addr))
            .await
            .expect("suppaftp connects");
        bounded("login", ftp.login(user, TEST_PASSWORD)).await.expect("suppaftp logs in");
        bounded("TYPE I", ftp.transfer_type(suppaftp::types::FileType::Binary))
            .await
            .expect("binary");
        ftp
    }

    /// The URL of `path` for `user` for curl and lftp.
    pub fn url(&self, user: &str, path: &str) -> String {
        format!("ftp://{user}:{TEST_PASSWORD}@{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One reply as read from the wire.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub code: u16,
    /// Every line, with code and line ending removed.
    pub lines: Vec<String>,
}

impl RawReply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A line-level client: sends exactly what the test says and returns replies as they are.
pub struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    pub greeting: RawReply,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = bounded("connect", TcpStream::connect(addr)).await.expect("connect");
        let (read, writer) = stream.into_split();
        let mut reader = BufReader::new(read);
        let greeting = bounded("greeting", read_reply(&mut reader)).await.expect("greeting");
        RawClient { reader, writer, greeting }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local address")
    }

    /// The connection itself, for tests that drive it byte by byte (nothing may be left
    /// unread).
    pub fn into_stream(self) -> TcpStream {
        assert!(self.reader.buffer().is_empty(), "unread bytes from the server");
        self.reader.into_inner().reunite(self.writer).expect("the halves of one stream")
    }

    /// Whether a reply has arrived that the test has not read yet, asked without waiting.
    pub fn reply_waiting(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        let socket: &TcpStream = self.writer.as_ref();
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        matches!(rustix::net::recv(socket, &mut [0u8; 1], flags), Ok((1.., _)))
    }

    /// Sends raw bytes (no line ending added).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        bounded("send", self.writer.write_all(bytes)).await.expect("send");
    }

    /// Closes the sending side of the control connection (the server reads its end); replies
    /// can still be read.
    pub async fn shutdown_write(&mut self) {
        bounded("shutdown", self.writer.shutdown()).await.expect("shutdown");
    }

    /// Sends one command line.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads one reply; `None` when the server closed the connection.
    pub async fn reply(&mut self) -> Option<RawReply> {
        bounded("reply", read_reply(&mut self.reader)).await
    }

    /// Sends `line` and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> RawReply {
        self.send(line).await;
        self.reply().await.unwrap_or_else(|| panic!("connection closed after {line:?}"))
    }

    /// Sends `line` and checks the reply code.
    pub async fn expect(&mut self, line: &str, code: u16) -> RawReply {
        let reply = self.cmd(line).await;
        assert_eq!(reply.code, code, "{line:?} answered {reply:?}");
        reply
    }

    pub async fn login(&mut self, user: &str) {
        self.expect(&format!("USER {user}"), 331).await;
        self.expect(&format!("PASS {TEST_PASSWORD}"), 230).await;
    }

    /// `EPSV`, returning the data address.
    pub async fn epsv(&mut self) -> SocketAddr {
        let reply = self.expect("EPSV", 229).await;
        let text = reply.text();
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("bad EPSV reply {text:?}"));
        SocketAddr::new(self.writer.peer_addr().expect("peer").ip(), port)
    }

    /// `PASV`, returning the announced data address.
    pub async fn pasv(&mut self) -> SocketAddr {
        let reply = self.expect("PASV", 227).await;
        parse_pasv(&reply.text())
    }

    /// Runs a data command over a passive connection and returns the bytes it sent and the
    /// final reply.
    pub async fn download(&mut self, command: &str) -> (Vec<u8>, RawReply) {
        let data_addr = self.epsv().await;
        let mut data = bounded("data connect", TcpStream::connect(data_addr)).await.expect("data");
        self.expect(command, 150).await;
        let mut bytes = Vec::new();
        bounded("data read", data.read_to_end(&mut bytes)).await.expect("read data");
        let done = self.reply().await.expect("final reply");
        (bytes, done)
    }

    /// Runs an upload command over a passive connection with `content`; returns the final
    /// reply.
    pub async fn upload(&mut self, command: &str, content: &[u8]) -> RawReply {
        let data_addr = self.epsv().await;
        let mut data = bounded("data connect", TcpStream::connect(data_addr)).await.expect("data");
        self.expect(command, 150).await;
        bounded("data write", data.write_all(content)).await.expect("write data");
        bounded("data close", data.shutdown()).await.expect("close data");
        drop(data);
        self.reply().await.expect("final reply")
    }
}

pub fn parse_pasv(text: &str) -> SocketAddr {
    let inner = text
        .split('(')
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("bad PASV reply {text:?}"));
    let numbers: Vec<u8> = inner.split(',').map(|n| n.trim().parse().expect("number")).collect();
    assert_eq!(numbers.len(), 6, "{text}");
    let ip = Ipv4Addr::new(numbers[0], numbers[1], numbers[2], numbers[3]);
    SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([numbers[4], numbers[5]]))
}

async fn read_reply(reader: &mut BufReader<OwnedReadHalf>) -> Option<RawReply> {
    let mut first = String::new();
    if reader.read_line(&mut first).await.ok()? == 0 {
        return None;
    }
    let first = first.trim_end_matches(['\r', '\n']).to_owned();
    assert!(first.len() >= 3, "short reply line {first:?}");
    let code: u16 = first[..3].parse().unwrap_or_else(|_| panic!("bad reply line {first:?}"));
    let mut lines = vec![first[4.min(first.len())..].to_owned()];
    if first.as_bytes().get(3) == Some(&b'-') {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.len() >= 4 && line.starts_with(&first[..3]) && line.as_bytes()[3] == b' ' {
                lines.push(line[4..].to_owned());
                break;
            }
            lines.push(line);
        }
    }
    Some(RawReply { code, lines })
}

/// Runs a real client on a blocking thread, so the server keeps running on the test's runtime.
pub async fn run_client(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || wharf_testkit::run_bounded(&mut command, STEP))
        .await
        .expect("client thread")
}

/// Fails with the client's output unless it exited successfully.
pub fn assert_success(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{what} failed ({})\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
