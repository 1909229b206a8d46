//! A flood of idle connections from one address, on the real binary: every TCP listener (FTP,
//! implicit FTPS, SFTP, metrics) gets four times its per-address cap; the excess is refused at
//! once (`421`, the SFTP message, or a plain close), the server's descriptors stay within what
//! the caps allow, and every protocol still serves a client from another address. And the
//! descriptor budget behind admission: under a low open-file limit, and across a reload.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{Running, serve, write, write_alice_and_devices};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use wharf_testkit::TEST_PASSWORD;

/// Per-address caps the test writes into the configuration.
const FTP_CAP: usize = 8;
const SFTP_CAP: usize = 8;
const METRICS_CAP: usize = 4;
/// Connections opened per listener, as a multiple of its cap.
const FLOOD: usize = 4;

/// Descriptors a connection holds before it logs in (the flood never does): FTP and implicit
/// FTPS hold the socket and the probe's duplicate of it; SFTP and metrics hold the socket.
const FTP_IDLE: usize = 2;
const SFTP_IDLE: usize = 1;
const METRICS_IDLE: usize = 1;

/// Descriptors the runtime and libraries may open on first use while the flood is served
/// (counted against no connection), beside the baseline measured before it.
const SLACK: usize = 4;

/// Every wait of the test is bounded by this.
const STEP: Duration = Duration::from_secs(60);

/// The flood's source, and the fresh clients' source (another loopback address).
const FLOOD_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const FRESH_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A runtime for the tests' clients (and for the in-process server of the reload test).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Awaits `future` for at most [`STEP`]; the test fails, naming `what`, when it takes longer.
async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {STEP:?}"))
}

fn start(tmp: &tempfile::TempDir) -> Running {
    write_alice_and_devices(tmp.path());
    // Timeouts longer than the test, so no admitted connection is closed by one while the
    // descriptors are counted (the metrics endpoint's own 5 s request timeout only lowers the
    // count).
    let config = write(
        tmp.path(),
        "wharf.yaml",
        &format!(
            "data_dir: data\n\
             shutdown_grace: 5s\n\
             access: {{ users_file: users.yaml, login_failure_delay: 10ms }}\n\
             metrics: {{ listen: \"127.0.0.1:0\", limits: {{ max_sessions: 64, max_sessions_per_address: {METRICS_CAP} }} }}\n\
             ftp: {{ listen: [\"127.0.0.1:0\"], login_timeout: 10m, limits: {{ max_sessions: 100, max_sessions_per_address: {FTP_CAP} }} }}\n\
             ftps: {{ implicit_listen: [\"127.0.0.1:0\"] }}\n\
             sftp: {{ listen: [\"127.0.0.1:0\"], auth_timeout: 10m, max_open_handles: 4, limits: {{ max_sessions: 100, max_sessions_per_address: {SFTP_CAP} }} }}\n\
             tftp:\n  listen: [\"127.0.0.1:0\"]\n  max_transfers: 8\n  \
             rules: [{{ network: 127.0.0.0/8, identity: devices }}]\n"
        ),
    );
    serve(tmp.path(), &config)
}

/// Descriptors the server process holds now.
fn descriptors(server: &Running) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.process.0.id()))
        .expect("the server's descriptor table")
        .count()
}

/// What one flood connection saw: its index, the bytes before the server closed it or the
/// first bytes it sent, and whether the server closed it.
struct Seen {
    index: usize,
    bytes: Vec<u8>,
    closed: bool,
}

/// Opens `count` connections to `addr` from [`FLOOD_SOURCE`], one after the other (the server
/// accepts them in that order), idle: they send nothing. Each is watched by a task that
/// reports the first bytes it receives and again when the server closes it; the sockets stay
/// open (held by the tasks) until the returned set of tasks is dropped.
async fn flood(
    addr: SocketAddr,
    count: usize,
) -> (mpsc::UnboundedReceiver<Seen>, tokio::task::JoinSet<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut hold = tokio::task::JoinSet::new();
    for index in 0..count {
        let mut stream = connect_from(FLOOD_SOURCE, addr).await;
        let tx = tx.clone();
        hold.spawn(async move {
            let mut bytes = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Seen { index, bytes, closed: true });
                        return;
                    }
                    Ok(n) => {
                        let first = bytes.is_empty();
                        bytes.extend_from_slice(&buf[..n]);
                        if first {
                            let _ = tx.send(Seen { index, bytes: bytes.clone(), closed: false });
                        }
                    }
                }
            }
        });
    }
    (rx, hold)
}

