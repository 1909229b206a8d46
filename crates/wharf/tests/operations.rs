//! Running it in production: drain on SIGTERM, reload on SIGHUP, the audit and transfer logs,
//! a full disk, quotas and bandwidth limits — on the real binary, driven by curl.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, WHARF, finish, serve, wharf, write};
use wharf_testkit::{Seaweed, TEST_PASSWORD, pattern, require_tool, run_bounded};

/// How long the server may take to log that it acted on a signal.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// What the server logs when a reload is refused (`crates/wharf/src/server.rs`).
const RELOAD_REFUSED: &str = "reload failed; keeping the previous configuration";

/// A scratch directory with a configuration serving FTP, SFTP and TFTP and a users file.
struct Setup {
    tmp: tempfile::TempDir,
    config: PathBuf,
    users_file: PathBuf,
    hash: String,
}

/// Users every test starts with; `$HASH` is the hash of the test password.
const USERS: &str = r#"users:
  - name: alice
    password: "$HASH"
    home: alice
  - name: carol
    password: "$HASH"
    home: carol
    bandwidth: { download: 1MiB }
  - name: small
    password: "$HASH"
    home: small
    quota: { bytes: 64KiB }
  - name: devices
    passwordless: true
    home: devices
    protocols: [tftp]
    quota: { bytes: 64KiB }
"#;

impl Setup {
    fn new(extra: &str) -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let hash =
            wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
        let users_file = write(tmp.path(), "data/users.yaml", &USERS.replace("$HASH", &hash));
        let config = write(
            tmp.path(),
            "wharf.yaml",
            &format!(
                "data_dir: data\nshutdown_grace: 30s\n\
                 access: {{ users_file: users.yaml, login_failure_delay: 10ms }}\n\
                 log: {{ audit_file: logs/audit.jsonl, transfer_log: logs/xferlog }}\n\
                 ftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
                 sftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
                 tftp:\n  listen: [\"127.0.0.1:0\"]\n  rules: [{{ network: 127.0.0.0/8, identity: devices }}]\n\
                 {extra}"
            ),
        );
        Setup { tmp, config, users_file, hash }
    }

    fn share(&self) -> PathBuf {
        self.tmp.path().join("data/share")
    }

    fn serve(&self) -> Running {
        serve(self.tmp.path(), &self.config)
    }

    /// Writes a local file for curl to upload.
    fn local(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.tmp.path().join("client").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }
}

fn curl() -> Option<Command> {
    let curl = require_tool("curl")?;
    let mut command = Command::new(curl);
    command.args(["-sS", "--max-time", "60"]);
    Some(command)
}

fn ftp_url(server: &Running, user: &str, path: &str) -> String {
    format!("ftp://{user}:{TEST_PASSWORD}@{}{path}", server.listener("FTP"))
}

fn sftp_url(server: &Running, path: &str) -> String {
    format!("sftp://{}{path}", server.listener("SFTP"))
}

fn tftp_url(server: &Running, path: &str) -> String {
    format!("tftp://{}{path}", server.listener("TFTP"))
}

/// Runs curl to completion; returns its exit code.
fn run(mut command: Command) -> i32 {
    let out = run_bounded(&mut command, Duration::from_secs(90));
    out.status.code().unwrap_or(-1)
}

/// Starts curl in the background.
fn spawn(mut command: Command) -> Child {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("curl")
}

/// Waits (bounded) until an upload's temporary file shows in `dir`: the transfer is running.
fn wait_for_upload_in_progress(dir: &Path) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let busy = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with(".wharf-tmp-"))
            })
            .unwrap_or(false);
        if busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no upload started in {}", dir.display());
}

