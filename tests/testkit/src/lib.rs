//! Helpers shared by Wharf's tests.
//!
//! - [`require_tool`]: find a real client (curl, lftp, sftp, tftp, ...). Under `CI=true` a
//!   missing client fails the test; elsewhere the test is skipped with a message.
//! - [`require_ipv6_loopback`]: the same rule for the IPv6 loopback address `::1`.
//! - [`TestShare`]: a temporary storage tree with users and a [`Gateway`] over it.
//! - [`run_bounded`]: run a child process with a time limit, killing it when exceeded.
//! - [`pattern`], [`tree_digest`]: data to transfer and a way to prove a tree unchanged.
//! - [`CapturedLog`]: the process's log in memory, for tests that read audit events.
//! - [`Seaweed`]: a real SeaweedFS S3 server on loopback, with keys and a bucket, stopped on
//!   drop. Like a client, a missing `weed` fails the test under CI and skips it elsewhere.
//! - [`Haproxy`]: a real HAProxy on loopback with the test's frontends and backends, killed
//!   on drop; missing, it fails under CI and skips elsewhere, like `weed`.
//! - [`Postgres`]: a real PostgreSQL in a temporary directory on a loopback port, stopped on
//!   drop (and stoppable and startable again); missing, the same rule.

mod captured_log;
mod haproxy;
mod postgres;
mod seaweed;

pub use captured_log::CapturedLog;
pub use haproxy::{Haproxy, free_port_range};
pub use postgres::{POSTGRES_DATABASE, Postgres};
pub use seaweed::{Capacity as SeaweedCapacity, HttpReply, Seaweed};

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wharf_access::{AccessConfig, Authenticator, Gateway, LoginSettings, Password, UsersFile};
use wharf_vfs::{LocalOptions, LocalStorage};

/// The password every test user has (users files use `$HASH` for its hash).
pub const TEST_PASSWORD: &str = "wharf-test-password";

/// Whether the tests run in CI, where a missing client is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Finds `name` on `PATH`. Returns `None` (and says so) when it is missing outside CI; panics
/// when it is missing under `CI=true`, since `.ci/run` installs every client the tests use.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = find_executable(name);
    if found.is_none() {
        unavailable(&format!("client `{name}` is not installed"), in_ci());
    }
    found
}

/// The first executable file called `name` in a directory of `PATH`, without saying anything
/// when there is none (callers word that themselves).
fn find_executable(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt as _;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// Whether `::1` can be bound here. When it cannot, this fails the test under `CI=true` (CI
/// machines have IPv6 loopback, and a test skipped there would pass untested), and elsewhere
/// says the test is skipped and returns `false`.
pub fn require_ipv6_loopback() -> bool {
    let bound = std::net::TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).is_ok();
    if !bound {
        unavailable("the IPv6 loopback address ::1 cannot be bound", in_ci());
    }
    bound
}

/// The one rule for something a test needs and this machine lacks (`what` says which): under
/// CI the test fails, elsewhere it is skipped with a message.
fn unavailable(what: &str, ci: bool) {
    if ci {
        panic!("required: {what} (CI=true)");
    }
    eprintln!("SKIPPED: {what}; provide it, or run under CI=true to fail");
}

/// Runs `command` to completion within `limit`, with stdin closed. Kills it and panics when
/// the limit is exceeded, printing what it wrote so far.
pub fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    let started = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let out = out_reader.join().unwrap_or_default();
                let err = err_reader.join().unwrap_or_default();
                panic!(
                    "{command:?} exceeded {limit:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => panic!("waiting for {command:?}: {err}"),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// A child process killed when dropped, for servers and clients a test starts in the
/// background.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid` (`VmRSS`), in bytes. Panics when it cannot be read.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// `len` bytes of a deterministic, non-repeating pattern (misplaced blocks show up).
pub fn pattern(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

/// A digest of every name, type and file content under `root` (hidden files included), to
/// show that a refused operation changed nothing.
pub fn tree_digest(root: &Path) -> String {
    fn walk(dir: &Path, base: &Path, hasher: &mut Sha256) {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => return,
        };
        entries.sort();
        for path in entries {
            let name = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().into_owned();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(_) => continue,
            };
            hasher.update(name.as_bytes());
            if meta.is_dir() {
                hasher.update(b"/dir\0");
                walk(&path, base, hasher);
            } else if meta.file_type().is_symlink() {
                hasher.update(b"/link\0");
                if let Ok(target) = std::fs::read_link(&path) {
                    hasher.update(target.to_string_lossy().as_bytes());
                }
            } else {
                hasher.update(b"/file\0");
                if let Ok(content) = std::fs::read(&path) {
                    hasher.update(&content);
                }
            }
        }
    }
    let mut hasher = Sha256::new();
    walk(root, root, &mut hasher);
    format!("{:x}", hasher.finalize())
}

/// A temporary storage tree with users, and the [`Gateway`] front-ends are started with.
pub struct TestShare {
    /// Keeps the directory alive; `root` and `outside` are inside it.
    pub tmp: tempfile::TempDir,
    /// The share's root directory (the storage tree).
    pub root: PathBuf,
    /// A directory beside the share, outside it, holding `sentinel.txt`.
    pub outside: PathBuf,
    /// The shared layer over the share.
    pub gateway: Arc<Gateway>,
}

/// Content of the sentinel file outside the share.
pub const SENTINEL: &[u8] = b"SENTINEL outside the share: never to be read or changed";

impl TestShare {
    /// A share with the users of `users_yaml` (a users file: `users: [...]`), where `$HASH`
    /// stands for the hash of [`TEST_PASSWORD`]. Failed logins wait only 10 ms.
    pub fn new(users_yaml: &str) -> TestShare {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("share");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("outside dir");
        std::fs::write(outside.join("sentinel.txt"), SENTINEL).expect("sentinel");
        let storage = LocalStorage::open(&root, true, LocalOptions::default()).expect("share");
        let hash = wharf_access::hash_password(&Password::new(TEST_PASSWORD)).expect("hash");
        let file: UsersFile =
            serde_yaml::from_str(&users_yaml.replace("$HASH", &hash)).expect("users yaml");
        let config = AccessConfig { users: file.users, ..AccessConfig::default() };
        let users = config.load_users(tmp.path()).expect("users");
        let settings =
            LoginSettings { failure_delay: Duration::from_millis(10), ..LoginSettings::default() };
        let gateway = Arc::new(Gateway::new(Authenticator::new(storage, users, settings)));
        TestShare { tmp, root, outside, gateway }
    }

    /// Writes `content` to `relative` under the share, creating parent directories.
    pub fn put(&self, relative: &str, content: &[u8]) -> PathBuf {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Whether the sentinel outside the share is as it was and alone.
    pub fn assert_outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .expect("outside")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sentinel.txt")], "nothing added outside");
        assert_eq!(std::fs::read(self.outside.join("sentinel.txt")).expect("sentinel"), SENTINEL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "required: the thing (CI=true)")]
    fn a_missing_requirement_fails_under_ci() {
        unavailable("the thing", true);
    }

    #[test]
    fn a_missing_requirement_is_skipped_elsewhere() {
        unavailable("the thing", false);
    }
}
