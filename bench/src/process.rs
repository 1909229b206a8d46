//! Child processes the bench starts: a guard that stops a process and everything it forked,
//! a registry so Ctrl-C can stop them too, and bounded runs of client commands.
//!
//! Servers such as vsftpd and sshd fork a process (or two) per session, and sshd puts each in
//! its own session with `setsid`, so killing the listener or its process group is not enough:
//! the guard walks `/proc` for every descendant of the process it started.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal, kill_process};

/// Capacity asked for the pipe a client streams its output through.
const STREAM_PIPE_SIZE: usize = 1 << 20;

/// Pids of processes started by the bench and not yet stopped (roots of their trees).
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A started process; dropping it stops the process and all its descendants.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    label: String,
}

impl ChildGuard {
    /// Starts `command`, registering it so an interrupt stops it too.
    pub fn spawn(command: &mut Command, label: &str) -> anyhow::Result<ChildGuard> {
        let child = command.spawn().with_context(|| format!("cannot start {label}"))?;
        live().insert(child.id());
        Ok(ChildGuard { child, label: label.to_owned() })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What this process is, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The underlying child, e.g. to take its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether it has exited (and with what), without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        stop_tree(self.child.id());
        // Reap it; it is gone or killed by now.
        let _ = self.child.wait();
        live().remove(&self.child.id());
    }
}

/// A process the bench had started through a harness that stops it on drop (the tests'
/// HAProxy and PostgreSQL), registered so that an interrupt stops it too. Dropping this only
/// removes it from the register; stopping it stays the harness's job.
#[derive(Debug)]
pub struct Registered(u32);

/// Registers `pid` (the root of a process tree) to be stopped on interrupt.
pub fn register(pid: u32) -> Registered {
    live().insert(pid);
    Registered(pid)
}

impl Drop for Registered {
    fn drop(&mut self) {
        live().remove(&self.0);
    }
}

/// Stops every process the bench started that is still running (used on interrupt).
pub fn stop_all_live() {
    let roots: Vec<u32> = live().iter().copied().collect();
    for root in roots {
        stop_tree(root);
    }
}

/// Parent pid of `pid` from `/proc/<pid>/stat`, skipping the command name, which may itself
/// contain spaces and parentheses; `None` when it is gone.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Every process whose ancestry leads to `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_by_pid = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some(parent) = parent_of(pid)
            {
                parent_by_pid.push((pid, parent));
            }
        }
    }
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(parent_by_pid.iter().filter(|(_, p)| *p == parent).map(|(pid, _)| *pid));
        index += 1;
    }
    found.remove(0);
    found
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

/// Running and not a zombie.
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// SIGTERM to `root` and its descendants, then SIGKILL to whatever is left after a moment.
pub fn stop_tree(root: u32) {
    let mut pids = descendants(root);
    pids.push(root);
    for pid in &pids {
        signal(*pid, Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && pids.iter().any(|pid| is_running(*pid)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Children forked between the scan and the signal are caught by a second scan.
    pids.extend(descendants(root));
    for pid in pids.iter().filter(|pid| is_running(**pid)) {
        signal(*pid, Signal::KILL);
    }
}

/// Starts a server in the foreground with its output going to `log`.
pub fn spawn_server(command: &mut Command, log: &Path, label: &str) -> anyhow::Result<ChildGuard> {
    let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    ChildGuard::spawn(command, label)
}

/// What a finished client command produced. `T` is what became of its standard output:
/// the text (the default), or whatever a consumer made of the stream.
#[derive(Debug)]
pub struct Finished<T = String> {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, as captured or consumed.
    pub stdout: T,
    /// Standard error.
    pub stderr: String,
    /// Wall time from start to exit.
    pub elapsed: Duration,
}

impl<T> Finished<T> {
    /// Itself on success, else an error quoting stderr.
    pub fn ok(self, what: &str) -> anyhow::Result<Finished<T>> {
        if self.status.success() {
            return Ok(self);
        }
        bail!("{what} failed ({}): {}", self.status, self.stderr.trim())
    }
}

/// A client command started with piped output, read on threads so it never blocks.
pub struct RunningCommand<T = String> {
    guard: ChildGuard,
    started: Instant,
    stdout: std::thread::JoinHandle<T>,
    stderr: std::thread::JoinHandle<String>,
}

fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

impl RunningCommand<String> {
    /// Starts `command` with stdin closed and stdout/stderr captured.
    pub fn start(command: &mut Command, label: &str) -> anyhow::Result<RunningCommand<String>> {
        RunningCommand::start_consuming(command, label, |stdout| drain(Some(stdout)))
    }
}

impl<T: Send + 'static> RunningCommand<T> {
    /// Starts `command` with stdin closed, stderr captured and stdout handed to `consume`
    /// on its own thread (e.g. to check a download streamed to stdout without storing it).
    pub fn start_consuming(
        command: &mut Command,
        label: &str,
        consume: impl FnOnce(ChildStdout) -> T + Send + 'static,
    ) -> anyhow::Result<RunningCommand<T>> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut guard = ChildGuard::spawn(command, label)?;
        let stdout_pipe = guard.child_mut().stdout.take().context("no stdout pipe")?;
        // A download streamed through the default 64 KiB pipe costs a context switch per
        // 64 KiB; 1 MiB (the usual unprivileged maximum) lets the client write in big steps.
        let _ = rustix::pipe::fcntl_setpipe_size(&stdout_pipe, STREAM_PIPE_SIZE);
        let stderr_pipe = guard.child_mut().stderr.take();
        let stdout = std::thread::spawn(move || consume(stdout_pipe));
        let stderr = std::thread::spawn(move || drain(stderr_pipe));
        Ok(RunningCommand { guard, started, stdout, stderr })
    }

    /// The process id, e.g. to watch its memory while it runs.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Waits for it to exit; kills it (and fails) when `limit` passes first.
    pub fn finish(mut self, limit: Duration) -> anyhow::Result<Finished<T>> {
        let status = loop {
            if let Some(status) = self.guard.try_wait() {
                break status;
            }
            if self.started.elapsed() > limit {
                let label = self.guard.label().to_owned();
                drop(self.guard);
                bail!("{label} did not finish within {} s; stopped", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let elapsed = self.started.elapsed();
        drop(self.guard);
        let stdout = self.stdout.join().map_err(|_| anyhow::anyhow!("stdout reader panicked"))?;
        let stderr = self.stderr.join().unwrap_or_default();
        Ok(Finished { status, stdout, stderr, elapsed })
    }
}

/// Runs `command` to completion within `limit`.
pub fn run(command: &mut Command, label: &str, limit: Duration) -> anyhow::Result<Finished> {
    RunningCommand::start(command, label)?.finish(limit)
}

/// Runs `command` within `limit` and fails unless it exits successfully.
pub fn run_ok(command: &mut Command, label: &str, limit: Duration) -> anyhow::Result<Finished> {
    run(command, label, limit)?.ok(label)
}