/// Names in `dir`, hidden ones included.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Starts `curl` uploading 3 MiB as alice to `/big.bin` at 1 MiB/s and returns once the upload
/// is under way, with what it sends.
fn start_slow_upload(setup: &Setup, server: &Running, mut curl: Command) -> (Child, Vec<u8>) {
    let content = pattern(3 << 20);
    let local = setup.local("big.bin", &content);
    curl.args(["--limit-rate", "1M", "-T"]).arg(&local).arg(ftp_url(server, "alice", "/big.bin"));
    let upload = spawn(curl);
    wait_for_upload_in_progress(&setup.share().join("alice"));
    (upload, content)
}

#[test]
fn sigterm_lets_a_running_upload_finish() {
    let setup = Setup::new("");
    let Some(upload) = curl() else { return };
    let server = setup.serve();
    // The client sends at 1 MiB/s, so the upload is still running when SIGTERM arrives.
    let (upload, content) = start_slow_upload(&setup, &server, upload);
    server.signal(rustix::process::Signal::TERM);
    server.wait_for_log("shutting down", LOG_WAIT);
    // Draining starts right after that line: new connections are then refused or closed
    // without a greeting (the listener is gone), while the upload goes on.
    let started = Instant::now();
    while let Some(greeting) = common::greeting(server.listener("FTP")) {
        assert!(started.elapsed() < LOG_WAIT, "still greeting while draining: {greeting}");
    }
    assert_eq!(
        finish(upload, Duration::from_secs(30)),
        0,
        "the upload completes during the grace period"
    );
    assert!(server.wait_exit(Duration::from_secs(15)).success(), "clean exit once drained");
    assert_eq!(std::fs::read(setup.share().join("alice/big.bin")).expect("published"), content);
}

/// The status line of `GET path` on the metrics listener `addr` (empty when nothing answers).
fn probe(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: wharf\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn ready_says_draining_after_sigterm_while_health_stays_up() {
    let setup = Setup::new("metrics: { listen: \"127.0.0.1:0\" }\n");
    let Some(upload) = curl() else { return };
    let server = setup.serve();
    let metrics = server.listener("metrics");
    assert_eq!(probe(metrics, "/health"), "HTTP/1.1 200 OK");
    assert_eq!(probe(metrics, "/ready"), "HTTP/1.1 200 OK");
    let (upload, content) = start_slow_upload(&setup, &server, upload);
    server.signal(rustix::process::Signal::TERM);
    server.wait_for_log("shutting down", LOG_WAIT);
    // Draining starts right after that line; the probe says so from then on.
    let started = Instant::now();
    while probe(metrics, "/ready") != "HTTP/1.1 503 Service Unavailable" {
        assert!(started.elapsed() < LOG_WAIT, "/ready never said the node was draining");
    }
    assert_eq!(probe(metrics, "/health"), "HTTP/1.1 200 OK", "alive while draining");
    assert_eq!(finish(upload, Duration::from_secs(30)), 0, "the upload completes meanwhile");
    assert!(server.wait_exit(Duration::from_secs(15)).success(), "clean exit once drained");
    assert_eq!(std::fs::read(setup.share().join("alice/big.bin")).expect("published"), content);
}

#[test]
fn sighup_reloads_users_while_a_transfer_runs() {
    let setup = Setup::new("");
    let Some(upload) = curl() else { return };
    let server = setup.serve();
    let (upload, content) = start_slow_upload(&setup, &server, upload);

    // Add bob, remove alice, reload.
    let users = USERS.replace("$HASH", &setup.hash).replace("  - name: alice\n", "  - name: bob\n");
    std::fs::write(&setup.users_file, users).expect("users file");
    server.signal(rustix::process::Signal::HUP);
    let list = |user: &str| {
        let mut command = curl().expect("curl");
        command.arg(ftp_url(&server, user, "/"));
        run(command)
    };
    let started = Instant::now();
    while list("bob") != 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "bob cannot log in after SIGHUP");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(list("alice"), 0, "a removed user can no longer log in");
    assert_eq!(finish(upload, Duration::from_secs(30)), 0, "the running transfer is not disturbed");
    assert_eq!(std::fs::read(setup.share().join("alice/big.bin")).expect("published"), content);
    assert!(server.stop().success());
}

