//! FTP and FTPS clients: [`FtpControl`], a raw control connection that sends exact bytes
//! (NUL, long lines) and sees replies exactly as sent, with extended-passive data
//! connections, in the clear or over TLS (`AUTH TLS`, `PROT P`); and [`Suppa`], the suppaftp
//! library as an application would use it, in the clear or over explicit TLS.

use std::net::SocketAddr;

use rustls::pki_types::ServerName;
use suppaftp::Status;
use suppaftp::tokio::{
    AsyncFtpStream, AsyncRustlsConnector, AsyncRustlsStream, ImplAsyncFtpStream, TokioTlsStream,
};
use suppaftp::types::{FileType, FtpError};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite,
    AsyncWriteExt as _, BufReader, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wharf_testkit::TEST_PASSWORD;

use super::{Entry, Refusal};
use crate::server::{TLS_SERVER_NAME, Wharf};
use crate::step;

/// A byte stream: a TCP connection, or TLS over one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A control or data connection, in the clear or over TLS.
pub type BoxStream = Box<dyn Stream>;

/// One FTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code.
    pub code: u16,
    /// Every line, codes and separators included.
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of the first line, after the code.
    pub fn text(&self) -> &str {
        self.lines.first().map(|line| line.get(4..).unwrap_or("")).unwrap_or("")
    }

    /// Whether the code is a positive completion or preliminary reply.
    pub fn is_positive(&self) -> bool {
        (100..400).contains(&self.code)
    }

    /// The reply as a refusal.
    pub fn refusal(&self) -> Refusal {
        Refusal::Ftp { code: self.code, text: self.lines.join("\n") }
    }
}

