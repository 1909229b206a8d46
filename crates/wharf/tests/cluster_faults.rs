//! A node of a cluster killed in the middle of an upload: the file it was replacing stays as
//! it was, and no partial file is visible through the node that is left.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{serve, users_file, write};
use wharf_testkit::{TEST_PASSWORD, pattern, require_tool, run_bounded};

/// How long the upload may take to get going before the node is killed.
const START_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_node_killed_mid_upload_leaves_the_old_file_and_nothing_partial() {
    let Some(curl) = require_tool("curl") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let share = dir.join("share");
    std::fs::create_dir_all(&share).expect("share");
    users_file(dir, "users.yaml", &["alice"]);
    let old = pattern(70_000);
    std::fs::write(share.join("firmware.bin"), &old).expect("old file");
    let base = dir.display();
    let configs: Vec<_> = (0..2)
        .map(|index| {
            write(
                dir,
                &format!("node-{index}.yaml"),
                &format!(
                    "data_dir: {base}/node-{index}\nstorage: {{ root: {base}/share }}\n\
                     access: {{ users_file: {base}/users.yaml }}\nftp: {{ listen: [\"127.0.0.1:0\"] }}\n"
                ),
            )
        })
        .collect();
    let mut doomed = serve(dir, &configs[0]);
    let survivor = serve(dir, &configs[1]);

    // A slow replacement of the file through the first node.
    let new = pattern(4 * 1024 * 1024).into_iter().map(|byte| !byte).collect::<Vec<_>>();
    let local = dir.join("new.bin");
    std::fs::write(&local, &new).expect("new file");
    let url = |node: &common::Running, path: &str| {
        format!("ftp://alice:{TEST_PASSWORD}@{}{path}", node.listener("FTP"))
    };
    let mut upload = Command::new(&curl)
        .args(["-sS", "--max-time", "120", "--limit-rate", "200K", "-T"])
        .arg(&local)
        .arg(url(&doomed, "/firmware.bin"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    // The positive signal: the upload's hidden temporary file holds some of its bytes.
    let started = Instant::now();
    loop {
        let partial = std::fs::read_dir(&share)
            .expect("share")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(".wharf-tmp-"))
            .any(|entry| entry.metadata().is_ok_and(|meta| meta.len() > 64 * 1024));
        if partial {
            break;
        }
        assert!(started.elapsed() < START_LIMIT, "the upload did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    doomed.process.0.kill().expect("kill the node");
    let _ = doomed.process.0.wait();
    let _ = upload.wait();

    // Through the node that is left: the old file, whole, and nothing else listed.
    let copy = dir.join("copy.bin");
    let mut download = Command::new(&curl);
    download
        .args(["-sS", "--max-time", "60", "-o"])
        .arg(&copy)
        .arg(url(&survivor, "/firmware.bin"));
    assert!(run_bounded(&mut download, Duration::from_secs(90)).status.success());
    assert!(std::fs::read(&copy).expect("copy") == old, "the old file is intact");
    let mut listing = Command::new(&curl);
    listing.args(["-sS", "--max-time", "60", "--list-only"]).arg(url(&survivor, "/"));
    let out = run_bounded(&mut listing, Duration::from_secs(90));
    assert!(out.status.success());
    let names = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names, ["firmware.bin"], "no partial file is visible");
    assert!(survivor.stop().success());
}
