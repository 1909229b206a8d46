//! tftp-hpa fetching several files in one run (`tftp host -c get f1 f2 ...`) sends every
//! request from the same client port, right after the last ACK of the file before. Each
//! request is a new one and is served at once, not after the client's 5-second retransmission.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::client::Manual;
use common::{TestServer, bounded, config, output_text, run_client};
use wharf_testkit::CapturedLog;
use wharf_testkit::{pattern, require_tool};
use wharf_tftp::TftpConfig;
use wharf_tftp::packet::Packet;

/// 20 files in one run. While a request from the port of a transfer not yet done reading its
/// last ACK was taken for a retransmission, most files after the first waited for tftp-hpa's
/// retransmission (5 s each; runs took 20-55 s); served at once, the run takes about 0.1 s on
/// loopback. The bound leaves room for a loaded machine and fails on a single such wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_gets_twenty_files_from_one_port_without_waiting() {
    let Some(tftp) = require_tool("tftp") else { return };
    bounded(120, async {
        let server = TestServer::usual().await;
        let local = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = (0..20).map(|i| format!("boot{i}.bin")).collect();
        for (i, name) in names.iter().enumerate() {
            // Sizes on both sides of a block, so some files end in their first DATA.
            server.put(name, &pattern(100 + i * 97));
        }
        let mut cmd = Command::new(&tftp);
        // tftp-hpa's `get` with several names saves each under its own name in the working
        // directory.
        cmd.current_dir(local.path())
            .args(["-m", "octet", "127.0.0.1", &server.addr.port().to_string(), "-c", "get"])
            .args(&names);
        let started = Instant::now();
        let out = run_client(cmd, 110).await;
        let took = started.elapsed();
        assert!(!output_text(&out).contains("Error"), "{}", output_text(&out));
        for (i, name) in names.iter().enumerate() {
            let got = std::fs::read(local.path().join(name)).expect("downloaded");
            assert!(got == pattern(100 + i * 97), "{name} differs");
        }
        assert!(took < Duration::from_secs(4), "20 files took {took:?}: {}", output_text(&out));
        server.stop().await;
    })
    .await;
}

/// A client that asks for another file from the port of a transfer it has not finished has
/// moved on: the new request is served at once from a new transfer ID, and the old transfer
/// sends nothing more (a client that does not check transfer IDs, like tftp-hpa's, would take
/// the old transfer's retransmissions for the new one's blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_request_from_the_port_of_a_running_transfer_supersedes_it() {
    let log = CapturedLog::global();
    bounded(60, async {
        // A long timeout: the old transfer's retransmission could not come before the new
        // request has superseded it.
        let server =
            TestServer::with_config(TftpConfig { timeout: Duration::from_secs(2), ..config() })
                .await;
        server.put("first.bin", &pattern(5000));
        server.put("second.bin", &pattern(700));
        let mut client = Manual::new(server.addr, "127.0.0.1").await;
        client.read_request("first.bin", &[]).await;
        let (block, _) = client.expect_data(Duration::from_secs(5)).await;
        assert_eq!(block, 1);
        let old_tid = client.tid.take().expect("first transfer ID");

        // Block 1 is never acknowledged; the client asks for another file instead.
        client.read_request("second.bin", &[]).await;
        let (datagram, from) = client.receive(Duration::from_secs(5)).await.expect("an answer");
        assert_ne!(from, old_tid, "the new request is served from a new transfer ID");
        assert!(matches!(Packet::parse(&datagram), Ok(Packet::Data { block: 1, .. })));
        let second = client.finish_after_first_block(datagram[4..].to_vec()).await;
        assert!(second == pattern(700));

        // The old transfer ends at its next timeout without retransmitting block 1.
        let peer = format!("peer={}", client.socket.local_addr().expect("client address"));
        log.wait_for(&["client moved on to a new request", &peer], 20).await;
        while let Some((_, from)) = client.receive(Duration::from_millis(50)).await {
            assert_ne!(from, old_tid, "the superseded transfer sent again");
        }
        server.stop().await;
    })
    .await;
}
