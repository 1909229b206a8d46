//! What a TFTP server must survive: malformed datagrams, strangers on a transfer's port, lost
//! and duplicated ACKs, too many clients, retransmitted requests, shutdown.

mod common;

use std::time::Duration;

use common::client::{Behaviour, Manual, download, error_code, exchange, exchange_from};
use common::{TestServer, bounded, config};
use tokio::net::UdpSocket;
use wharf_testkit::pattern;
use wharf_tftp::TftpConfig;
use wharf_tftp::packet::{Packet, encode_ack};

const SHORT: Duration = Duration::from_millis(300);
/// How long a reply the test waits for may take (a bound, not a measure).
const ANSWER: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_answered_or_ignored_and_serving_goes_on() {
    bounded(30, async {
        let server = TestServer::usual().await;
        let content = pattern(2000);
        server.put("ok.bin", &content);
        let mut oversized = b"\x00\x01".to_vec();
        oversized.extend(std::iter::repeat_n(b'a', 9000));
        let cases: &[(&str, &[u8], Option<u16>)] = &[
            ("empty", b"", None),
            ("half an opcode", b"\x00", None),
            ("unknown opcode", b"\x00\x09hello", Some(4)),
            ("opcode zero", b"\x00\x00", Some(4)),
            ("RRQ without NUL", b"\x00\x01ok.bin", Some(4)),
            ("RRQ without mode", b"\x00\x01ok.bin\x00", Some(4)),
            ("RRQ with empty name", b"\x00\x01\x00octet\x00", Some(4)),
            ("RRQ with unknown mode", b"\x00\x01ok.bin\x00ebcdic\x00", Some(4)),
            ("option without value", b"\x00\x01ok.bin\x00octet\x00blksize\x00", Some(4)),
            ("option name not text", b"\x00\x01ok.bin\x00octet\x00\xff\x001\x00", Some(4)),
            ("oversized request", &oversized, Some(4)),
            ("ACK to the listener", b"\x00\x04\x00\x01", Some(5)),
            ("DATA to the listener", b"\x00\x03\x00\x01abc", Some(5)),
            ("ERROR to the listener", b"\x00\x05\x00\x00go away\x00", None),
        ];
        for (what, datagram, expected) in cases {
            let reply = exchange(server.addr, datagram, SHORT).await;
            match expected {
                None => assert!(reply.is_none(), "{what}: expected silence, got {reply:?}"),
                Some(code) => {
                    let (reply, _) = reply.unwrap_or_else(|| panic!("{what}: no answer"));
                    assert_eq!(error_code(&reply), Some(*code), "{what}: {reply:?}");
                }
            }
        }
        let got =
            download(server.addr, "ok.bin", &Behaviour::default()).await.expect("still serving");
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_inside_a_transfer_is_ignored() {
    bounded(30, async {
        let server = TestServer::usual().await;
        let content = pattern(1500);
        server.put("g.bin", &content);
        let mut client = Manual::new(server.addr, "127.0.0.1").await;
        client.read_request("g.bin", &[]).await;
        let (block, first) = client.expect_data(Duration::from_secs(2)).await;
        assert_eq!(block, 1);
        for garbage in [
            &b"\x00\x09junk"[..],
            b"\x00\x04\x00",
            b"\x00\x04\x00\x01\x00",
            b"\x00\x03\x00\x01x",
            b"",
        ] {
            client.send(garbage).await;
        }
        assert!(client.finish_after_first_block(first).await == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_unknown_transfer_id_and_change_nothing() {
    bounded(30, async {
        let server =
            TestServer::with_config(TftpConfig { timeout: Duration::from_secs(2), ..config() })
                .await;
        let content = pattern(1200);
        server.put("tid.bin", &content);
        let mut client = Manual::new(server.addr, "127.0.0.1").await;
        client.read_request("tid.bin", &[]).await;
        let (_, first) = client.expect_data(Duration::from_secs(2)).await;
        let tid = client.tid.expect("tid");
        // Another port acknowledges block 1 to the transfer's port.
        let stranger = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        stranger.send_to(&encode_ack(1), tid).await.expect("send");
        let mut buf = [0u8; 600];
        let (len, from) = tokio::time::timeout(SHORT, stranger.recv_from(&mut buf))
            .await
            .expect("an answer to the stranger")
            .expect("recv");
        assert_eq!(from, tid);
        assert_eq!(error_code(&buf[..len]), Some(5));
        // The stranger's ACK did not move the transfer on: no DATA 2 for the client.
        assert!(client.receive(SHORT).await.is_none(), "the stranger's ACK was taken");
        assert!(client.finish_after_first_block(first).await == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dropping_every_tenth_ack_still_gets_the_file() {
    bounded(60, async {
        let server =
            TestServer::with_config(TftpConfig { timeout: Duration::from_millis(100), ..config() })
                .await;
        let content = pattern(100 * 1024);
        server.put("lossy.bin", &content);
        let lock_step = Behaviour { drop_every_nth_ack: Some(10), ..Behaviour::default() };
        let got = download(server.addr, "lossy.bin", &lock_step).await.expect("download");
        assert!(got.data == content, "lock-step: bytes differ");
        assert!(got.data_packets > got.blocks, "dropped ACKs must have caused retransmissions");
        let windowed = Behaviour {
            drop_every_nth_ack: Some(10),
            ..Behaviour::with_options(&[("blksize", "1024"), ("windowsize", "4")])
        };
        let got = download(server.addr, "lossy.bin", &windowed).await.expect("download");
        assert!(got.data == content, "windowed: bytes differ");
        assert!(got.data_packets > got.blocks);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_acks_do_not_double_the_traffic() {
    bounded(60, async {
        let server =
            TestServer::with_config(TftpConfig { timeout: Duration::from_secs(2), ..config() })
                .await;
        let content = pattern(300 * 1024);
        server.put("dup.bin", &content);
        for options in [&[][..], &[("blksize", "1024"), ("windowsize", "8")][..]] {
            let behaviour = Behaviour { duplicate_acks: true, ..Behaviour::with_options(options) };
            let got = download(server.addr, "dup.bin", &behaviour).await.expect("download");
            assert!(got.data == content);
            // With the Sorcerer's Apprentice bug every block would come twice.
            assert!(
                got.data_packets <= got.blocks + 1,
                "{options:?}: {} DATA for {} blocks",
                got.data_packets,
                got.blocks
            );
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_are_capped_per_address_and_in_total() {
    bounded(30, async {
        let server = TestServer::with_config(TftpConfig {
            max_transfers: 2,
            max_transfers_per_address: 1,
            timeout: Duration::from_secs(2),
            ..config()
        })
        .await;
        let content = pattern(700);
        server.put("cap.bin", &content);
        // One transfer from 127.0.0.1 is held open after its first block.
        let mut holder = Manual::new(server.addr, "127.0.0.1").await;
        holder.read_request("cap.bin", &[]).await;
        let (_, first) = holder.expect_data(Duration::from_secs(2)).await;

        let refused =
            download(server.addr, "cap.bin", &Behaviour::default()).await.expect_err("per address");
        assert_eq!(refused.code(), Some(0), "{refused:?}");
        assert!(format!("{refused:?}").contains("your address"), "{refused:?}");

        // Another address may still start one; then the total is reached.
        let mut second = Manual::new(server.addr, "127.0.0.2").await;
        second.read_request("cap.bin", &[]).await;
        let _ = second.expect_data(Duration::from_secs(2)).await;
        let third = Behaviour { source: "127.0.0.3".parse().expect("ip"), ..Behaviour::default() };
        let refused = download(server.addr, "cap.bin", &third).await.expect_err("total");
        assert!(format!("{refused:?}").contains("too many transfers"), "{refused:?}");

        // Places are given back when transfers end: a transfer's thread gives its place back
        // once it has read the last ACK, which may be just after the client sent it, so a
        // request refused for the cap in between is asked again (bounded) until admitted.
        assert!(holder.finish_after_first_block(first).await == content);
        second.ack(1).await;
        let _ = second.finish_download(2, 512).await;
        let mut attempts = 0;
        let got = loop {
            attempts += 1;
            match download(server.addr, "cap.bin", &Behaviour::default()).await {
                Ok(got) => break got,
                Err(refused) if attempts < 100 && refused.code() == Some(0) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(refused) => panic!("not admitted again: {refused:?}"),
            }
        };
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmitted_request_starts_no_second_transfer() {
    bounded(30, async {
        let server =
            TestServer::with_config(TftpConfig { timeout: Duration::from_secs(2), ..config() })
                .await;
        server.put("once.bin", &pattern(2000));
        let mut client = Manual::new(server.addr, "127.0.0.1").await;
        client.read_request("once.bin", &[]).await;
        client.read_request("once.bin", &[]).await;
        let mut senders = Vec::new();
        while let Some((datagram, from)) = client.receive(SHORT).await {
            assert!(matches!(Packet::parse(&datagram), Ok(Packet::Data { block: 1, .. })));
            senders.push(from);
        }
        assert_eq!(senders.len(), 1, "one transfer, one DATA 1: {senders:?}");
        client.ack(1).await;
        let rest = client.finish_download(2, 512).await;
        assert_eq!(rest.len(), 2000 - 512);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_stops_new_requests_and_lets_transfers_finish() {
    bounded(30, async {
        let mut server =
            TestServer::with_config(TftpConfig { timeout: Duration::from_secs(2), ..config() })
                .await;
        let content = pattern(3000);
        server.put("drain.bin", &content);
        let mut running = Manual::new(server.addr, "127.0.0.1").await;
        running.read_request("drain.bin", &[]).await;
        let (_, first) = running.expect_data(Duration::from_secs(2)).await;

        let shutdown = server.share.gateway.shutdown.clone();
        let stopping =
            tokio::spawn(async move { shutdown.shut_down(Duration::from_secs(10)).await });
        // The positive signal: the listeners are closed. Only then is silence an answer.
        server.listeners_closed().await;
        assert!(
            exchange(
                server.addr,
                &Packet::Rrq(wharf_tftp::packet::Request {
                    filename: b"drain.bin",
                    mode: wharf_tftp::packet::TransferMode::Octet,
                    options: vec![],
                })
                .to_bytes(),
                SHORT
            )
            .await
            .is_none(),
            "no new transfer while draining"
        );

        assert!(
            running.finish_after_first_block(first).await == content,
            "the running transfer finished"
        );
        assert!(stopping.await.expect("shutdown task"), "ended within the grace period");
    })
    .await;
}

/// A server and a client whose download of `cut.bin` waits for the ACK of its first block
/// (for seconds: the server's retransmission timeout is 5 s).
async fn download_waiting_for_its_first_ack() -> (TestServer, Manual) {
    let server =
        TestServer::with_config(TftpConfig { timeout: Duration::from_secs(5), ..config() }).await;
    server.put("cut.bin", &pattern(3000));
    let mut client = Manual::new(server.addr, "127.0.0.1").await;
    client.read_request("cut.bin", &[]).await;
    let _ = client.expect_data(Duration::from_secs(2)).await;
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_the_grace_period_cuts_transfers_with_an_error() {
    bounded(30, async {
        let (server, mut client) = download_waiting_for_its_first_ack().await;
        let clean = server.share.gateway.shutdown.shut_down(Duration::from_millis(200)).await;
        assert!(!clean, "the transfer was still running when the grace period ended");
        let (datagram, _) = client.receive(Duration::from_secs(2)).await.expect("an ERROR");
        assert_eq!(error_code(&datagram), Some(0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_and_denied_addresses_are_ignored_and_forged_garbage_bans_no_one() {
    bounded(30, async {
        let server = TestServer::usual().await;
        let content = pattern(1000);
        server.put("d.bin", &content);
        let defender = server.share.gateway.defender();
        defender.reconfigure(wharf_access::DefenderConfig {
            threshold: 4,
            deny: vec!["127.0.0.3/32".parse().expect("net")],
            ..wharf_access::DefenderConfig::default()
        });
        // Garbage from an address whose source nobody verified does not count against it. Each
        // datagram is answered (ERROR 4), so the server has dealt with all of them when the
        // verdict is asked for.
        for attempt in 0..20 {
            let garbage = b"\x00\x09garbage";
            let reply = exchange_from("127.0.0.4", server.addr, garbage, ANSWER).await;
            let (reply, _) = reply.unwrap_or_else(|| panic!("garbage {attempt} not answered"));
            assert_eq!(error_code(&reply), Some(4), "garbage {attempt}: {reply:?}");
        }
        assert!(defender.verdict("127.0.0.4".parse().expect("ip")).is_allowed());

        // An address banned through another protocol, and a deny-listed one, get no answer.
        let banned: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
        defender.report(banned, wharf_access::Offense::LoginFailed);
        defender.report(banned, wharf_access::Offense::LoginFailed);
        assert!(!defender.verdict(banned).is_allowed());
        for source in ["127.0.0.2", "127.0.0.3"] {
            let mut client = Manual::new(server.addr, source).await;
            client.read_request("d.bin", &[]).await;
            assert!(client.receive(SHORT).await.is_none(), "{source} was answered");
        }
        let got =
            download(server.addr, "d.bin", &Behaviour::default()).await.expect("others served");
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_ending_the_session_cuts_its_transfer_with_an_error() {
    bounded(30, async {
        let (server, mut client) = download_waiting_for_its_first_ack().await;
        let live = server.share.gateway.authenticator.live_sessions();
        let listed = live.list();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].transfers[0].path.as_str(), "/cut.bin");
        assert!(live.kill(listed[0].id));
        // The transfer waits for the next ACK; it answers with an ERROR instead of DATA.
        let (datagram, _) = client.receive(Duration::from_secs(2)).await.expect("an ERROR");
        assert_eq!(error_code(&datagram), Some(0));
        assert!(String::from_utf8_lossy(&datagram).contains("administrator"));
    })
    .await;
}