/// A TCP connection to `addr` from the loopback address `source`.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind the source address");
    bounded("connect", socket.connect(addr)).await.expect("connect")
}

/// Collects what the flood saw until `done` says the expected signals are all there.
async fn until(
    what: &str,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    mut done: impl FnMut(&Seen) -> bool,
) {
    bounded(what, async {
        while let Some(seen) = rx.recv().await {
            if done(&seen) {
                return;
            }
        }
        panic!("{what}: the watchers ended first");
    })
    .await
}

/// Waits until the first `admitted` connections of a flood have been greeted with text
/// starting with `greeting`, and `refused` others have been told exactly `refusal` and closed.
async fn admitted_and_refused(
    what: &str,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    (greeting, admitted): (&str, usize),
    (refusal, refused): (&str, usize),
) {
    let (mut greeted, mut told) = (0, 0);
    until(what, rx, |s| {
        let text = String::from_utf8_lossy(&s.bytes);
        if s.closed {
            assert_eq!(text, refusal, "connection {}", s.index);
            told += 1;
        } else if text.starts_with(greeting) {
            assert!(s.index < admitted, "connection {} greeted past the limit", s.index);
            greeted += 1;
        }
        greeted == admitted && told == refused
    })
    .await
}

/// Waits until `count` connections of a flood have been closed without a byte.
async fn closed_without_a_word(what: &str, rx: &mut mpsc::UnboundedReceiver<Seen>, count: usize) {
    let mut closed = 0;
    until(what, rx, |s| {
        assert!(s.bytes.is_empty(), "connection {} was sent {:?}", s.index, s.bytes);
        closed += usize::from(s.closed);
        closed == count
    })
    .await
}

#[test]
fn a_flood_of_idle_connections_is_refused_at_the_caps_and_everyone_else_is_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(&tmp);
    let ftp = server.listener("FTP");
    let ftps = server.listener("FTPS");
    let sftp = server.listener("SFTP");
    let tftp = server.listener("TFTP");
    let metrics = server.listener("metrics");
    let baseline = descriptors(&server);
    let runtime = runtime();
    runtime.block_on(async {
        // FTP: the first FTP_CAP are greeted, every other one gets 421 and is closed.
        let (mut seen, _ftp_hold) = flood(ftp, FLOOD * FTP_CAP).await;
        admitted_and_refused(
            "the FTP flood's greetings and refusals",
            &mut seen,
            ("220", FTP_CAP),
            ("421 too many sessions from your address.\r\n", (FLOOD - 1) * FTP_CAP),
        )
        .await;

        // Implicit FTPS shares FTP's caps, which the FTP flood holds: every connection is
        // closed at once, before a byte of a handshake.
        let (mut seen, _ftps_hold) = flood(ftps, FLOOD * FTP_CAP).await;
        closed_without_a_word("the implicit FTPS flood's closes", &mut seen, FLOOD * FTP_CAP).await;

        // SFTP: the first SFTP_CAP get the identification, the others the message and a close.
        let (mut seen, _sftp_hold) = flood(sftp, FLOOD * SFTP_CAP).await;
        admitted_and_refused(
            "the SFTP flood's identifications and refusals",
            &mut seen,
            ("SSH-2.0-Wharf", SFTP_CAP),
            ("Too many SFTP sessions; try again later\r\n", (FLOOD - 1) * SFTP_CAP),
        )
        .await;

        // Metrics: idle connections past the cap are closed at once without an answer.
        let (mut seen, _metrics_hold) = flood(metrics, FLOOD * METRICS_CAP).await;
        let excess = (FLOOD - 1) * METRICS_CAP;
        closed_without_a_word("the metrics flood's closes", &mut seen, excess).await;

        // Every excess connection is closed; what is left is bounded by the caps.
        let allowed =
            FTP_CAP * FTP_IDLE + SFTP_CAP * SFTP_IDLE + METRICS_CAP * METRICS_IDLE + SLACK;
        let held = descriptors(&server);
        eprintln!("descriptors: {baseline} before the flood, {held} during it");
        assert!(
            held <= baseline + allowed,
            "the server holds {held} descriptors: {baseline} before the flood, at most \
             {allowed} more allowed by the caps"
        );

        // Another address is served on every protocol while the flood holds its places.
        fresh_ftp_login(ftp).await;
        fresh_implicit_ftps(ftps).await;
        fresh_sftp_identification(sftp).await;
        fresh_metrics_scrape(metrics).await;
        fresh_tftp_read(tftp).await;
    });
    drop(runtime);
    assert!(server.stop().success());
}

