//! atftp asking for 64 KiB blocks and a window of 16 (`--option "blksize 65464" --option
//! "windowsize 16"`): 16 blocks of 64 KiB overran atftp's receive buffer in every window, each
//! lost window cost a retransmission timeout, and 64 MiB came at 0.25 MB/s. The window granted
//! now fits a receive buffer, so asking for a window is never slower than not asking.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestServer, atftp, bounded, config, output_text, run_client};
use wharf_testkit::{pattern, require_tool};
use wharf_tftp::TftpConfig;

/// Downloads `remote` with atftp asking for `options` into `local`; returns how long it took.
async fn timed_get(
    atftp_bin: &Path,
    server: &TestServer,
    options: &[&str],
    remote: &str,
    local: &Path,
) -> Duration {
    let started = Instant::now();
    let out = run_client(atftp(atftp_bin, server, options, "-g", remote, local), 100).await;
    let took = started.elapsed();
    assert!(out.status.success(), "{options:?}: {}", output_text(&out));
    took
}

/// 8 MiB, three times each way. With the old window, every download lost several windows to
/// overruns, each costing the default 1 s timeout (8 MiB took several seconds); now one takes
/// tens of milliseconds, like lock-step. The bound fails on a single lost window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_with_64k_blocks_and_a_window_of_16_loses_no_window() {
    let Some(atftp_bin) = require_tool("atftp") else { return };
    bounded(200, async {
        // The default timeout, as a server runs: a window lost to an overrun costs all of it.
        let server = TestServer::with_config(TftpConfig {
            timeout: TftpConfig::default().timeout,
            ..config()
        })
        .await;
        let content = pattern(8 << 20);
        server.put("image.bin", &content);
        let local = tempfile::tempdir().expect("tempdir");
        let lock_step_options = ["blksize 65464"];
        let windowed_options = ["blksize 65464", "windowsize 16"];
        let mut report = Vec::new();
        for round in 0..3 {
            let target = local.path().join(format!("lock-{round}.bin"));
            let lock_step =
                timed_get(&atftp_bin, &server, &lock_step_options, "image.bin", &target).await;
            assert!(std::fs::read(&target).expect("downloaded") == content);
            let target = local.path().join(format!("window-{round}.bin"));
            let windowed =
                timed_get(&atftp_bin, &server, &windowed_options, "image.bin", &target).await;
            assert!(std::fs::read(&target).expect("downloaded") == content);
            report.push(format!("lock-step {lock_step:?}, windowsize 16 {windowed:?}"));
            assert!(windowed < Duration::from_secs(1), "a window was lost: {report:?}");
        }
        eprintln!("{report:#?}");
        server.stop().await;
    })
    .await;
}
