//! Idle sessions must stay cheap: Wharf's sessions are tasks, not processes, and the target is
//! at most 64 KiB of resident memory per idle logged-in session. Alone in its test binary so
//! no other test disturbs the measurement.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use common::TestServer;

const SESSIONS: usize = 300;
const BUDGET_PER_SESSION: usize = 64 * 1024;

/// This process's resident memory (the server runs in it).
fn resident_bytes() -> usize {
    usize::try_from(wharf_testkit::resident_bytes(std::process::id())).expect("fits")
}

/// Opens a control connection, logs in and leaves the session idle.
fn idle_session(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream.try_clone().expect("clone");
    let mut line = String::new();
    let mut expect = |code: &str, reader: &mut BufReader<TcpStream>| {
        line.clear();
        reader.read_line(&mut line).expect("reply");
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
    };
    expect("220", &mut reader);
    // Anonymous, so the measurement is the session's and not the password hash's: an argon2
    // check takes ~19 MiB, which the allocator keeps per thread once used.
    writer.write_all(b"USER anonymous\r\n").expect("send");
    expect("331", &mut reader);
    writer.write_all(b"PASS idle@example.com\r\n").expect("send");
    expect("230", &mut reader);
    writer.write_all(b"PWD\r\n").expect("send");
    expect("257", &mut reader);
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_stay_small() {
    common::within_test_limit(async {
        let server = TestServer::start_with(
            common::USERS,
            |c| {
                c.anonymous_user = Some("guest".into());
                c.limits.max_sessions = 10_000;
                c.limits.max_sessions_per_address = 10_000;
            },
            None,
        )
        .await;
        let addr = server.addr;
        let measured = tokio::task::spawn_blocking(move || {
            // Warm up allocator arenas, the blocking pool and the login path first.
            let warm: Vec<_> = (0..20).map(|_| idle_session(addr)).collect();
            drop(warm);
            std::thread::sleep(std::time::Duration::from_millis(300));
            let before = resident_bytes();
            let sessions: Vec<_> = (0..SESSIONS).map(|_| idle_session(addr)).collect();
            std::thread::sleep(std::time::Duration::from_millis(300));
            let after = resident_bytes();
            drop(sessions);
            after.saturating_sub(before) / SESSIONS
        })
        .await
        .expect("sessions");
        eprintln!("resident memory per idle session: {measured} bytes");
        assert!(measured <= BUDGET_PER_SESSION, "{measured} bytes per idle session");
    })
    .await
}

#[tokio::test]
async fn a_session_future_is_small() {
    common::within_test_limit(async {
        let share = wharf_testkit::TestShare::new(common::USERS);
        let config = wharf_ftp::FtpConfig { listen: vec![], ..wharf_ftp::FtpConfig::default() };
        let service =
            wharf_ftp::FtpService::new(config, share.gateway.clone(), None).expect("service");
        let (stream, _client) = tokio::io::duplex(64);
        let addr: std::net::SocketAddr = "127.0.0.1:2121".parse().expect("addr");
        let connection = wharf_ftp::ControlConnection {
            stream: Box::new(stream),
            peer: addr,
            local: addr,
            tls: None,
            policy: wharf_ftp::TlsPolicy::default(),
            probe: None,
        };
        let permit = service.admit(addr.ip()).expect("admitted");
        let session = service.serve(connection, permit);
        let size = std::mem::size_of_val(&session);
        eprintln!("session future: {size} bytes");
        // Every task of an idle session holds this much; transfers are boxed separately.
        assert!(size <= 16 * 1024, "session future is {size} bytes");
    })
    .await
}
