//! Every TFTP transfer shows in the audit log like any other protocol's: one event per login,
//! download and upload, with the identity, the protocol, the path, the bytes and the outcome.

mod common;

use common::client::{Behaviour, download, upload};
use common::{TestServer, bounded, config, rule};
use wharf_testkit::{CapturedLog, pattern};
use wharf_tftp::TftpConfig;

fn has(lines: &[String], parts: &[&str]) -> bool {
    lines.iter().any(|line| parts.iter().all(|part| line.contains(part)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_and_refusals_are_audited() {
    let log = CapturedLog::global();
    bounded(30, async {
        let server = TestServer::with_config(TftpConfig {
            rules: vec![rule("127.0.0.1/32", "devices")],
            ..config()
        })
        .await;
        server.put("audited.bin", &pattern(4321));
        download(server.addr, "audited.bin", &Behaviour::default()).await.expect("download");
        upload(server.addr, "incoming/in.bin", &pattern(1234), &Behaviour::default())
            .await
            .expect("upload");
        upload(server.addr, "denied.bin", b"x", &Behaviour::default())
            .await
            .expect_err("read only");
        let stranger =
            Behaviour { source: "127.0.0.9".parse().expect("ip"), ..Behaviour::default() };
        download(server.addr, "audited.bin", &stranger).await.expect_err("no rule");
        server.stop().await;
    })
    .await;
    let lines = log.audit_lines();
    let all = lines.join("\n");
    assert!(
        has(&lines, &["user=devices", "protocol=\"tftp\"", "op=\"login\"", "outcome=\"ok\""]),
        "{all}"
    );
    assert!(
        has(&lines, &["op=\"download\"", "path=\"/audited.bin\"", "bytes=4321", "outcome=\"ok\""]),
        "{all}"
    );
    assert!(
        has(
            &lines,
            &["op=\"upload\"", "path=\"/incoming/in.bin\"", "bytes=1234", "outcome=\"ok\""]
        ),
        "{all}"
    );
    assert!(has(&lines, &["op=\"upload\"", "path=\"/denied.bin\"", "outcome=\"denied\""]), "{all}");
    assert!(
        has(&lines, &["op=\"login\"", "peer=127.0.0.9", "outcome=\"denied\"", "no TFTP rule"]),
        "{all}"
    );
}
