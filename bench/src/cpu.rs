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

use std::collections::BTreeSet;
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

/// A measurement of a server's CPU time in progress.
pub struct ServerCpu {
    root: u32,
    before: u64,
    idle_tree: BTreeSet<u32>,
}

impl ServerCpu {
    /// Starts counting the CPU of the server whose root process is `root`.
    pub fn start(root: u32) -> anyhow::Result<ServerCpu> {
        let (before, idle_tree) = tree_ticks(root)?;
        Ok(ServerCpu { root, before, idle_tree })
    }

    /// The server's CPU seconds since [`ServerCpu::start`]. Waits (up to [`SETTLE_LIMIT`])
    /// until the processes the measurement started have ended, so that what they spent is
    /// in their parents' times; one still running then is counted as far as it got.
    pub fn finish(self) -> anyhow::Result<f64> {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let (after, _) = loop {
            let (ticks, tree) = tree_ticks(self.root)?;
            if tree.is_subset(&self.idle_tree) || Instant::now() >= deadline {
                break (ticks, tree);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
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

    /// A shell stands for a server: it waits for a line, runs a busy subshell (a session
    /// process), says `done` once it has reaped it, and waits again. Only the subshell burns
    /// CPU, and it is gone when the meter finishes: its time must come from `cutime`/`cstime`.
    #[test]
    fn a_finished_session_process_is_counted() {
        use std::io::{BufRead as _, BufReader, Write as _};
        use std::process::{Command, Stdio};
        let script =
            "read x; (i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done); echo done; read y";
        let mut server = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh");
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
        assert!(seconds >= 0.02, "the session's CPU was not counted: {seconds} s");
    }
}