#[test]
fn sighup_with_a_broken_users_file_or_configuration_changes_nothing() {
    let setup = Setup::new("");
    let Some(_) = curl() else { return };
    let server = setup.serve();
    let list = |user: &str| {
        let mut command = curl().expect("curl");
        command.arg(ftp_url(&server, user, "/"));
        run(command)
    };
    assert_eq!(list("alice"), 0, "alice logs in before the reload");
    // A misspelled key: the whole reload is refused, the users loaded before stay.
    let broken =
        USERS.replace("$HASH", &setup.hash).replace("    home: alice\n", "    hom: alice\n");
    std::fs::write(&setup.users_file, broken).expect("users file");
    server.signal(rustix::process::Signal::HUP);
    server.wait_for_log(RELOAD_REFUSED, LOG_WAIT);
    assert_eq!(list("alice"), 0, "alice still logs in after a refused reload");
    // A good users file without alice, but a misspelled key in the configuration: refused
    // as a whole, so alice is not removed.
    let without_alice =
        USERS.replace("$HASH", &setup.hash).replace("  - name: alice\n", "  - name: bob\n");
    std::fs::write(&setup.users_file, without_alice).expect("users file");
    let config = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(&setup.config, format!("{config}shutdown_grase: 5s\n")).expect("config");
    server.signal(rustix::process::Signal::HUP);
    let refused = server.wait_for_log(RELOAD_REFUSED, LOG_WAIT);
    assert!(refused.contains("shutdown_grase"), "the error names the key: {refused}");
    assert_eq!(list("alice"), 0, "a broken configuration file changes nothing either");
    assert!(server.stop().success(), "the server survived the broken reloads");
}

#[test]
fn a_transfer_writes_one_xferlog_line_and_one_audit_line() {
    let setup = Setup::new("");
    let Some(mut upload) = curl() else { return };
    let server = setup.serve();
    let local = setup.local("one.bin", &pattern(12_345));
    upload.arg("-T").arg(&local).arg(ftp_url(&server, "alice", "/one.bin"));
    assert_eq!(run(upload), 0);
    assert!(server.stop().success());

    let logs = setup.tmp.path().join("data/logs");
    for name in ["xferlog", "audit.jsonl"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(logs.join(name)).expect("log file").permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{name}: readable by the owner's group, no one else");
    }
    let xferlog = std::fs::read_to_string(logs.join("xferlog")).expect("xferlog");
    let lines: Vec<&str> = xferlog.lines().collect();
    assert_eq!(lines.len(), 1, "{xferlog}");
    assert!(lines[0].contains(" 127.0.0.1 12345 /one.bin b _ i r alice ftp 0 * c"), "{xferlog}");
    let audit = std::fs::read_to_string(logs.join("audit.jsonl")).expect("audit log");
    let uploads: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .filter(|event: &serde_json::Value| event["op"] == "upload")
        .collect();
    assert_eq!(uploads.len(), 1, "{audit}");
    assert_eq!(uploads[0]["bytes"], 12_345);
    assert_eq!(uploads[0]["user"], "alice");
    assert_eq!(uploads[0]["outcome"], "ok");
    assert!(!audit.contains(TEST_PASSWORD), "a log line never contains a password");
}

/// The events of the audit log whose `op` is `op`.
fn audit_events(audit: &str, op: &str) -> Vec<serde_json::Value> {
    audit
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .filter(|event: &serde_json::Value| event["op"] == op)
        .collect()
}

