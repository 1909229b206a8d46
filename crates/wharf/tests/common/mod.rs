//! Running the real `wharf` binary in tests: start it, read its banner, signal it.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wharf_testkit::{ChildGuard, TEST_PASSWORD};

/// The binary under test.
pub const WHARF: &str = env!("CARGO_BIN_EXE_wharf");

/// `wharf` run in `cwd`, every listener on a free port.
pub fn wharf(cwd: &Path) -> Command {
    let mut cmd = Command::new(WHARF);
    cmd.current_dir(cwd).env("WHARF_EPHEMERAL_PORTS", "1").env_remove("RUST_LOG");
    cmd
}

/// A running server.
pub struct Running {
    /// The process (killed when dropped).
    pub process: ChildGuard,
    /// What it printed at start.
    pub banner: String,
    /// Its log lines (stderr) not yet looked at by [`Running::wait_for_log`].
    log: mpsc::Receiver<String>,
}

/// Starts `command` (a `wharf serve`), returns it with its banner once printed.
pub fn start(mut command: Command) -> Running {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wharf serve");
    let rx = lines_of(child.stdout.take().expect("stdout"));
    let log = lines_of(child.stderr.take().expect("stderr"));
    let process = ChildGuard(child);
    let mut banner = String::new();
    // The banner is printed at once after start-up; collect it until it goes quiet.
    let mut wait = Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(wait) {
        banner.push_str(&line);
        banner.push('\n');
        wait = Duration::from_millis(500);
    }
    assert!(banner.contains("is serving"), "no banner within 60 s: {banner}");
    Running { process, banner, log }
}

/// The lines `pipe` carries, read on a thread of their own: the pipe is always drained, so
/// the server never blocks on a full one, and the lines wait in the channel until read.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `wharf serve --config <config>` in `dir`.
pub fn serve(dir: &Path, config: &Path) -> Running {
    let mut command = wharf(dir);
    command.arg("serve").arg("--config").arg(config);
    start(command)
}

impl Running {
    /// The address the banner lists for `protocol` (`FTP`, `FTPS`, `SFTP`, `TFTP`).
    pub fn listener(&self, protocol: &str) -> SocketAddr {
        listener(&self.banner, protocol)
    }

    /// Waits (at most `limit`) for a log line containing `needle` and returns it. Lines before
    /// it are passed over, so a second call waits for a later line.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!(
            "no log line with {needle:?} within {limit:?}; after the last wait:\n{}",
            seen.join("\n")
        );
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.process.0.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("signal");
    }

    /// Waits (at most `limit`) for the server to exit.
    pub fn wait_exit(mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.process.0.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("wharf did not exit within {limit:?}");
    }

    /// SIGINT, then waits (at most 10 s) for a clean exit.
    pub fn stop(self) -> ExitStatus {
        self.signal(rustix::process::Signal::INT);
        self.wait_exit(Duration::from_secs(10))
    }
}

/// The address `banner` lists for `protocol`.
pub fn listener(banner: &str, protocol: &str) -> SocketAddr {
    banner
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(protocol)).then(|| words.next()).flatten()
        })
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no {protocol} listener in the banner:\n{banner}"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

/// Writes `dir/data/users.yaml`: `alice` (password [`TEST_PASSWORD`], home `alice`), then
/// the YAML list items of `others` (each starting with `- `, or nothing).
fn write_users(dir: &Path, others: &str) {
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    write(
        dir,
        "data/users.yaml",
        &format!("users:\n  - {{ name: alice, password: \"{hash}\", home: alice }}\n{others}"),
    );
}

/// Writes the users of `dir/data/users.yaml`: alice alone (see [`write_users`]).
pub fn write_alice(dir: &Path) {
    write_users(dir, "");
}

/// Writes the users of `dir/data/users.yaml`: `alice` (password [`TEST_PASSWORD`], home
/// `alice`) and `devices` (TFTP's passwordless identity, home `devices`, holding `boot.bin`).
pub fn write_alice_and_devices(dir: &Path) {
    write_users(
        dir,
        "  - { name: devices, passwordless: true, home: devices, protocols: [tftp] }\n",
    );
    write(dir, "data/share/devices/boot.bin", "firmware");
}

/// The first line a TCP server sends on `addr`, or `None` if it closes without a word.
pub fn greeting(addr: SocketAddr) -> Option<String> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = [0u8; 128];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
    }
}

/// A TCP connection to `to` from the local address `from` (a loopback address of the test's
/// choosing, so that a test can be several clients).
pub fn connect_from(from: std::net::Ipv4Addr, to: SocketAddr) -> std::net::TcpStream {
    use rustix::net::{AddressFamily, SocketType};
    let socket =
        rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    rustix::net::bind(&socket, &SocketAddr::from((from, 0))).expect("bind");
    rustix::net::connect(&socket, &to).expect("connect");
    std::net::TcpStream::from(socket)
}

