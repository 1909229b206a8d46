//! curl (libssh2) as an SFTP client, with a password.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ALICE as USERS, Server, bounded};
use wharf_testkit::{TEST_PASSWORD, pattern, require_tool, run_bounded};

const MIB: usize = 1024 * 1024;

/// Runs curl with `args` against the server; returns (exit code, stderr).
async fn curl(server: &Server, password: &str, args: Vec<String>) -> (Option<i32>, String) {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-k", "--user", &format!("alice:{password}")])
        .args(args)
        .current_dir(server.share.tmp.path());
    let output =
        tokio::task::spawn_blocking(move || run_bounded(&mut command, Duration::from_secs(90)))
            .await
            .expect("curl task");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_downloads_and_uploads_with_a_password() {
    if require_tool("curl").is_none() {
        return;
    }
    bounded(async {
        let server = Server::start(USERS).await;
        let base = format!("sftp://127.0.0.1:{}", server.addr.port());
        let local = server.share.tmp.path();
        for size in [0, 1, MIB, 100 * MIB] {
            let data = pattern(size);
            server.share.put(&format!("alice/down-{size}"), &data);
            let out = local.join(format!("got-{size}"));
            let (code, stderr) = curl(
                &server,
                TEST_PASSWORD,
                vec![format!("{base}/down-{size}"), "-o".into(), out.display().to_string()],
            )
            .await;
            assert_eq!(code, Some(0), "download of {size} bytes: {stderr}");
            assert!(std::fs::read(&out).expect("downloaded") == data, "download of {size} differs");

            let source = local.join(format!("send-{size}"));
            std::fs::write(&source, &data).expect("local");
            let (code, stderr) = curl(
                &server,
                TEST_PASSWORD,
                vec!["-T".into(), source.display().to_string(), format!("{base}/up-{size}")],
            )
            .await;
            assert_eq!(code, Some(0), "upload of {size} bytes: {stderr}");
            let up = std::fs::read(server.share.root.join(format!("alice/up-{size}"))).expect("up");
            assert!(up == data, "upload of {size} bytes differs");
        }
        // A wrong password: curl's "login denied".
        let (code, _) = curl(&server, "not the password", vec![format!("{base}/down-1")]).await;
        assert_eq!(code, Some(67), "curl exit code for a refused login");
        server.stop().await;
    })
    .await;
}
