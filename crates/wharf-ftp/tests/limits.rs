//! Limits that protect the server: login and idle timeouts, session caps, over-long lines,
//! and a graceful shutdown that lets transfers finish.

mod common;

use std::time::Duration;

use common::{RawClient, TestServer, bounded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_access::SessionLimits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout_closes_a_session_that_never_logs_in() {
    common::within_test_limit(async {
        let server = TestServer::start_with(
            common::USERS,
            |c| c.login_timeout = Duration::from_millis(500),
            None,
        )
        .await;
        let mut client = RawClient::connect(server.addr).await;
        // Commands do not extend the time to log in.
        for _ in 0..3 {
            client.expect("NOOP", 200).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reply = client.reply().await.expect("421");
        assert_eq!(reply.code, 421, "{reply:?}");
        assert!(reply.text().contains("Login timeout"), "{reply:?}");
        assert!(client.reply().await.is_none());
        // Logged in in time, the login timeout no longer applies.
        let mut client = server.login("alice").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        client.expect("NOOP", 200).await;
    })
    .await
}

/// Sends a command line one byte every 100 ms, never finishing it, for at most `limit`
/// (stopping when the server has closed), then returns everything the server said.
async fn dribble(mut stream: TcpStream, limit: Duration) -> String {
    let line = b"USER a-name-that-takes-a-very-long-time-to-arrive";
    let started = tokio::time::Instant::now();
    for byte in line.iter().cycle() {
        if started.elapsed() > limit || stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut said = Vec::new();
    let _ = bounded("read to the close", stream.read_to_end(&mut said)).await;
    String::from_utf8_lossy(&said).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_line_sent_slowly_does_not_hold_the_session() {
    // Slowloris: bytes that never make a line extend neither the login nor the idle timeout.
    common::within_test_limit(async {
        let server = TestServer::start_with(
            common::USERS,
            |c| {
                c.login_timeout = Duration::from_millis(500);
                c.idle_timeout = Duration::from_millis(500);
            },
            None,
        )
        .await;
        let stream = bounded("connect", TcpStream::connect(server.addr)).await.expect("connect");
        let said = dribble(stream, Duration::from_secs(3)).await;
        assert!(said.starts_with("220"), "{said}");
        assert!(said.contains("421 Login timeout"), "closed before login: {said}");
        assert!(!said.contains("\r\n500"), "the partial line was never a command: {said}");

        let client = server.login("alice").await;
        let said = dribble(client.into_stream(), Duration::from_secs(3)).await;
        assert!(said.contains("421 Idle timeout"), "closed after login: {said}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_an_idle_session() {
    common::within_test_limit(async {
        let server = TestServer::start_with(
            common::USERS,
            |c| c.idle_timeout = Duration::from_millis(400),
            None,
        )
        .await;
        let mut client = server.login("alice").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.expect("NOOP", 200).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.expect("NOOP", 200).await;
        let reply = client.reply().await.expect("421");
        assert_eq!(reply.code, 421);
        assert!(reply.text().contains("Idle timeout"), "{reply:?}");
        assert!(client.reply().await.is_none());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_is_not_an_idle_session() {
    common::within_test_limit(async {
        let server = TestServer::start_with(
            common::USERS,
            |c| c.idle_timeout = Duration::from_millis(300),
            None,
        )
        .await;
        let mut client = server.login("alice").await;
        let data_addr = client.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        client.expect("STOR slow.bin", 150).await;
        for _ in 0..6 {
            data.write_all(b"tick").await.expect("write");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(data);
        assert_eq!(client.reply().await.expect("226").code, 226);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_data_connection_is_given_up_and_the_old_file_kept() {
    common::within_test_limit(async {
        let server = TestServer::start_with(
            common::USERS,
            |c| c.data_stall_timeout = Duration::from_millis(400),
            None,
        )
        .await;
        server.share.put("alice/kept.bin", b"the old content");
        let mut client = server.login("alice").await;
        let data_addr = client.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        client.expect("STOR kept.bin", 150).await;
        data.write_all(b"a start, then nothing").await.expect("write");
        let reply = client.reply().await.expect("426");
        assert_eq!(reply.code, 426, "{reply:?}");
        assert!(reply.text().contains("stalled"), "{reply:?}");
        assert_eq!(
            std::fs::read(server.share.root.join("alice/kept.bin")).expect("kept"),
            b"the old content"
        );
        client.expect("NOOP", 200).await;
        drop(data);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_the_share_is_refused_without_blocking() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/placeholder", b"");
        let fifo = server.share.root.join("alice/pipe");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        let mut client = server.login("alice").await;
        client.epsv().await;
        let refused = client.cmd("RETR pipe").await;
        assert!(refused.code >= 500, "a FIFO is not served: {refused:?}");
        let data_addr = client.epsv().await;
        let _data = TcpStream::connect(data_addr).await.expect("data");
        let reply = client.cmd("APPE pipe").await;
        assert!(reply.code >= 500, "nor appended to: {reply:?}");
        client.expect("NOOP", 200).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_caps_per_address_and_in_total() {
    common::within_test_limit(async {
        let limits = SessionLimits { max_sessions: 3, max_sessions_per_address: 2 };
        let server = TestServer::start_with(common::USERS, |c| c.limits = limits, None).await;
        let first = RawClient::connect(server.addr).await;
        let _second = RawClient::connect(server.addr).await;
        let mut refused = TcpStream::connect(server.addr).await.expect("connect");
        let mut text = String::new();
        bounded("refusal", refused.read_to_string(&mut text)).await.expect("read");
        assert!(text.starts_with("421 ") && text.contains("from your address"), "{text:?}");
        // A session ending gives its place back.
        drop(first);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut again = RawClient::connect(server.addr).await;
        assert_eq!(again.greeting.code, 220);
        again.expect("NOOP", 200).await;
        // The total cap counts every address (127.0.0.2 is another loopback address).
        let other = tokio::net::TcpSocket::new_v4().expect("socket");
        other.bind("127.0.0.2:0".parse().expect("addr")).expect("bind");
        let other = other.connect(server.addr).await.expect("connect");
        let mut other_reader = tokio::io::BufReader::new(other);
        let mut line = String::new();
        bounded("greeting", tokio::io::AsyncBufReadExt::read_line(&mut other_reader, &mut line))
            .await
            .expect("read");
        assert!(line.starts_with("220"), "{line:?}");
        let other2 = tokio::net::TcpSocket::new_v4().expect("socket");
        other2.bind("127.0.0.2:0".parse().expect("addr")).expect("bind");
        let mut other2 = other2.connect(server.addr).await.expect("connect");
        let mut text = String::new();
        bounded("refusal", other2.read_to_string(&mut text)).await.expect("read");
        assert!(text.starts_with("421 ") && text.contains("too many sessions"), "{text:?}");
    })
    .await
}

/// What the server sends a new connection on `addr` before it closes or goes quiet: the
/// first reply line.
async fn first_line(addr: std::net::SocketAddr) -> String {
    let stream = bounded("connect", TcpStream::connect(addr)).await.expect("connect");
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    bounded("first line", tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line))
        .await
        .expect("read");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_budget_refuses_with_421_below_the_caps() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let gateway = &server.share.gateway;
        // Each session's worst case: the FTP session's own and one per mount of the user
        // with the most mounts. Room for two, far below the caps (50 per address).
        let worst = wharf_ftp::DESCRIPTORS_PER_SESSION + gateway.authenticator.users().max_mounts();
        gateway.descriptors.set_capacity(2 * worst + worst - 1);
        let first = RawClient::connect(server.addr).await;
        let _second = RawClient::connect(server.addr).await;
        assert_eq!(gateway.descriptors.held(), 2 * worst);
        let mut refused = bounded("connect", TcpStream::connect(server.addr)).await.expect("tcp");
        let mut text = String::new();
        bounded("refusal", refused.read_to_string(&mut text)).await.expect("read to the end");
        assert_eq!(text, "421 too many sessions; try again later.\r\n", "then closed");
        assert_eq!(gateway.descriptors.held(), 2 * worst, "the refused one took nothing");
        // A session that ends gives its descriptors back (once the server has seen it end).
        drop(first);
        let mut greeted = false;
        for _ in 0..100 {
            if first_line(server.addr).await.starts_with("220") {
                greeted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(greeted, "a new session is admitted once one has ended");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_lines_are_refused_then_the_connection_closed() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut client = RawClient::connect(server.addr).await;
        let long = format!("USER {}\r\n", "x".repeat(5000));
        client.send_raw(long.as_bytes()).await;
        assert_eq!(client.reply().await.expect("500").code, 500);
        client.expect("NOOP", 200).await;
        // A line that never ends is cut off too, without the server buffering it.
        client.send_raw(&vec![b'y'; 20_000]).await;
        assert_eq!(client.reply().await.expect("500").code, 500);
        client.send_raw(b"\r\n").await;
        client.expect("NOOP", 200).await;
        client.send_raw(long.as_bytes()).await;
        let reply = client.reply().await.expect("421");
        assert_eq!(reply.code, 421, "third over-long line: {reply:?}");
        assert!(client.reply().await.is_none());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_sessions_and_lets_transfers_finish() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut idle = server.login("alice").await;
        let mut busy = server.login("alice").await;
        let data_addr = busy.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        busy.expect("STOR during-shutdown.bin", 150).await;
        data.write_all(b"first half ").await.expect("write");

        let gateway = server.share.gateway.clone();
        let shutdown =
            tokio::spawn(async move { gateway.shutdown.shut_down(Duration::from_secs(20)).await });
        let reply = idle.reply().await.expect("421");
        assert_eq!(reply.code, 421, "{reply:?}");
        assert!(idle.reply().await.is_none());
        // No new sessions once draining.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = TcpStream::connect(server.addr).await;
        if let Ok(mut stream) = refused {
            let mut rest = Vec::new();
            let _ = bounded("refused", stream.read_to_end(&mut rest)).await;
            assert!(rest.is_empty(), "a new session was served while draining");
        }
        // The transfer goes on and completes, then the session closes.
        data.write_all(b"second half").await.expect("write");
        drop(data);
        assert_eq!(busy.reply().await.expect("226").code, 226);
        assert_eq!(busy.reply().await.expect("421").code, 421);
        assert!(
            bounded("shutdown", shutdown).await.expect("joined"),
            "ended within the grace period"
        );
        let stored =
            std::fs::read(server.share.root.join("alice/during-shutdown.bin")).expect("stored");
        assert_eq!(stored, b"first half second half");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_ends_transfers_that_take_too_long() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut busy = server.login("alice").await;
        let data_addr = busy.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        busy.expect("STOR never-finished.bin", 150).await;
        data.write_all(b"partial").await.expect("write");
        let gateway = server.share.gateway.clone();
        let clean =
            bounded("shutdown", gateway.shutdown.shut_down(Duration::from_millis(300))).await;
        assert!(!clean, "the transfer outlived the grace period");
        assert_eq!(busy.reply().await.expect("426").code, 426);
        assert_eq!(busy.reply().await.expect("421").code, 421);
        assert!(!server.share.root.join("alice/never-finished.bin").exists());
    })
    .await
}
