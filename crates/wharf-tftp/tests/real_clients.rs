//! The clients devices and operators really use: tftp-hpa's `tftp`, `atftp` and curl. Under
//! `CI=true` a missing client fails the test (`.ci/run` installs them); elsewhere it is
//! skipped with a message.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TestServer, atftp, bounded, output_text, run_client};
use wharf_testkit::{pattern, require_tool, tree_digest};

const SIZES: [usize; 5] = [0, 511, 512, 1024 * 1024, 1024 * 1024 + 7];

/// tftp-hpa's client: `tftp -m MODE 127.0.0.1 PORT -c COMMAND ARGS...`. It exits 0 even when
/// the server refuses, so callers look at its output.
fn tftp_hpa(tftp: &Path, server: &TestServer, mode: &str, command: &[&str]) -> Command {
    let mut cmd = Command::new(tftp);
    cmd.args(["-m", mode, "127.0.0.1", &server.addr.port().to_string(), "-c"]).args(command);
    cmd
}

fn curl_url(server: &TestServer, remote: &str) -> String {
    format!("tftp://127.0.0.1:{}/{remote}", server.addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_downloads_and_uploads_byte_exact() {
    let Some(tftp) = require_tool("tftp") else { return };
    bounded(120, async {
        let server = TestServer::usual().await;
        let local = tempfile::tempdir().expect("tempdir");
        for size in SIZES {
            let content = pattern(size);
            server.put(&format!("d{size}.bin"), &content);
            let target = local.path().join(format!("d{size}.bin"));
            let out = run_client(
                tftp_hpa(
                    &tftp,
                    &server,
                    "octet",
                    &["get", &format!("d{size}.bin"), &target.display().to_string()],
                ),
                60,
            )
            .await;
            assert!(!output_text(&out).contains("Error"), "{size}: {}", output_text(&out));
            assert!(
                std::fs::read(&target).expect("downloaded") == content,
                "download of {size} bytes"
            );

            let source = local.path().join(format!("u{size}.bin"));
            std::fs::write(&source, &content).expect("local file");
            let out = run_client(
                tftp_hpa(
                    &tftp,
                    &server,
                    "octet",
                    &["put", &source.display().to_string(), &format!("incoming/u{size}.bin")],
                ),
                60,
            )
            .await;
            assert!(!output_text(&out).contains("Error"), "{size}: {}", output_text(&out));
            assert!(
                server.read(&format!("incoming/u{size}.bin")) == content,
                "upload of {size} bytes"
            );
        }
        server.stop().await;
    })
    .await;
}

/// 40 MiB at tftp-hpa's fixed 512-byte blocks: 81,921 lock-step round trips and a block
/// number that wraps past 65535.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_rolls_over_at_512_byte_blocks() {
    let Some(tftp) = require_tool("tftp") else { return };
    bounded(240, async {
        let server = TestServer::usual().await;
        let content = pattern(40 << 20);
        server.put("big.bin", &content);
        let local = tempfile::tempdir().expect("tempdir");
        let target = local.path().join("big.bin");
        let out = run_client(
            tftp_hpa(&tftp, &server, "octet", &["get", "big.bin", &target.display().to_string()]),
            200,
        )
        .await;
        assert!(!output_text(&out).contains("Error"), "{}", output_text(&out));
        assert!(std::fs::read(&target).expect("downloaded") == content, "40 MiB differ");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_netascii_converts_both_ways() {
    let Some(tftp) = require_tool("tftp") else { return };
    bounded(60, async {
        let server = TestServer::usual().await;
        let local_text =
            b"first line\nsecond line\n\nbare\rcarriage return\nno newline at the end".repeat(40);
        server.put("notes.txt", &local_text);
        let local = tempfile::tempdir().expect("tempdir");
        let target = local.path().join("notes.txt");
        let out = run_client(
            tftp_hpa(
                &tftp,
                &server,
                "netascii",
                &["get", "notes.txt", &target.display().to_string()],
            ),
            60,
        )
        .await;
        assert!(!output_text(&out).contains("Error"), "{}", output_text(&out));
        assert!(std::fs::read(&target).expect("downloaded") == local_text, "netascii download");

        let source = local.path().join("up.txt");
        std::fs::write(&source, &local_text).expect("local file");
        let out = run_client(
            tftp_hpa(
                &tftp,
                &server,
                "netascii",
                &["put", &source.display().to_string(), "incoming/up.txt"],
            ),
            60,
        )
        .await;
        assert!(!output_text(&out).contains("Error"), "{}", output_text(&out));
        assert!(server.read("incoming/up.txt") == local_text, "netascii upload");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_is_refused_where_the_identity_may_not_write() {
    let Some(tftp) = require_tool("tftp") else { return };
    bounded(60, async {
        let server = TestServer::usual().await;
        server.put("firmware.bin", b"original firmware");
        let local = tempfile::tempdir().expect("tempdir");
        let source = local.path().join("evil.bin");
        std::fs::write(&source, b"evil").expect("local file");
        let before = tree_digest(server.root());
        for remote in ["firmware.bin", "new.bin"] {
            let out = run_client(
                tftp_hpa(&tftp, &server, "octet", &["put", &source.display().to_string(), remote]),
                60,
            )
            .await;
            assert!(output_text(&out).contains("Error code 2"), "{remote}: {}", output_text(&out));
        }
        assert_eq!(tree_digest(server.root()), before, "the tree is unchanged");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_with_blksize_and_windowsize() {
    let Some(atftp_bin) = require_tool("atftp") else { return };
    bounded(120, async {
        let server = TestServer::usual().await;
        let local = tempfile::tempdir().expect("tempdir");
        let options: [&[&str]; 2] = [&["blksize 1468"], &["blksize 1468", "windowsize 8"]];
        for (round, options) in options.into_iter().enumerate() {
            for size in SIZES {
                let content = pattern(size);
                server.put(&format!("d{size}.bin"), &content);
                let target = local.path().join(format!("{round}-d{size}.bin"));
                let out = run_client(
                    atftp(&atftp_bin, &server, options, "-g", &format!("d{size}.bin"), &target),
                    60,
                )
                .await;
                assert!(out.status.success(), "{options:?} {size}: {}", output_text(&out));
                assert!(
                    std::fs::read(&target).expect("downloaded") == content,
                    "{options:?}: {size} bytes"
                );

                let source = local.path().join(format!("{round}-u{size}.bin"));
                std::fs::write(&source, &content).expect("local file");
                let remote = format!("incoming/{round}-u{size}.bin");
                let out =
                    run_client(atftp(&atftp_bin, &server, options, "-p", &remote, &source), 60)
                        .await;
                assert!(out.status.success(), "{options:?} {size}: {}", output_text(&out));
                assert!(server.read(&remote) == content, "{options:?}: upload of {size} bytes");
            }
        }
        // 40 MiB with a window: rollover at 512-byte blocks without 81,921 round trips.
        let content = pattern(40 << 20);
        server.put("big.bin", &content);
        let target = local.path().join("big.bin");
        let out = run_client(
            atftp(&atftp_bin, &server, &["blksize 512", "windowsize 16"], "-g", "big.bin", &target),
            120,
        )
        .await;
        assert!(out.status.success(), "{}", output_text(&out));
        assert!(std::fs::read(&target).expect("downloaded") == content, "40 MiB differ");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_tftp_blksize() {
    let Some(curl) = require_tool("curl") else { return };
    bounded(120, async {
        let server = TestServer::usual().await;
        let local = tempfile::tempdir().expect("tempdir");
        for (blksize, size) in
            [("512", 0), ("1468", 511), ("1468", 1024 * 1024), ("8192", 1024 * 1024 + 7)]
        {
            let content = pattern(size);
            server.put(&format!("c{size}.bin"), &content);
            let target = local.path().join(format!("c{size}.bin"));
            let mut cmd = Command::new(&curl);
            cmd.args(["-sS", "--tftp-blksize", blksize, "-o"])
                .arg(&target)
                .arg(curl_url(&server, &format!("c{size}.bin")));
            let out = run_client(cmd, 60).await;
            assert!(out.status.success(), "{size}: {}", output_text(&out));
            assert!(
                std::fs::read(&target).expect("downloaded") == content,
                "curl download of {size} bytes"
            );

            let source = local.path().join(format!("cu{size}.bin"));
            std::fs::write(&source, &content).expect("local file");
            let mut cmd = Command::new(&curl);
            cmd.args(["-sS", "--tftp-blksize", blksize, "-T"])
                .arg(&source)
                .arg(curl_url(&server, &format!("incoming/cu{size}.bin")));
            let out = run_client(cmd, 60).await;
            assert!(out.status.success(), "{size}: {}", output_text(&out));
            assert!(
                server.read(&format!("incoming/cu{size}.bin")) == content,
                "curl upload of {size} bytes"
            );
        }
        // A refusal is an error for curl too.
        let mut cmd = Command::new(&curl);
        cmd.args(["-sS", "-o"])
            .arg(local.path().join("none"))
            .arg(curl_url(&server, "missing.bin"));
        let out = run_client(cmd, 60).await;
        assert!(!out.status.success(), "{}", output_text(&out));
        server.stop().await;
    })
    .await;
}