#[test]
fn transfers_on_object_storage_are_logged_as_on_local_disk() {
    let Some(curl_path) = require_tool("curl") else { return };
    let Some(store) = Seaweed::start() else { return };
    let setup = Setup::new(&format!(
        "storage:\n  buckets:\n    /:\n      endpoint: {}\n      region: {}\n      \
         bucket: {}\n      credentials_file: s3-keys.yaml\n",
        store.endpoint, store.region, store.bucket
    ));
    write(
        setup.tmp.path(),
        "data/s3-keys.yaml",
        &format!("access_key_id: {}\nsecret_access_key: {}\n", store.access_key, store.secret_key),
    );
    let server = setup.serve();
    let content = pattern(12_345);
    let local = setup.local("one.bin", &content);
    let downloaded = setup.tmp.path().join("client/back.bin");
    let user = format!("alice:{TEST_PASSWORD}");
    let mut upload = Command::new(&curl_path);
    upload
        .args(["-sS", "--max-time", "60", "-T"])
        .arg(&local)
        .arg(ftp_url(&server, "alice", "/one.bin"));
    assert_eq!(run(upload), 0, "FTP upload to the bucket");
    let mut download = Command::new(&curl_path);
    download
        .args(["-sS", "-k", "--max-time", "60", "--user", &user, "-o"])
        .arg(&downloaded)
        .arg(sftp_url(&server, "/one.bin"));
    assert_eq!(run(download), 0, "SFTP download from the bucket");
    assert_eq!(std::fs::read(&downloaded).expect("downloaded"), content);
    assert!(server.stop().success());

    let logs = setup.tmp.path().join("data/logs");
    let xferlog = std::fs::read_to_string(logs.join("xferlog")).expect("xferlog");
    let lines: Vec<&str> = xferlog.lines().collect();
    assert_eq!(lines.len(), 2, "one line per transfer: {xferlog}");
    assert!(lines[0].contains(" 127.0.0.1 12345 /one.bin b _ i r alice ftp 0 * c"), "{xferlog}");
    assert!(lines[1].contains(" 127.0.0.1 12345 /one.bin b _ o r alice sftp 0 * c"), "{xferlog}");
    let audit = std::fs::read_to_string(logs.join("audit.jsonl")).expect("audit log");
    for (op, protocol) in [("upload", "ftp"), ("download", "sftp")] {
        let events = audit_events(&audit, op);
        assert_eq!(events.len(), 1, "{op}: {audit}");
        assert_eq!(events[0]["bytes"], 12_345, "{op}: {audit}");
        assert_eq!(events[0]["user"], "alice", "{op}: {audit}");
        assert_eq!(events[0]["protocol"], protocol, "{op}: {audit}");
        assert_eq!(events[0]["outcome"], "ok", "{op}: {audit}");
    }
    assert!(!audit.contains(&store.secret_key), "a log line never contains the store's keys");
    assert!(!xferlog.contains(&store.access_key), "a log line never contains the store's keys");
}

#[test]
fn a_full_disk_refuses_the_upload_and_keeps_the_old_file() {
    let setup = Setup::new("");
    let Some(curl_path) = require_tool("curl") else { return };
    let Some(prlimit) = require_tool("prlimit") else { return };
    // Writes past 1 MiB fail with EFBIG, as they would with ENOSPC on a full disk.
    let mut command = Command::new(prlimit);
    command.arg("--fsize=1048576").arg(WHARF).arg("serve").arg("--config").arg(&setup.config);
    command.current_dir(setup.tmp.path()).env("WHARF_EPHEMERAL_PORTS", "1").env_remove("RUST_LOG");
    let server = common::start(command);
    let big = setup.local("big.bin", &pattern(2 << 20));
    let share = setup.share();
    let home = share.join("alice");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(home.join("keep.bin"), b"old content").expect("old file");

    let mut ftp = Command::new(&curl_path);
    ftp.args(["-sS", "--max-time", "60", "-T"]).arg(&big).arg(ftp_url(
        &server,
        "alice",
        "/keep.bin",
    ));
    let out = run_bounded(&mut ftp, Duration::from_secs(90));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("452"), "FTP answers 452: {out:?}");

    let mut sftp = Command::new(&curl_path);
    sftp.args(["-sS", "-k", "--max-time", "60", "--user", &format!("alice:{TEST_PASSWORD}"), "-T"])
        .arg(&big)
        .arg(sftp_url(&server, "/keep.bin"));
    assert!(
        !run_bounded(&mut sftp, Duration::from_secs(90)).status.success(),
        "SFTP upload refused"
    );

    assert_eq!(std::fs::read(home.join("keep.bin")).expect("old file"), b"old content");
    assert_eq!(names(&home), vec!["keep.bin"], "no temporary file left");
    assert!(server.stop().success(), "the server survived the full disk");
}

