//! What the share looks like across a crash and a restart, on the real binary driven by curl:
//! temporary files a crash left behind are swept at start (and the folder holding one can be
//! removed), and an overwrite keeps the file's permission bits.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{serve, write};
use wharf_testkit::{TEST_PASSWORD, require_tool, run_bounded};

/// A scratch directory with a configuration serving FTP to `alice` (every right in her home).
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    write(
        tmp.path(),
        "data/users.yaml",
        &format!("users:\n  - name: alice\n    password: \"{hash}\"\n    home: alice\n"),
    );
    let config = write(
        tmp.path(),
        "wharf.yaml",
        "data_dir: data\naccess: { users_file: users.yaml, login_failure_delay: 10ms }\n\
         ftp: { listen: [\"127.0.0.1:0\"] }\n",
    );
    (tmp, config)
}

fn home(tmp: &Path) -> PathBuf {
    tmp.join("data/share/alice")
}

/// curl against the server's FTP listener; returns its exit code and what it printed.
fn curl(mut command: Command) -> (i32, String) {
    let out = run_bounded(&mut command, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

fn ftp_url(server: &common::Running, path: &str) -> String {
    format!("ftp://alice:{TEST_PASSWORD}@{}{path}", server.listener("FTP"))
}

#[test]
fn a_crash_leftover_is_swept_at_start_and_its_folder_can_be_removed() {
    let Some(curl_path) = require_tool("curl") else { return };
    let (tmp, config) = setup();
    // What a crash leaves: a half-written upload, hidden, in a folder that lists empty.
    let crashed = home(tmp.path()).join("crashed");
    std::fs::create_dir_all(&crashed).expect("mkdir");
    let leftover = crashed.join(".wharf-tmp-00000000c0ffee00");
    let file = std::fs::File::create(&leftover).expect("leftover");
    file.set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400)).expect("mtime");
    drop(file);

    let server = serve(tmp.path(), &config);
    // The sweep starts with the server; on a tree this small its first pass takes a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while leftover.exists() {
        assert!(Instant::now() < deadline, "the leftover is still there 30 s after start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut rmd = Command::new(&curl_path);
    rmd.args(["-sS", "--max-time", "30", "-Q", "RMD crashed", &ftp_url(&server, "/")]);
    let (code, stderr) = curl(rmd);
    assert_eq!(code, 0, "RMD of the folder: {stderr}");
    assert!(!crashed.exists());
    server.stop();
}

#[test]
fn an_ftp_overwrite_keeps_the_files_mode() {
    let Some(curl_path) = require_tool("curl") else { return };
    let (tmp, config) = setup();
    let secret = home(tmp.path()).join("secret.key");
    std::fs::create_dir_all(home(tmp.path())).expect("mkdir");
    std::fs::write(&secret, b"old key").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let local = tmp.path().join("client/secret.key");
    write(tmp.path(), "client/secret.key", "new key");

    let server = serve(tmp.path(), &config);
    let mut put = Command::new(&curl_path);
    put.args(["-sS", "--max-time", "30", "-T"]).arg(&local).arg(ftp_url(&server, "/secret.key"));
    let (code, stderr) = curl(put);
    assert_eq!(code, 0, "upload: {stderr}");
    assert_eq!(std::fs::read(&secret).expect("read"), b"new key");
    let mode = std::fs::metadata(&secret).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the overwrite kept the file private");
    server.stop();
}
