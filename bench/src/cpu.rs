//! CPU time a server spends on one measurement: user + system time of its whole process tree,
//! from `/proc/<pid>/stat`, read right before the client starts and again once the sessions
//! the client opened have ended.
//!
//! vsftpd, sshd and tftpd-hpa serve each session or transfer in processes of their own
//! (vsftpd two per session; sshd a session process and sftp-server; tftpd-hpa one per
//! transfer) that exit when the client leaves. A process that has exited and been reaped is
//! no longer in `/proc`, but the kernel adds its times, and those of the children it reaped
//! in turn, to its parent's `cutime`/`cstime`. So the tree's CPU at an instant is, summed
//! over the live (and not yet reaped) processes, `utime + stime + cutime + cstime`, and its
//! growth over a measurement counts the session processes born and gone meanwhile. Wharf is
//! one process; its threads' times are in its own `utime`/`stime`.
//!
//! Except where the parent ignores `SIGCHLD` (tftpd-hpa does): the kernel then reaps its
//! children itself and their times are dropped, not added to anyone's `cutime`. For those, a
//! sampler reads the tree every [`SAMPLE_EVERY`] while the measurement runs and counts each
//! such child that has gone by the end as far as it was last seen: at most one interval of
//! each one's CPU is missed (a 16 MiB tftp-hpa download takes seconds).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::process::descendants;

/// How long the sessions of a measurement may take to end after its client exited.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// `utime + stime + cutime + cstime` of one process, in clock ticks, from the text of its
/// `/proc/<pid>/stat`. The fields are counted after the command name, which is in
/// parentheses and may itself contain spaces and parentheses.
fn stat_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    // After the name: state (field 3), ..., utime (14), stime (15), cutime (16), cstime (17).
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |field: usize| fields.get(field - 3)?.parse::<i64>().ok();
    let total = tick(14)? + tick(15)? + tick(16)? + tick(17)?;
    u64::try_from(total).ok()
}

/// How often the sampler reads the tree.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// `SIGCHLD` in the signal masks of `/proc/<pid>/status` (signal 17, bit 16).
const SIGCHLD_BIT: u64 = 1 << 16;

