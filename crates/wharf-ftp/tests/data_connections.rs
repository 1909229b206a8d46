//! Data connections: passive and active set-up, the RFC 2577 protections, IPv6, and what the
//! control connection does while a transfer runs (ABOR, STAT, NOOP, queued commands).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::{TestServer, bounded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use wharf_ftp::{PassiveAddress, PortRange};
use wharf_testkit::pattern;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_and_eprt_only_to_the_client_and_unprivileged_ports() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut client = server.login("alice").await;
        for refused in [
            "PORT 10,0,0,1,195,80",
            "PORT 127,0,0,2,195,80",
            "PORT 127,0,0,1,0,21",
            "PORT 127,0,0,1,3,255",
            "EPRT |1|192.0.2.1|50000|",
            "EPRT |1|127.0.0.1|22|",
            "EPRT |2|::1|50000|",
        ] {
            let reply = client.cmd(refused).await;
            assert_eq!(reply.code, 504, "{refused}: {reply:?}");
        }
        client.expect("PORT 127,0,0,1,4", 501).await;
        client.expect("EPRT |9|x|1|", 522).await;
        client.expect("PORT 127,0,0,1,4,0", 200).await;
        client.expect("EPRT |1|127.0.0.1|1024|", 200).await;
        // After EPSV ALL only EPSV may set up data connections.
        client.expect("EPSV ALL", 200).await;
        client.expect("PASV", 503).await;
        client.expect("PORT 127,0,0,1,4,0", 503).await;
        client.expect("EPRT |1|127.0.0.1|1024|", 503).await;
        client.expect("EPSV", 229).await;
        client.expect("EPSV 2", 522).await;
        client.expect("EPSV 1", 229).await;

        let disabled = TestServer::start_with(common::USERS, |c| c.active_mode = false, None).await;
        let mut client = disabled.login("alice").await;
        client.expect("PORT 127,0,0,1,4,0", 502).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_mode_connects_back_to_the_client() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let content = pattern(1_000_000);
        server.share.put("alice/active.bin", &content);
        let mut client = server.login("alice").await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let [hi, lo] = port.to_be_bytes();
        client.expect(&format!("PORT 127,0,0,1,{hi},{lo}"), 200).await;
        client.expect("RETR active.bin", 150).await;
        let (mut data, from) = bounded("accept", listener.accept()).await.expect("server connects");
        assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut received = Vec::new();
        bounded("read", data.read_to_end(&mut received)).await.expect("read");
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert!(received == content, "active download is byte-exact");

        client.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 200).await;
        client.expect("STOR up.bin", 150).await;
        let (mut data, _) = bounded("accept", listener.accept()).await.expect("server connects");
        data.write_all(&content[..1000]).await.expect("write");
        drop(data);
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert_eq!(
            std::fs::read(server.share.root.join("alice/up.bin")).expect("up"),
            &content[..1000]
        );

        // Nobody listening: the connection fails with 425 and the session goes on.
        drop(listener);
        client.expect(&format!("PORT 127,0,0,1,{hi},{lo}"), 200).await;
        client.expect("RETR active.bin", 150).await;
        assert_eq!(client.reply().await.expect("425").code, 425);
        client.expect("NOOP", 200).await;
    })
    .await
}

