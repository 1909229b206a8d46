//! A real HAProxy on loopback, for tests of Wharf nodes behind a load balancer.
//!
//! The test writes the frontends and backends; the harness puts a fixed header before them
//! (TCP mode, timeouts, no stats page, no logging anywhere) and a readiness frontend of its
//! own on a free loopback port, which answers once HAProxy has bound every listener. HAProxy
//! runs in the foreground (`-db`) in a temporary directory and is killed on drop.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{find_executable, in_ci, unavailable};

/// How long HAProxy may take to start answering.
const START_LIMIT: Duration = Duration::from_secs(20);

/// How often the harness asks whether it answers.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running HAProxy, killed on drop.
pub struct Haproxy {
    child: Option<Child>,
    log: PathBuf,
    /// Holds the configuration and the log; removed on drop.
    dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy with `sections` (its `frontend`/`backend` sections), or returns `None`
    /// when HAProxy is not installed outside CI. Panics with HAProxy's output when it does
    /// not start (a port taken, a configuration it refuses).
    pub fn start(sections: &str) -> Option<Haproxy> {
        let Some(haproxy) = find_executable("haproxy") else {
            unavailable(
                "HAProxy is not installed (Debian package `haproxy`, as .ci/run installs)",
                in_ci(),
            );
            return None;
        };
        let dir = tempfile::Builder::new().prefix("wharf-haproxy-").tempdir().expect("tempdir");
        let ready =
            SocketAddr::from((Ipv4Addr::LOCALHOST, free_port_range(&[Ipv4Addr::LOCALHOST], 1)));
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, format!("{}\n{sections}\n", header(ready))).expect("haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&haproxy)
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {haproxy:?}: {e}"));
        let mut proxy = Haproxy { child: Some(child), log, dir };
        proxy.wait_ready(ready);
        Some(proxy)
    }

    /// Waits until the readiness frontend answers; panics when HAProxy exits or the limit
    /// passes.
    fn wait_ready(&mut self, ready: SocketAddr) {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("HAProxy exited at start ({status}):\n{}", self.log_tail());
            }
            if answers(ready) {
                return;
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "HAProxy did not answer within {START_LIMIT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// What HAProxy printed, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let config =
            std::fs::read_to_string(self.dir.path().join("haproxy.cfg")).unwrap_or_default();
        format!(
            "{}\n--- haproxy.cfg ---\n{config}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// Stops HAProxy now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The fixed part of the configuration: TCP by default, generous timeouts for transfers,
/// nothing sent anywhere (no `log` line, no stats), and the readiness frontend on `ready`.
/// One thread: HAProxy shares this machine's few cores with the nodes and their clients,
/// where a second thread only adds contention (the bench's cluster scenario: 0.35 s of
/// HAProxy CPU per 50 SFTP downloads with two threads, 0.22-0.30 s with one).
fn header(ready: SocketAddr) -> String {
    format!(
        "global\n    maxconn 1024\n    nbthread 1\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\n\
         frontend testkit_ready\n    mode http\n    bind {ready}\n    \
         http-request return status 200 content-type text/plain string ready\n"
    )
}

/// Whether an HTTP request to `addr` gets a 200.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = stream.take(64).read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.0 200") || reply.starts_with(b"HTTP/1.1 200")
}

/// The first of `count` consecutive ports free on every address of `ips`, from below the
/// kernel's ephemeral range (so the kernel does not hand them to another socket meanwhile).
/// Panics when none is found in 200 tries.
pub fn free_port_range(ips: &[Ipv4Addr], count: u16) -> u16 {
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    for _ in 0..200 {
        let first = rand::random_range(LOW..HIGH - count);
        let held: Option<Vec<TcpListener>> = (first..first + count)
            .flat_map(|port| ips.iter().map(move |ip| (*ip, port)))
            .map(|addr| TcpListener::bind(addr).ok())
            .collect();
        if held.is_some() {
            return first;
        }
    }
    panic!("no {count} consecutive free ports on {ips:?}");
}
