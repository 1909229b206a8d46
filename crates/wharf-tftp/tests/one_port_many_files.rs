//! tftp-hpa fetching several files in one run (`tftp host -c get f1 f2 ...`) sends every
//! request from the same client port, right after the last ACK of the file before. Each
//! request is a new one and is served at once, not after the client's 5-second retransmission.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, bounded, output_text, run_client};
use wharf_testkit::{pattern, require_tool};

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