/// Whether the `SigIgn:` mask of a `/proc/<pid>/status` text has `SIGCHLD` in it.
fn ignores_sigchld(status: &str) -> Option<bool> {
    let mask = status.lines().find_map(|line| line.strip_prefix("SigIgn:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    Some(mask & SIGCHLD_BIT != 0)
}

/// Whether process `pid` ignores `SIGCHLD` (a process that is gone counts as not).
fn process_ignores_sigchld(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| ignores_sigchld(&status))
        .unwrap_or(false)
}

/// A process's ticks; `None` when it is gone.
fn process_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The CPU ticks of `root` and its descendants, and which processes they were.
fn tree_ticks(root: u32) -> anyhow::Result<(u64, BTreeSet<u32>)> {
    // The root first, then its descendants parents before children: a child reaped between
    // two reads is then missed once (a few ticks at most) rather than counted twice.
    let total = process_ticks(root).with_context(|| format!("the server ({root}) is gone"))?;
    let mut pids = BTreeSet::from([root]);
    let mut total = total;
    for pid in descendants(root) {
        if let Some(ticks) = process_ticks(pid) {
            total += ticks;
            pids.insert(pid);
        }
    }
    Ok((total, pids))
}

/// The last ticks seen of each process born during a measurement whose parent ignores
/// `SIGCHLD`, read every [`SAMPLE_EVERY`] until told to stop.
fn sample_unreaped(root: u32, idle_tree: BTreeSet<u32>, stop: &AtomicBool) -> BTreeMap<u32, u64> {
    let mut last_seen = BTreeMap::new();
    while !stop.load(Ordering::Acquire) {
        // Read afresh each round: a parent may set its disposition (or exec) after its start.
        let mut parent_ignores = BTreeMap::new();
        for pid in crate::process::descendants(root) {
            if idle_tree.contains(&pid) {
                continue;
            }
            let Some(parent) = crate::process::parent_of(pid) else { continue };
            let ignores =
                *parent_ignores.entry(parent).or_insert_with(|| process_ignores_sigchld(parent));
            if ignores && let Some(ticks) = process_ticks(pid) {
                last_seen.insert(pid, ticks);
            }
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    last_seen
}

/// A measurement of a server's CPU time in progress.
pub struct ServerCpu {
    root: u32,
    before: u64,
    idle_tree: BTreeSet<u32>,
    stop_sampler: Arc<AtomicBool>,
    sampler: JoinHandle<BTreeMap<u32, u64>>,
}

impl ServerCpu {
    /// Starts counting the CPU of the server whose root process is `root`.
    pub fn start(root: u32) -> anyhow::Result<ServerCpu> {
        let (before, idle_tree) = tree_ticks(root)?;
        let stop_sampler = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (idle_tree, stop) = (idle_tree.clone(), Arc::clone(&stop_sampler));
            std::thread::spawn(move || sample_unreaped(root, idle_tree, &stop))
        };
        Ok(ServerCpu { root, before, idle_tree, stop_sampler, sampler })
    }

    /// The server's CPU seconds since [`ServerCpu::start`]. Waits (up to [`SETTLE_LIMIT`])
    /// until the processes the measurement started have ended, so that what they spent is
    /// in their parents' times; one still running then is counted as far as it got. Those
    /// whose parent ignores `SIGCHLD` are counted from the sampler's last reading.
    pub fn finish(self) -> anyhow::Result<f64> {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let (after, final_tree) = loop {
            let (ticks, tree) = tree_ticks(self.root)?;
            if tree.is_subset(&self.idle_tree) || Instant::now() >= deadline {
                break (ticks, tree);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.stop_sampler.store(true, Ordering::Release);
        let unreaped =
            self.sampler.join().map_err(|_| anyhow::anyhow!("the CPU sampler panicked"))?;
        // Those still in the tree are in `after` already.
        let dropped_by_kernel: u64 = unreaped
            .iter()
            .filter(|(pid, _)| !final_tree.contains(pid))
            .map(|(_, ticks)| ticks)
            .sum();
        let after = after + dropped_by_kernel;
        let per_second = rustix::param::clock_ticks_per_second();
        anyhow::ensure!(per_second > 0, "the kernel reports no clock tick rate");
        Ok(after.saturating_sub(self.before) as f64 / per_second as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime ...
        let stat = "4242 (sftp-server (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 40 7 3 20 0 1 0 12345 1000000 200";
        assert_eq!(stat_ticks(stat), Some(250 + 40 + 7 + 3));
        assert_eq!(stat_ticks("4242 (cut) S 1"), None);
        assert_eq!(stat_ticks("no name at all"), None);
    }

    #[test]
    fn sigchld_is_read_from_the_ignored_mask() {
        let status = "Name:\tin.tftpd\nSigPnd:\t0000000000000000\nSigIgn:\t0000000000010004\n";
        assert_eq!(ignores_sigchld(status), Some(true));
        assert_eq!(ignores_sigchld("SigIgn:\t0000000000000004\n"), Some(false));
        assert_eq!(ignores_sigchld("Name:\tx\n"), None);
    }

    /// Runs a stand-in server: `program` with `args` waits for a line, does its work,
    /// prints `done`, then waits again. Returns the CPU seconds the meter saw for that work.
    fn metered_work(program: &str, args: &[&str]) -> f64 {
        use std::io::{BufRead as _, BufReader, Write as _};
        use std::process::{Command, Stdio};
        let mut server = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("stand-in server");
        let mut stdin = server.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(server.stdout.take().expect("stdout"));
        let meter = ServerCpu::start(server.id()).expect("start");
        writeln!(stdin, "go").expect("go");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("done");
        assert_eq!(line.trim(), "done");
        let seconds = meter.finish().expect("finish");
        drop(stdin);
        server.wait().expect("wait");
        seconds
    }

    /// A Python program that ignores `SIGCHLD` stands for tftpd-hpa: the kernel reaps its
    /// busy child itself, so the child's time never reaches its `cutime` and only the sampler
    /// can count it.
    #[test]
    fn a_child_of_a_parent_ignoring_sigchld_is_counted() {
        let program = r#"
import os, signal, sys, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
sys.stdin.readline()
child = os.fork()
if child == 0:
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    os._exit(0)
while os.path.exists(f"/proc/{child}"):
    time.sleep(0.01)
print("done", flush=True)
sys.stdin.readline()
"#;
        // The interpreter itself: a wrapper script in between would be the parent.
        let seconds = metered_work("/usr/bin/python3", &["-c", program]);
        assert!(seconds >= 0.2, "the unreaped child's CPU was not counted: {seconds} s");
    }

    /// A shell stands for a server: it waits for a line, runs a busy subshell (a session
    /// process), says `done` once it has reaped it, and waits again. Only the subshell burns
    /// CPU, and it is gone when the meter finishes: its time must come from `cutime`/`cstime`.
    #[test]
    fn a_finished_session_process_is_counted() {
        let script =
            "read x; (i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done); echo done; read y";
        let seconds = metered_work("sh", &["-c", script]);
        assert!(seconds >= 0.02, "the session's CPU was not counted: {seconds} s");
    }
}
