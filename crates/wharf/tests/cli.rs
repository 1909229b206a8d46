//! The `wharf` binary as a newcomer meets it: `serve` with no arguments, `check`,
//! `hash-password`.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wharf_testkit::{ChildGuard, run_bounded};

const WHARF: &str = env!("CARGO_BIN_EXE_wharf");

fn wharf(cwd: &Path) -> Command {
    let mut cmd = Command::new(WHARF);
    cmd.current_dir(cwd).env("WHARF_EPHEMERAL_PORTS", "1").env_remove("RUST_LOG");
    cmd
}

/// Starts `wharf serve` in `cwd`; returns the process and the banner it printed.
pub fn start_serve(cwd: &Path) -> (ChildGuard, String) {
    let mut child = wharf(cwd)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wharf serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let guard = ChildGuard(child);
    let mut banner = String::new();
    // The banner is printed at once after start-up; collect it until it goes quiet.
    let mut deadline = Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(deadline) {
        banner.push_str(&line);
        banner.push('\n');
        deadline = Duration::from_millis(500);
    }
    assert!(banner.contains("is serving"), "no banner within 60 s: {banner}");
    (guard, banner)
}

/// Sends SIGINT and waits (bounded) for the process to exit.
pub fn interrupt(mut guard: ChildGuard) -> std::process::ExitStatus {
    let pid = rustix::process::Pid::from_raw(guard.0.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    for _ in 0..200 {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("wharf did not stop within 10 s of SIGINT");
}

/// The address the banner lists for `protocol`.
fn listener(banner: &str, protocol: &str) -> std::net::SocketAddr {
    banner
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(protocol)).then(|| words.next()).flatten()
        })
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no {protocol} listener in the banner:\n{banner}"))
}

/// Connects to the banner's `protocol` listener and checks its first line.
fn assert_greets(banner: &str, protocol: &str, prefix: &str) {
    use std::io::Read as _;
    let addr = listener(banner, protocol);
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut greeting = [0u8; 64];
    let n = stream.read(&mut greeting).expect("greeting");
    let greeting = String::from_utf8_lossy(&greeting[..n]);
    assert!(greeting.starts_with(prefix), "{protocol} greeted with {greeting:?}");
}

#[test]
fn serve_without_arguments_creates_demo_account_once_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, banner) = start_serve(tmp.path());
    assert!(banner.contains("user: demo"), "{banner}");
    let password = banner
        .lines()
        .find_map(|l| l.split("password: ").nth(1))
        .map(str::trim)
        .expect("password shown")
        .to_owned();
    assert_eq!(password.len(), 20);
    let users =
        std::fs::read_to_string(tmp.path().join("wharf-data/users.yaml")).expect("users file");
    assert!(!users.contains(&password), "the password is stored only as a hash");
    assert!(tmp.path().join("wharf-data/share").is_dir());
    assert_greets(&banner, "FTP", "220");
    assert_greets(&banner, "SFTP", "SSH-2.0-");
    listener(&banner, "FTPS");
    assert!(banner.contains("FTPS certificate SHA-256: "), "{banner}");
    assert!(banner.contains("SSH host key: ED25519 SHA256:"), "{banner}");
    listener(&banner, "TFTP");
    assert!(interrupt(server).success(), "clean exit on SIGINT");

    // A second start reuses what the first created and shows no password.
    let (server, banner) = start_serve(tmp.path());
    assert!(!banner.contains(&password) && !banner.contains("password:"), "{banner}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("wharf-data/users.yaml")).expect("users"),
        users
    );
    assert!(interrupt(server).success());
}

#[test]
fn check_names_a_misspelled_key_and_its_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("wharf.yaml");
    std::fs::write(&config, "data_dir: d\nstorage:\n  root: share\n  fsync_on_comit: true\n")
        .expect("write");
    let out = run_bounded(
        wharf(tmp.path()).arg("check").arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fsync_on_comit") && stderr.contains("line 4"), "{stderr}");
}

#[test]
fn check_accepts_the_example_and_rejects_a_bad_user() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/wharf.example.yaml");
    let config = tmp.path().join("wharf.yaml");
    std::fs::copy(&example, &config).expect("copy example");
    std::fs::create_dir_all(tmp.path().join("wharf-data")).expect("mkdir");
    std::fs::write(tmp.path().join("wharf-data/users.yaml"), "users: []\n").expect("users file");
    let out = run_bounded(
        wharf(tmp.path()).arg("check").arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("acme") && stdout.contains("devices"), "{stdout}");

    std::fs::write(
        tmp.path().join("wharf-data/users.yaml"),
        "users:\n  - name: x\n    home: h\n    pasword: y\n",
    )
    .expect("users file");
    let out = run_bounded(
        wharf(tmp.path()).arg("check").arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pasword") && stderr.contains("users.yaml"), "{stderr}");
}

#[test]
fn hash_password_reads_stdin() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = wharf(tmp.path())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"s3cret pass\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).expect("utf8");
    let stored = wharf_access::StoredHash::parse(hash.trim()).expect("argon2id hash");
    assert!(stored.verify(&wharf_access::Password::new("s3cret pass")));
    assert!(!stored.verify(&wharf_access::Password::new("s3cret pass\n")));
}