#[test]
fn quota_crossing_uploads_are_refused_on_every_protocol() {
    let setup = Setup::new("");
    let Some(curl_path) = require_tool("curl") else { return };
    let server = setup.serve();
    let big = setup.local("big.bin", &pattern(100 * 1024));
    let upload = |url: String, extra: &[&str]| {
        let mut command = Command::new(&curl_path);
        command.args(["-sS", "-k", "--max-time", "60"]).args(extra).arg("-T").arg(&big).arg(url);
        run_bounded(&mut command, Duration::from_secs(90))
    };
    let ftp = upload(ftp_url(&server, "small", "/f.bin"), &[]);
    // curl reports FTP's 552 as its error 70, "Exceeded storage allocation".
    assert_eq!(ftp.status.code(), Some(70), "FTP answers 552: {ftp:?}");
    let user = format!("small:{TEST_PASSWORD}");
    let sftp = upload(sftp_url(&server, "/s.bin"), &["--user", &user]);
    assert!(!sftp.status.success(), "SFTP upload refused");
    let tftp = upload(tftp_url(&server, "/t.bin"), &[]);
    // TFTP's error 3, "disk full or allocation exceeded", is curl's error 70 too.
    assert_eq!(tftp.status.code(), Some(70), "TFTP answers error 3: {tftp:?}");
    for home in ["small", "devices"] {
        assert_eq!(
            names(&setup.share().join(home)),
            Vec::<String>::new(),
            "nothing left in {home}"
        );
    }
    // Under the quota everything works.
    let fits = setup.local("fits.bin", &pattern(30 * 1024));
    let mut command = Command::new(&curl_path);
    command.args(["-sS", "-T"]).arg(&fits).arg(ftp_url(&server, "small", "/fits.bin"));
    assert_eq!(run(command), 0);
    assert!(server.stop().success());
}

#[test]
fn a_bandwidth_limit_slows_downloads_in_proportion() {
    let setup = Setup::new("");
    let Some(curl_path) = require_tool("curl") else { return };
    let server = setup.serve();
    for home in ["alice", "carol"] {
        std::fs::create_dir_all(setup.share().join(home)).expect("home");
        std::fs::write(setup.share().join(home).join("movie.bin"), pattern(3 << 20)).expect("file");
    }
    let timed = |user: &str, url: String| {
        let mut command = Command::new(&curl_path);
        command.args(["-sS", "-k", "--max-time", "60", "-o", "/dev/null"]);
        if url.starts_with("sftp") {
            command.args(["--user", &format!("{user}:{TEST_PASSWORD}")]);
        }
        command.arg(url);
        let started = Instant::now();
        assert!(run_bounded(&mut command, Duration::from_secs(90)).status.success());
        started.elapsed().as_secs_f64()
    };
    let free = timed("alice", ftp_url(&server, "alice", "/movie.bin"));
    let limited_ftp = timed("carol", ftp_url(&server, "carol", "/movie.bin"));
    let limited_sftp = timed("carol", sftp_url(&server, "/movie.bin"));
    // 3 MiB at 1 MiB/s, less a quarter-second burst: at least 2.5 s.
    for (what, took) in [("FTP", limited_ftp), ("SFTP", limited_sftp)] {
        assert!(took >= 2.4, "{what} limited download took {took:.2} s");
        assert!(took > 3.0 * free, "{what}: limited {took:.2} s vs free {free:.2} s");
    }
    assert!(server.stop().success());
}

#[test]
fn wharf_without_a_config_file_errors_clearly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut command = wharf(tmp.path());
    command.args(["serve", "--config", "missing.yaml"]);
    let out = run_bounded(&mut command, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
}