/// Reads one reply line from `control` and checks its code.
async fn expect_reply(control: &mut BufReader<TcpStream>, code: &str) {
    let mut line = String::new();
    bounded("an FTP reply", control.read_line(&mut line)).await.expect("reply");
    assert!(line.starts_with(code), "expected {code}: {line:?}");
}

async fn fresh_ftp_login(ftp: SocketAddr) {
    let mut control = BufReader::new(connect_from(FRESH_SOURCE, ftp).await);
    expect_reply(&mut control, "220").await;
    control.get_mut().write_all(b"USER alice\r\n").await.expect("USER");
    expect_reply(&mut control, "331").await;
    let pass = format!("PASS {TEST_PASSWORD}\r\n");
    control.get_mut().write_all(pass.as_bytes()).await.expect("PASS");
    expect_reply(&mut control, "230").await;
}

async fn fresh_implicit_ftps(ftps: SocketAddr) {
    // Not TLS: an admitted connection's handshake fails with an alert (a TLS record of type
    // 21), where a refused one would be closed without a byte.
    let mut stream = connect_from(FRESH_SOURCE, ftps).await;
    stream.write_all(b"USER alice\r\n").await.expect("send");
    let mut answer = Vec::new();
    let _ = bounded("the TLS alert", stream.read_to_end(&mut answer)).await;
    assert_eq!(answer.first(), Some(&21), "a TLS alert from the implicit listener: {answer:?}");
}

async fn fresh_sftp_identification(sftp: SocketAddr) {
    let mut stream = BufReader::new(connect_from(FRESH_SOURCE, sftp).await);
    let mut line = String::new();
    bounded("the SSH identification", stream.read_line(&mut line)).await.expect("read");
    assert!(line.starts_with("SSH-2.0-Wharf"), "{line:?}");
}