/// Three consecutive ports that are free right now, below Linux's default ephemeral range
/// (from 32768), so that no outgoing connection of this or another test is given one of
/// them meanwhile: a range taken from an ephemeral port could be taken by a client's
/// connection before the server binds it.
fn free_range_below_the_ephemeral_ports() -> PortRange {
    let start = 20_000 + (std::process::id() % 3_000) as u16 * 3;
    (0..1_000u16)
        .map(|step| start.wrapping_add(step * 3) % 12_000 + 20_000)
        .find(|&first| {
            let held: Vec<_> = (first..=first + 2)
                .filter_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
                .collect();
            held.len() == 3
        })
        .map(|first| PortRange { first, last: first + 2 })
        .expect("three free ports below 32768")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_ports_come_from_the_range_and_the_announced_address() {
    common::within_test_limit(async {
        let range = free_range_below_the_ephemeral_ports();
        let server =
            TestServer::start_with(common::USERS, |c| c.passive_ports = Some(range), None).await;
        server.share.put("alice/f.txt", b"hello");
        let mut client = server.login("alice").await;
        for _ in 0..5 {
            let addr = client.pasv().await;
            assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!((range.first..=range.last).contains(&addr.port()), "{addr} outside {range}");
            let mut data = TcpStream::connect(addr).await.expect("data");
            client.expect("RETR f.txt", 150).await;
            let mut got = Vec::new();
            data.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, b"hello");
            assert_eq!(client.reply().await.expect("226").code, 226);
        }
        // Every port of the range held by other sessions: PASV says so.
        let mut holders = Vec::new();
        for _ in 0..3 {
            let mut holder = server.login("alice").await;
            holder.pasv().await;
            holders.push(holder);
        }
        client.expect("PASV", 425).await;

        let nat = TestServer::start_with(
            common::USERS,
            |c| c.passive_address = PassiveAddress::Public(Ipv4Addr::new(203, 0, 113, 7)),
            None,
        )
        .await;
        let mut client = nat.login("alice").await;
        let announced = client.pasv().await;
        assert_eq!(announced.ip(), IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_connections_only_from_the_control_peer() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/private.txt", b"for alice only");
        let mut client = server.login("alice").await;
        let data_addr = client.epsv().await;
        // Another address on the loopback network connects first.
        let intruder = TcpSocket::new_v4().expect("socket");
        intruder.bind("127.0.0.2:0".parse().expect("addr")).expect("bind 127.0.0.2");
        let mut intruder = intruder.connect(data_addr).await.expect("intruder connects");
        client.expect("RETR private.txt", 150).await;
        let mut stolen = Vec::new();
        let _ = bounded("intruder read", intruder.read_to_end(&mut stolen)).await;
        assert!(stolen.is_empty(), "the intruder got nothing");
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        let mut got = Vec::new();
        data.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"for alice only");
        assert_eq!(client.reply().await.expect("226").code, 226);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_data_connection_is_bounded() {
    common::within_test_limit(async {
        let server = TestServer::start_with(
            common::USERS,
            |c| c.data_connect_timeout = Duration::from_millis(300),
            None,
        )
        .await;
        server.share.put("alice/f.txt", b"x");
        let mut client = server.login("alice").await;
        client.epsv().await;
        client.expect("RETR f.txt", 150).await;
        assert_eq!(client.reply().await.expect("425").code, 425);
        client.expect("RETR f.txt", 425).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_control_and_data_connections() {
    common::within_test_limit(async {
        if !wharf_testkit::require_ipv6_loopback() {
            return;
        }
        let server = TestServer::start_with(
            common::USERS,
            |c| c.listen = vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)],
            None,
        )
        .await;
        assert!(server.addr.is_ipv6());
        server.share.put("alice/v6.txt", b"over IPv6");
        let mut client = server.login("alice").await;
        client.expect("PASV", 425).await;
        client.expect("EPSV 1", 522).await;
        let (got, done) = client.download("RETR v6.txt").await;
        assert_eq!((got.as_slice(), done.code), (&b"over IPv6"[..], 226));
        let active = TcpListener::bind("[::1]:0").await.expect("listen v6");
        let port = active.local_addr().expect("addr").port();
        client.expect(&format!("EPRT |2|::1|{port}|"), 200).await;
        client.expect("RETR v6.txt", 150).await;
        let (mut data, _) = bounded("accept", active.accept()).await.expect("server connects");
        let mut got = Vec::new();
        data.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"over IPv6");
        assert_eq!(client.reply().await.expect("226").code, 226);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abor_during_a_download_and_an_upload() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/huge.bin", &pattern(64 * 1024 * 1024));
        let mut client = server.login("alice").await;
        let data_addr = client.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        client.expect("RETR huge.bin", 150).await;
        // Read a little, then stop reading: the server blocks on a full socket.
        let mut first = vec![0u8; 64 * 1024];
        data.read_exact(&mut first).await.expect("first bytes");
        client.send("ABOR").await;
        assert_eq!(client.reply().await.expect("426").code, 426);
        assert_eq!(client.reply().await.expect("226").code, 226);
        let mut rest = Vec::new();
        let _ = bounded("drain", data.read_to_end(&mut rest)).await;
        assert!(rest.len() < 60 * 1024 * 1024, "the download stopped early");
        client.expect("NOOP", 200).await;

        // An aborted whole-file upload leaves nothing behind.
        let data_addr = client.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        client.expect("STOR aborted.bin", 150).await;
        data.write_all(&pattern(1_000_000)).await.expect("write");
        client.send("ABOR").await;
        assert_eq!(client.reply().await.expect("426").code, 426);
        assert_eq!(client.reply().await.expect("226").code, 226);
        // The temporary file goes once the block being written when the upload was dropped
        // is over, which may be just after the 226 (it is never listed meanwhile).
        let home = server.share.root.join("alice");
        let names = || -> Vec<_> {
            std::fs::read_dir(&home)
                .expect("home")
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect()
        };
        let only_the_download = || names() == vec![std::ffi::OsString::from("huge.bin")];
        common::wait_until("the temporary file's removal", only_the_download).await;
        assert_eq!(
            names(),
            vec![std::ffi::OsString::from("huge.bin")],
            "no partial or temporary file"
        );
        // The session is still usable for a transfer.
        let (head, done) = {
            client.expect("RANG 0 9", 350).await;
            client.download("RETR huge.bin").await
        };
        assert_eq!((head.len(), done.code), (10, 226));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_connection_is_read_during_a_transfer() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut client = server.login("alice").await;
        let data_addr = client.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        client.expect("STOR slow.bin", 150).await;
        data.write_all(&[7u8; 5000]).await.expect("write");
        data.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = client.expect("STAT", 211).await;
        assert!(
            status.text().contains("Transfer in progress: STOR /slow.bin, 5000 bytes"),
            "{status:?}"
        );
        client.expect("NOOP", 200).await;
        // Other commands wait for the transfer to end, then run in order.
        client.send("PWD").await;
        client.send("SIZE slow.bin").await;
        let early = tokio::time::timeout(Duration::from_millis(300), client.reply()).await;
        assert!(early.is_err(), "PWD must wait for the transfer: {early:?}");
        data.write_all(&[7u8; 5000]).await.expect("write");
        drop(data);
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert_eq!(client.reply().await.expect("257").code, 257);
        assert_eq!(client.reply().await.expect("213").text(), "10000");
        // QUIT during a transfer closes after the transfer's reply.
        let data_addr = client.epsv().await;
        let mut data = TcpStream::connect(data_addr).await.expect("data");
        client.expect("STOR last.bin", 150).await;
        client.send("QUIT").await;
        data.write_all(b"bye").await.expect("write");
        drop(data);
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert_eq!(client.reply().await.expect("221").code, 221);
        assert!(client.reply().await.is_none());
        assert_eq!(std::fs::read(server.share.root.join("alice/last.bin")).expect("last"), b"bye");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnet_abort_sequence_before_abor_is_understood() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/big.bin", &pattern(32 * 1024 * 1024));
        let mut client = server.login("alice").await;
        let data_addr = client.epsv().await;
        let data = TcpStream::connect(data_addr).await.expect("data");
        client.expect("RETR big.bin", 150).await;
        // IAC IP IAC DM, as `ftp` clients send before ABOR.
        client.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n").await;
        assert_eq!(client.reply().await.expect("426").code, 426);
        assert_eq!(client.reply().await.expect("226").code, 226);
        drop(data);
        client.expect("NOOP", 200).await;
    })
    .await
}

/// The reply to `PASV`/`EPSV` of a client this close (loopback) leaves no sooner than
/// `passive_reply_delay` after the command was read, so curl before 8.7 finds it only once it
/// waits on the control connection (`src/pacing.rs`). Measured from before the command is
/// sent, so the bound holds whatever the machine's load; without the hold a loopback round
/// trip takes a fraction of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_replies_to_a_nearby_client_wait_for_the_configured_delay() {
    common::within_test_limit(async {
        let delay = wharf_ftp::config::MAX_PASSIVE_REPLY_DELAY;
        let server =
            TestServer::start_with(common::USERS, |c| c.passive_reply_delay = delay, None).await;
        let mut client = server.login("alice").await;
        let mut quickest = Duration::MAX;
        for command in ["EPSV", "PASV"].into_iter().cycle().take(40) {
            let sent = std::time::Instant::now();
            let reply = client.cmd(command).await;
            quickest = quickest.min(sent.elapsed());
            assert!(reply.code == 229 || reply.code == 227, "{command}: {reply:?}");
        }
        assert!(quickest >= delay, "a passive reply came after {quickest:?}, before {delay:?}");
    })
    .await
}

/// A client that asked for `FEAT` (lftp, FileZilla, WinSCP; curl never does) waits for its
/// passive replies and is not held (`src/pacing.rs`). The delay is set far beyond its
/// configurable range, so a held reply could not come within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_replies_to_a_client_that_asked_for_features_are_not_held() {
    common::within_test_limit(async {
        let delay = Duration::from_secs(30);
        let server =
            TestServer::start_with(common::USERS, |c| c.passive_reply_delay = delay, None).await;
        let mut client = server.login("alice").await;
        assert_eq!(client.cmd("FEAT").await.code, 211);
        for command in ["EPSV", "PASV"] {
            let sent = std::time::Instant::now();
            let reply = client.cmd(command).await;
            assert!(reply.code == 229 || reply.code == 227, "{command}: {reply:?}");
            let took = sent.elapsed();
            assert!(took < delay / 2, "{command} was held for {took:?}");
        }
    })
    .await
}
