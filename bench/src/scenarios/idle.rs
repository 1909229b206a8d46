//! Scenario 4: server memory per idle logged-in session: FTP sessions opened by the bench
//! itself (connect, `USER`, `PASS`, then nothing), SFTP sessions as `sftp` clients whose
//! input is held open after one `pwd`. Each run starts fresh servers, so memory freed by
//! earlier transfers (kept by the allocator) cannot hide what sessions cost. Per session:
//! (tree PSS with the sessions − tree PSS before) / sessions.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{Bench, RowRecorder};
use crate::cli::Protocol;
use crate::clients::ssh_client;
use crate::endpoint::{Endpoint, Side};
use crate::lineup::{DEFAULT_CIPHER, Lineup};
use crate::memory::tree_memory;
use crate::process::ChildGuard;
use crate::results::{Row, RowHead, Sample, Target, Unit};
use crate::wharf_server::WharfSetup;

/// How long sessions sit before memory is read, so the server has settled.
const SETTLE: Duration = Duration::from_secs(2);
/// `sftp` clients started at once while opening idle sessions.
const SFTP_STARTS_AT_ONCE: usize = 16;

/// Reads one FTP reply (multi-line replies end with `NNN ` on their last line).
fn read_reply(stream: &TcpStream) -> anyhow::Result<(u16, String)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed");
        }
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        if let (Some(code), Some(b' ')) = (code, line.as_bytes().get(3)) {
            return Ok((code, line.trim_end().to_owned()));
        }
    }
}

/// Opens a control connection and logs in; the session then idles until dropped.
fn ftp_login(endpoint: &Endpoint) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&endpoint.addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (code, text) = read_reply(&stream)?;
    if code != 220 {
        bail!("greeting: {text}");
    }
    write!(stream, "USER {}\r\n", endpoint.user)?;
    let (mut code, mut text) = read_reply(&stream)?;
    if code == 331 {
        write!(stream, "PASS {}\r\n", endpoint.password)?;
        (code, text) = read_reply(&stream)?;
    }
    if code != 230 {
        bail!("login: {text}");
    }
    Ok(stream)
}

/// An idle `sftp` client: its input is held open so it waits for commands.
struct IdleSftp {
    _stdin: ChildStdin,
    _process: ChildGuard,
}

/// Starts `count` sftp clients, a few at a time, each answering one `pwd` before it idles.
fn open_sftp_sessions(endpoint: &Endpoint, count: usize) -> anyhow::Result<Vec<IdleSftp>> {
    let mut sessions = Vec::with_capacity(count);
    while sessions.len() < count {
        let wave = SFTP_STARTS_AT_ONCE.min(count - sessions.len());
        let (ready_tx, ready) = mpsc::channel();
        let mut starting = Vec::with_capacity(wave);
        for _ in 0..wave {
            let mut command = ssh_client("sftp", endpoint, DEFAULT_CIPHER)?;
            command
                .arg(format!("{}@{}", endpoint.user, endpoint.addr.ip()))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut process = ChildGuard::spawn(&mut command, "idle sftp")?;
            let mut stdin = process.child_mut().stdin.take().context("sftp stdin")?;
            let stdout = process.child_mut().stdout.take().context("sftp stdout")?;
            writeln!(stdin, "pwd")?;
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("Remote working directory") {
                        let _ = ready_tx.send(());
                    }
                }
            });
            starting.push(IdleSftp { _stdin: stdin, _process: process });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..wave {
            let left = deadline.saturating_duration_since(Instant::now());
            ready.recv_timeout(left).map_err(|_| {
                anyhow::anyhow!("an sftp session did not come up (after {})", sessions.len())
            })?;
        }
        sessions.extend(starting);
    }
    Ok(sessions)
}

/// Memory per session on one server, in KiB.
fn per_session_kib(protocol: Protocol, endpoint: &Endpoint, count: usize) -> anyhow::Result<f64> {
    // The probe's session processes (vsftpd, sshd) must be gone from the baseline.
    std::thread::sleep(Duration::from_millis(500));
    let before = tree_memory(endpoint.server_pid)?;
    let after = match protocol {
        Protocol::Ftp => {
            let mut sessions = Vec::with_capacity(count);
            for index in 0..count {
                let session =
                    ftp_login(endpoint).with_context(|| format!("idle FTP session {index}"))?;
                sessions.push(session);
            }
            std::thread::sleep(SETTLE);
            tree_memory(endpoint.server_pid)?
        }
        Protocol::Sftp => {
            let sessions = open_sftp_sessions(endpoint, count)?;
            std::thread::sleep(SETTLE);
            let after = tree_memory(endpoint.server_pid)?;
            drop(sessions);
            after
        }
        _ => bail!("no idle-session figure for {}", protocol.name()),
    };
    eprintln!(
        "    {} sessions: PSS {} -> {} KiB, {} -> {} processes",
        count, before.pss_kib, after.pss_kib, before.processes, after.processes
    );
    Ok(after.pss_kib.saturating_sub(before.pss_kib) as f64 / count as f64)
}

/// The rows of scenario 4 for FTP and SFTP (those selected).
pub fn run(bench: &Bench<'_>, wharf: &WharfSetup, protocols: &[Protocol]) -> Vec<Row> {
    let selected: Vec<Protocol> =
        protocols.iter().copied().filter(|p| matches!(p, Protocol::Ftp | Protocol::Sftp)).collect();
    let mut recorders: Vec<(Protocol, usize, RowRecorder)> = selected
        .iter()
        .map(|protocol| {
            let (count, limit) = match protocol {
                Protocol::Ftp => (bench.sizes.idle_ftp_sessions, 64.0),
                _ => (bench.sizes.idle_sftp_sessions, 256.0),
            };
            let head = RowHead {
                id: format!("{}.idle_memory", protocol.name().to_lowercase()),
                protocol: protocol.name(),
                title: format!("{} memory per idle session, {count} sessions", protocol.name()),
                unit: Unit::KibPerSession,
                target: Some(Target::WharfAtMost(limit)),
            };
            let peers = bench.peers.compared(*protocol);
            (*protocol, count, RowRecorder::new(head, peers, bench.runs))
        })
        .collect();
    for run in 0..bench.runs {
        let lineup = match Lineup::start(
            bench.scratch,
            bench.credentials,
            wharf,
            bench.unftp,
            &selected,
            &format!("memory-{run}"),
        ) {
            Ok(lineup) => lineup,
            Err(err) => {
                for (_, _, recorder) in &mut recorders {
                    let sides: Vec<Side> = recorder.sides().collect();
                    for side in sides {
                        recorder.record(side, run, Err(anyhow::anyhow!("starting: {err:#}")));
                    }
                }
                break;
            }
        };
        for (protocol, count, recorder) in &mut recorders {
            for side in recorder.order(run) {
                match lineup.endpoints(side).get(*protocol) {
                    Err(why) => recorder.unavailable(side, why.clone()),
                    Ok(endpoint) if recorder.wants(side) => {
                        // Idle sessions cost memory, not CPU: no CPU figure here.
                        let outcome = per_session_kib(*protocol, endpoint, *count)
                            .map(|value| Sample { value, server_cpu: None });
                        recorder.record(side, run, super::explain(&lineup, side, outcome));
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    recorders.into_iter().flat_map(|(_, _, recorder)| recorder.finish()).collect()
}