/// Whether the server closes `stream` (within its read timeout) without sending anything
/// more: an end of stream, or a reset (what it had not read yet was thrown away).
pub fn closes_unanswered(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read as _;
    let mut buf = [0; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("the server answered: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(err) => panic!("no end of the connection: {err}"),
    }
}

/// Writes the users file `dir/name` with `users`, each with the password [`TEST_PASSWORD`] and
/// the whole share as home; returns its path.
pub fn users_file(dir: &Path, name: &str, users: &[&str]) -> PathBuf {
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    let entries: String = users
        .iter()
        .map(|user| format!("  - {{ name: {user}, password: \"{hash}\", home: / }}\n"))
        .collect();
    write(dir, name, &format!("users:\n{entries}"))
}

/// Waits (bounded) for `child` to exit; returns its exit code. Past `limit` it is killed and
/// the test fails.
pub fn finish(mut child: std::process::Child, limit: Duration) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("client did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How long a [`RawFtp`] waits for a reply.
const RAW_FTP_WAIT: Duration = Duration::from_secs(30);

/// An FTP control connection driven by hand, to end a transfer the way a dead client does or to
/// see what the server says when it closes the connection.
pub struct RawFtp {
    reader: BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl RawFtp {
    pub fn connect(addr: std::net::SocketAddr) -> RawFtp {
        RawFtp::over(std::net::TcpStream::connect(addr).expect("FTP control connection"))
    }

    /// Connects to `to` from the local address `from` (see [`connect_from`]).
    pub fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> RawFtp {
        RawFtp::over(connect_from(from, to))
    }

    /// Takes over a control connection just made, and reads the greeting.
    pub fn over(writer: std::net::TcpStream) -> RawFtp {
        writer.set_read_timeout(Some(RAW_FTP_WAIT)).expect("read timeout");
        let mut ftp = RawFtp { reader: BufReader::new(writer.try_clone().expect("clone")), writer };
        ftp.reply(220);
        ftp
    }

    /// Reads one reply (multi-line ones too) and checks its code.
    pub fn reply(&mut self, code: u16) -> String {
        let text = self.next_reply();
        assert!(text.starts_with(&code.to_string()), "expected {code}, got: {text}");
        text
    }

    /// Sends `line` and returns the reply, whatever its code.
    pub fn send(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).expect("send a command");
        self.next_reply()
    }

    /// Connects to `addr` and logs in as `user` with `password`; returns the connection and
    /// the reply to `PASS`, whatever it is.
    pub fn login(addr: std::net::SocketAddr, user: &str, password: &str) -> (RawFtp, String) {
        let mut ftp = RawFtp::connect(addr);
        ftp.command(&format!("USER {user}"), 331);
        let reply = ftp.send(&format!("PASS {password}"));
        (ftp, reply)
    }

    /// Reads the next reply (multi-line ones too), whatever its code.
    pub fn next_reply(&mut self) -> String {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("an FTP reply");
            assert!(n > 0, "the server closed the control connection after: {text}");
            text.push_str(&line);
            let bytes = line.as_bytes();
            if bytes.len() >= 4 && bytes[..3].iter().all(u8::is_ascii_digit) && bytes[3] == b' ' {
                break;
            }
        }
        text
    }

    /// Sends `line` and checks the reply's code.
    pub fn command(&mut self, line: &str, code: u16) -> String {
        let text = self.send(line);
        assert!(text.starts_with(&code.to_string()), "expected {code}, got: {text}");
        text
    }

    /// Whatever the server still sends until it closes the connection; `None` if it did not
    /// close it within the read timeout.
    pub fn rest(&mut self) -> Option<String> {
        use std::io::Read as _;
        let mut rest = String::new();
        self.reader.read_to_string(&mut rest).ok().map(|_| rest)
    }

    /// `PASV`, then a connection to the address it names.
    pub fn passive(&mut self) -> std::net::TcpStream {
        let reply = self.command("PASV", 227);
        let inner = reply.split(['(', ')']).nth(1).expect("(h1,h2,h3,h4,p1,p2)");
        let numbers: Vec<u16> =
            inner.split(',').map(|n| n.trim().parse().expect("a number")).collect();
        let port = numbers[4] * 256 + numbers[5];
        let host = self.writer.peer_addr().expect("peer").ip();
        std::net::TcpStream::connect((host, port)).expect("FTP data connection")
    }
}

/// An SSH client that accepts the server's host key (the test started the server itself).
pub struct TrustingClient;

impl russh::client::Handler for TrustingClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}