async fn fresh_metrics_scrape(metrics: SocketAddr) {
    let mut stream = connect_from(FRESH_SOURCE, metrics).await;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let mut answer = String::new();
    bounded("the scrape", stream.read_to_string(&mut answer)).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

async fn fresh_tftp_read(tftp: SocketAddr) {
    let socket = UdpSocket::bind(SocketAddr::new(FRESH_SOURCE, 0)).await.expect("bind");
    socket.send_to(b"\x00\x01boot.bin\x00octet\x00", tftp).await.expect("RRQ");
    let mut packet = [0u8; 600];
    let (len, from) = bounded("the first DATA", socket.recv_from(&mut packet)).await.expect("recv");
    assert_eq!(&packet[..4], [0, 3, 0, 1], "DATA block 1");
    assert_eq!(&packet[4..len], b"firmware");
    // Acknowledge the only block so the transfer ends at once.
    socket.send_to(&[0, 4, 0, 1], from).await.expect("ACK");
}

/// Open files the low-limit test runs the server with (soft and hard).
const LOW_LIMIT: usize = 256;

/// `wharf <args>` under an open-file limit of [`LOW_LIMIT`] (set by the shell, which then
/// runs the binary in its place), its standard error going to `stderr` when given.
fn under_low_limit(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("sh");
    command
        .current_dir(dir)
        .env("WHARF_EPHEMERAL_PORTS", "1")
        .env_remove("RUST_LOG")
        .arg("-c")
        .arg(format!("ulimit -n {LOW_LIMIT} && exec \"$0\" \"$@\" 2>>wharf.err"))
        .arg(common::WHARF)
        .args(args);
    command
}

#[test]
fn under_a_low_open_file_limit_sessions_are_refused_before_descriptors_run_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_alice_and_devices(tmp.path());
    // The default caps (50 per address): the limit, not the caps, must stop the flood.
    let config = write(
        tmp.path(),
        "wharf.yaml",
        "data_dir: data\nshutdown_grace: 5s\naccess: { users_file: users.yaml }\n\
         ftp: { listen: [\"127.0.0.1:0\"], login_timeout: 10m }\n",
    );
    let config = config.to_str().expect("path");
    // What the budget holds, from the binary's own accounting of this configuration: the
    // limit less the reserve (the process's own and the one listener), each session its
    // worst case (the FTP session's and one mount, the most any user has).
    let reserve = wharf::descriptors::PROCESS_RESERVE + 1;
    let per_session = wharf_ftp::DESCRIPTORS_PER_SESSION + 1;
    let fit = (LOW_LIMIT - reserve) / per_session;
    assert!(fit < 50, "the test needs a limit below the caps");

    let check = wharf_testkit::run_bounded(
        &mut under_low_limit(tmp.path(), &["check", "--config", config]),
        Duration::from_secs(60),
    );
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{summary}");
    assert!(
        summary.contains(&format!("warning: the open-file limit ({LOW_LIMIT}) cannot hold")),
        "wharf check warns: {summary}"
    );

    let serve = ["serve", "--log-format", "json", "--config", config];
    let server = common::start(under_low_limit(tmp.path(), &serve));
    let ftp = server.listener("FTP");
    let runtime = runtime();
    runtime.block_on(async {
        let (mut seen, mut hold) = flood(ftp, fit + 10).await;
        admitted_and_refused(
            "the greetings and refusals",
            &mut seen,
            ("220", fit),
            ("421 too many sessions; try again later.\r\n", 10),
        )
        .await;
        assert!(descriptors(&server) < LOW_LIMIT, "the budget keeps the server under its limit");
        // A session that ends gives its descriptors back.
        hold.abort_all();
        while hold.join_next().await.is_some() {}
        let mut served = false;
        for _ in 0..100 {
            let mut control = BufReader::new(connect_from(FRESH_SOURCE, ftp).await);
            let mut line = String::new();
            bounded("a reply", control.read_line(&mut line)).await.expect("read");
            if line.starts_with("220") {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served, "served again once the flood's sessions ended");
    });
    drop(runtime);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(tmp.path().join("wharf.err")).expect("the server's log");
    assert!(log.contains(&format!("\"soft\":\"{LOW_LIMIT}\"")), "the limit is logged: {log}");
    assert!(log.contains("cannot hold every configured session"), "start-up warns: {log}");
}

#[test]
fn after_a_reload_sessions_are_charged_for_the_new_users_mounts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let users = |mounts: &str| {
        write(
            tmp.path(),
            "data/users.yaml",
            &format!(
                "users:\n  - {{ name: alice, passwordless: true, home: alice, \
                 protocols: [tftp], mounts: {{ {mounts} }} }}\n"
            ),
        );
    };
    users("");
    let config = "data_dir: data\naccess: { users_file: users.yaml }\n\
                  ftp: { listen: [\"127.0.0.1:0\"] }\n";
    let config = write(tmp.path(), "wharf.yaml", config);
    let runtime = runtime();
    runtime.block_on(async {
        let loaded = wharf::LoadedConfig::load(Some(&config)).expect("configuration");
        let metrics = std::sync::Arc::new(wharf::observe::metrics::Metrics::default());
        let server =
            wharf::Server::start_limited(loaded, metrics, Some(10_000)).await.expect("start");
        let ftp = server.listener("FTP").expect("FTP");
        let budget = &server.gateway().descriptors;
        // Admission takes a session's worst case at accept: the FTP session's own and one per
        // mount of the user with the most (the home alone, then two more after the reload).
        let greeted = |stream: TcpStream| async move {
            let mut control = BufReader::new(stream);
            let mut line = String::new();
            bounded("the greeting", control.read_line(&mut line)).await.expect("read");
            assert!(line.starts_with("220"), "{line}");
            control
        };
        let first = greeted(connect_from(FRESH_SOURCE, ftp).await).await;
        assert_eq!(budget.held(), wharf_ftp::DESCRIPTORS_PER_SESSION + 1);
        users("/a: a, /b: b");
        server.reload().expect("reload");
        let second = greeted(connect_from(FRESH_SOURCE, ftp).await).await;
        assert_eq!(
            budget.held(),
            2 * wharf_ftp::DESCRIPTORS_PER_SESSION + 1 + 3,
            "the session admitted after the reload holds its user's two more mounts"
        );
        drop((first, second));
        assert!(server.shutdown().await);
    });
}
