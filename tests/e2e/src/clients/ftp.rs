//! FTP clients: [`FtpControl`], a raw control connection that sends exact bytes (NUL, long
//! lines) and sees replies exactly as sent, with extended-passive data connections; and
//! [`Suppa`], the suppaftp library as an application would use it.

use std::net::SocketAddr;

use suppaftp::tokio::AsyncFtpStream;
use suppaftp::types::{FileType, FtpError};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wharf_testkit::TEST_PASSWORD;

use super::{Entry, Refusal};
use crate::step;

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

/// A raw FTP control connection.
pub struct FtpControl {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    server: SocketAddr,
}

impl FtpControl {
    /// Connects and reads the greeting (220).
    pub async fn connect(server: SocketAddr) -> FtpControl {
        let stream = step("FTP connect", TcpStream::connect(server)).await.expect("FTP connect");
        let (read, writer) = stream.into_split();
        let mut control = FtpControl { reader: BufReader::new(read), writer, server };
        let greeting = control.reply().await;
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        control
    }

    /// Connects and logs `user` in with the test password, in binary type.
    pub async fn login(server: SocketAddr, user: &str) -> FtpControl {
        let mut control = FtpControl::connect(server).await;
        let reply = control.cmd(format!("USER {user}")).await;
        assert_eq!(reply.code, 331, "USER {user}: {reply:?}");
        let reply = control.cmd(format!("PASS {TEST_PASSWORD}")).await;
        assert_eq!(reply.code, 230, "PASS for {user}: {reply:?}");
        let reply = control.cmd("TYPE I").await;
        assert_eq!(reply.code, 200, "TYPE I: {reply:?}");
        control
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

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> Reply {
        step("FTP reply", self.read_reply()).await
    }

    async fn read_reply(&mut self) -> Reply {
        let first = self.read_line().await;
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an FTP reply: {first:?}"));
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let line = self.read_line().await;
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Reply { code, lines }
    }

    async fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        let read = self.reader.read_until(b'\n', &mut line).await.expect("read FTP reply");
        assert!(read > 0, "the server closed the control connection");
        String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned()
    }

    /// Whether the server closed the control connection (reads until EOF, bounded).
    pub async fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(crate::STEP_LIMIT, self.reader.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }

    /// `EPSV` and a connection to the announced port.
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
    /// the data connection once the server answered 150/125, or the refusal.
    pub async fn start_transfer(&mut self, command: &[u8]) -> Result<TcpStream, Reply> {
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

/// The suppaftp client library, logged in, binary type.
pub struct Suppa {
    ftp: AsyncFtpStream,
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
        let mut ftp =
            step("suppaftp connect", AsyncFtpStream::connect(server)).await.expect("FTP connect");
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

    /// The underlying client, for other commands.
    pub fn inner(&mut self) -> &mut AsyncFtpStream {
        &mut self.ftp
    }

    /// `QUIT`.
    pub async fn quit(mut self) {
        let _ = step("suppaftp quit", self.ftp.quit()).await;
    }
}