/// Reads one (possibly multi-line) reply from `reader`.
async fn read_reply_from<R: AsyncBufRead + Unpin>(reader: &mut R) -> Reply {
    let first = read_line(reader).await;
    let code: u16 = first
        .get(..3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an FTP reply: {first:?}"));
    let mut lines = vec![first.clone()];
    if first.as_bytes().get(3) == Some(&b'-') {
        let end = format!("{code} ");
        loop {
            let line = read_line(reader).await;
            let done = line.starts_with(&end);
            lines.push(line);
            if done {
                break;
            }
        }
    }
    Reply { code, lines }
}

async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> String {
    let mut line = Vec::new();
    let read = reader.read_until(b'\n', &mut line).await.expect("read FTP reply");
    assert!(read > 0, "the server closed the control connection");
    String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned()
}

/// A raw FTP control connection.
pub struct FtpControl {
    reader: BufReader<ReadHalf<BoxStream>>,
    writer: WriteHalf<BoxStream>,
    server: SocketAddr,
    /// Set once the control connection is protected: data connections are then protected
    /// too (`PROT P`), resuming the control connection's session.
    tls: Option<TlsConnector>,
}

async fn tls_handshake(connector: &TlsConnector, tcp: TcpStream) -> std::io::Result<BoxStream> {
    let name = ServerName::try_from(TLS_SERVER_NAME).expect("server name");
    let stream = step("TLS handshake", connector.connect(name, tcp)).await?;
    Ok(Box::new(stream))
}

impl FtpControl {
    fn over(stream: BoxStream, server: SocketAddr, tls: Option<TlsConnector>) -> FtpControl {
        let (read, writer) = tokio::io::split(stream);
        FtpControl { reader: BufReader::new(read), writer, server, tls }
    }

    /// Connects and reads the greeting (220).
    pub async fn connect(server: SocketAddr) -> FtpControl {
        let stream = step("FTP connect", TcpStream::connect(server)).await.expect("FTP connect");
        let mut control = FtpControl::over(Box::new(stream), server, None);
        let greeting = control.reply().await;
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        control
    }

    /// Connects to the FTP listener and protects the connection with `AUTH TLS` (explicit
    /// FTPS), then `PBSZ 0` and `PROT P`.
    pub async fn connect_tls(wharf: &Wharf) -> FtpControl {
        let config = wharf.tls_for_one_session();
        let tcp = step("FTP connect", TcpStream::connect(wharf.ftp)).await.expect("FTP connect");
        let mut plain = BufReader::new(tcp);
        let greeting = step("greeting", read_reply_from(&mut plain)).await;
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        step("AUTH TLS", plain.get_mut().write_all(b"AUTH TLS\r\n")).await.expect("send AUTH");
        let reply = step("AUTH TLS reply", read_reply_from(&mut plain)).await;
        assert_eq!(reply.code, 234, "AUTH TLS: {reply:?}");
        assert!(plain.buffer().is_empty(), "nothing follows 234 before the handshake");
        let connector = TlsConnector::from(config);
        let stream = tls_handshake(&connector, plain.into_inner()).await.expect("TLS on control");
        let mut control = FtpControl::over(stream, wharf.ftp, Some(connector));
        for command in ["PBSZ 0", "PROT P"] {
            let reply = control.cmd(command).await;
            assert_eq!(reply.code, 200, "{command}: {reply:?}");
        }
        control
    }

    /// Connects and logs `user` in with the test password, in binary type; over TLS when
    /// `tls` is true.
    pub async fn login_over(wharf: &Wharf, user: &str, tls: bool) -> FtpControl {
        let control = if tls {
            FtpControl::connect_tls(wharf).await
        } else {
            FtpControl::connect(wharf.ftp).await
        };
        control.logged_in(user).await
    }

    /// Connects and logs `user` in with the test password, in binary type.
    pub async fn login(server: SocketAddr, user: &str) -> FtpControl {
        FtpControl::connect(server).await.logged_in(user).await
    }

    async fn logged_in(mut self, user: &str) -> FtpControl {
        let control = &mut self;
        let reply = control.cmd(format!("USER {user}")).await;
        assert_eq!(reply.code, 331, "USER {user}: {reply:?}");
        let reply = control.cmd(format!("PASS {TEST_PASSWORD}")).await;
        assert_eq!(reply.code, 230, "PASS for {user}: {reply:?}");
        let reply = control.cmd("TYPE I").await;
        assert_eq!(reply.code, 200, "TYPE I: {reply:?}");
        self
    }

    /// Whether the control connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sends one command line (CRLF is added) and reads its reply.
    pub async fn cmd(&mut self, line: impl AsRef<[u8]>) -> Reply {
        self.send(line.as_ref()).await;
        self.reply().await
    }

    /// Sends one command line without reading the reply.
    pub async fn send(&mut self, line: &[u8]) {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        step("FTP command", self.writer.write_all(&bytes)).await.expect("send FTP command");
    }

    /// Closes the sending side of the control connection (over TLS, after the TLS close);
    /// replies can still be read.
    pub async fn shutdown(&mut self) {
        step("FTP control shutdown", self.writer.shutdown()).await.expect("shut down control");
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> Reply {
        step("FTP reply", self.read_reply()).await
    }

    async fn read_reply(&mut self) -> Reply {
        read_reply_from(&mut self.reader).await
    }

    /// Whether the server closed the control connection (reads until EOF, bounded).
    pub async fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(crate::STEP_LIMIT, self.reader.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }

    /// `EPSV` and a TCP connection to the announced port.
    pub async fn open_data(&mut self) -> Result<TcpStream, Reply> {
        let reply = self.cmd("EPSV").await;
        if reply.code != 229 {
            return Err(reply);
        }
        // 229 Entering Extended Passive Mode (|||port|)
        let port: u16 = reply
            .text()
            .rsplit("|||")
            .next()
            .and_then(|rest| rest.split('|').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("EPSV reply without a port: {reply:?}"));
        let addr = SocketAddr::new(self.server.ip(), port);
        Ok(step("FTP data connect", TcpStream::connect(addr)).await.expect("data connection"))
    }

    /// Sends a data command (`RETR`, `STOR`, `LIST`, ...) on a fresh data connection. Returns
    /// the data connection once the server answered 150/125 (and, over FTPS, the TLS
    /// handshake the server starts then succeeded), or the refusal.
    pub async fn start_transfer(&mut self, command: &[u8]) -> Result<BoxStream, Reply> {
        let data = self.start_transfer_tcp(command).await?;
        match &self.tls {
            None => Ok(Box::new(data)),
            Some(connector) => match tls_handshake(connector, data).await {
                Ok(stream) => Ok(stream),
                // The server gave up on the transfer before protecting it: its reply says why.
                Err(_) => Err(self.reply().await),
            },
        }
    }

    /// As [`FtpControl::start_transfer`], returning the TCP connection itself (before any
    /// TLS handshake), to reset it.
    pub async fn start_transfer_tcp(&mut self, command: &[u8]) -> Result<TcpStream, Reply> {
        let data = self.open_data().await?;
        let reply = self.cmd(command).await;
        if reply.code == 150 || reply.code == 125 { Ok(data) } else { Err(reply) }
    }

    /// `RETR path`: the file's bytes, or the refusal (of the command or of the transfer).
    pub async fn retr(&mut self, path: &[u8]) -> Result<Vec<u8>, Reply> {
        let mut data = self.start_transfer(&[b"RETR ".as_slice(), path].concat()).await?;
        let mut content = Vec::new();
        step("FTP RETR data", data.read_to_end(&mut content)).await.expect("read data");
        let done = self.reply().await;
        if done.code == 226 { Ok(content) } else { Err(done) }
    }

    /// `verb path` (`STOR`, `APPE`, `STOU`) with `content`: the final reply, or the refusal.
    pub async fn store(&mut self, verb: &str, path: &[u8], content: &[u8]) -> Result<Reply, Reply> {
        let command = [verb.as_bytes(), b" ", path].concat();
        let mut data = self.start_transfer(&command).await?;
        step("FTP upload data", data.write_all(content)).await.expect("send data");
        step("FTP upload close", data.shutdown()).await.expect("close data");
        drop(data);
        let done = self.reply().await;
        if done.code == 226 || done.code == 250 { Ok(done) } else { Err(done) }
    }

    /// A listing command (`LIST`, `NLST`, `MLSD`) on `path`: what the server sent.
    pub async fn listing(&mut self, verb: &str, path: Option<&[u8]>) -> Result<String, Reply> {
        let command = match path {
            Some(path) => [verb.as_bytes(), b" ", path].concat(),
            None => verb.as_bytes().to_vec(),
        };
        let mut data = self.start_transfer(&command).await?;
        let mut content = Vec::new();
        step("FTP listing data", data.read_to_end(&mut content)).await.expect("read listing");
        let done = self.reply().await;
        if done.code == 226 {
            Ok(String::from_utf8_lossy(&content).into_owned())
        } else {
            Err(done)
        }
    }

    /// The names an `MLSD` of `dir` shows.
    pub async fn names(&mut self, dir: &str) -> Result<Vec<String>, Reply> {
        let text = self.listing("MLSD", Some(dir.as_bytes())).await?;
        Ok(parse_mlsd(&text).into_iter().map(|entry| entry.name).collect())
    }
}

/// Parses `MLSD` lines (`fact=value;...; name`), leaving out `.` and `..` (`cdir`/`pdir`).
pub fn parse_mlsd(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let Some((facts, name)) = line.split_once(' ') else { continue };
        let mut size = None;
        let mut kind = "";
        for fact in facts.split(';') {
            match fact.split_once('=') {
                Some(("size", value)) => size = value.parse().ok(),
                Some(("type", value)) => kind = value,
                _ => {}
            }
        }
        if kind.eq_ignore_ascii_case("cdir") || kind.eq_ignore_ascii_case("pdir") {
            continue;
        }
        entries.push(Entry {
            name: name.to_owned(),
            size,
            is_dir: kind.eq_ignore_ascii_case("dir"),
        });
    }
    entries
}

/// The suppaftp client library, logged in, binary type; in the clear (`Suppa`) or over
/// explicit TLS (`Suppa<AsyncRustlsStream>`).
pub struct Suppa<T: TokioTlsStream + Send = suppaftp::tokio::AsyncNoTlsStream> {
    ftp: ImplAsyncFtpStream<T>,
}

fn refusal(err: FtpError) -> Refusal {
    match err {
        FtpError::UnexpectedResponse(response) => Refusal::Ftp {
            code: response.status.code() as u16,
            text: String::from_utf8_lossy(&response.body).into_owned(),
        },
        other => Refusal::Failed(other.to_string()),
    }
}

impl Suppa {
    /// Connects and logs `user` in with the test password.
    pub async fn login(server: SocketAddr, user: &str) -> Suppa {
        let ftp =
            step("suppaftp connect", AsyncFtpStream::connect(server)).await.expect("FTP connect");
        Suppa::logged_in(ftp, user).await
    }
}

impl Suppa<AsyncRustlsStream> {
    /// Connects to the FTP listener, protects it with `AUTH TLS` (suppaftp then sends
    /// `PBSZ 0` and `PROT P`) and logs `user` in.
    pub async fn login_tls(wharf: &Wharf, user: &str) -> Suppa<AsyncRustlsStream> {
        let config = wharf.tls_for_one_session();
        let ftp = step("suppaftp connect", ImplAsyncFtpStream::connect(wharf.ftp))
            .await
            .expect("FTP connect");
        let connector = AsyncRustlsConnector::from(TlsConnector::from(config));
        let ftp = step("AUTH TLS", ftp.into_secure(connector, TLS_SERVER_NAME))
            .await
            .expect("suppaftp AUTH TLS");
        Suppa::logged_in(ftp, user).await
    }
}

impl<T: TokioTlsStream + Send> Suppa<T> {
    async fn logged_in(mut ftp: ImplAsyncFtpStream<T>, user: &str) -> Suppa<T> {
        step("suppaftp login", ftp.login(user, TEST_PASSWORD))
            .await
            .unwrap_or_else(|err| panic!("FTP login of {user}: {err}"));
        step("TYPE I", ftp.transfer_type(FileType::Binary)).await.expect("TYPE I");
        Suppa { ftp }
    }

    /// `STOR`.
    pub async fn upload(&mut self, path: &str, data: &[u8]) -> Result<(), Refusal> {
        let mut reader = data;
        let sent =
            step("suppaftp put", self.ftp.put_file(path, &mut reader)).await.map_err(refusal)?;
        assert_eq!(sent, data.len() as u64, "suppaftp sent every byte of {path}");
        Ok(())
    }

    /// `RETR`.
    pub async fn download(&mut self, path: &str) -> Result<Vec<u8>, Refusal> {
        let mut stream =
            step("suppaftp retr", self.ftp.retr_as_stream(path)).await.map_err(refusal)?;
        let mut content = Vec::new();
        step("suppaftp read", stream.read_to_end(&mut content))
            .await
            .map_err(|err| Refusal::Failed(err.to_string()))?;
        step("suppaftp finish", stream.finish()).await.map_err(refusal)?;
        Ok(content)
    }

    /// `MLSD dir`.
    pub async fn list(&mut self, dir: &str) -> Result<Vec<Entry>, Refusal> {
        let lines = step("suppaftp mlsd", self.ftp.mlsd(Some(dir))).await.map_err(refusal)?;
        Ok(parse_mlsd(&lines.join("\n")))
    }

    /// A command and its reply, whatever the code.
    pub async fn command(&mut self, line: &str) -> Refusal {
        let expected = [Status::CommandOk];
        match step("suppaftp command", self.ftp.custom_command(line, &expected)).await {
            Ok(response) => Refusal::Ftp {
                code: response.status.code() as u16,
                text: String::from_utf8_lossy(&response.body).into_owned(),
            },
            Err(err) => refusal(err),
        }
    }

    /// The underlying client, for other commands.
    pub fn inner(&mut self) -> &mut ImplAsyncFtpStream<T> {
        &mut self.ftp
    }

    /// `QUIT`.
    pub async fn quit(mut self) {
        let _ = step("suppaftp quit", self.ftp.quit()).await;
    }
}
