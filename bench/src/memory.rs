//! Memory of a server's process tree. vsftpd and sshd run each session as processes that
//! share most of their pages (program text, libraries), so their resident sizes cannot be
//! added up; the proportional set size (PSS) splits each shared page among its sharers, and
//! its sum over the tree is the memory the tree really holds. For one process PSS is close
//! to RSS; both are recorded.

use anyhow::Context as _;

use crate::process::descendants;

/// Memory of a process and its descendants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TreeMemory {
    /// Sum of proportional set sizes, KiB.
    pub pss_kib: u64,
    /// Sum of resident set sizes, KiB (counts shared pages once per process).
    pub rss_kib: u64,
    /// Processes in the tree.
    pub processes: usize,
}

/// Reads a `Key:   123 kB` line of a /proc file.
fn field_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Memory of `root` and every process descending from it.
pub fn tree_memory(root: u32) -> anyhow::Result<TreeMemory> {
    let mut pids = descendants(root);
    pids.push(root);
    let mut total = TreeMemory::default();
    for pid in pids {
        // A session process may exit between the scan and the read; it holds nothing then.
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        total.pss_kib += field_kib(&rollup, "Pss").with_context(|| format!("Pss of {pid}"))?;
        total.rss_kib += field_kib(&rollup, "Rss").with_context(|| format!("Rss of {pid}"))?;
        total.processes += 1;
    }
    Ok(total)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`); `None` when the process is gone.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    field_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, key)
}

/// Starts a new peak of `pid`'s resident memory (`VmHWM`) at what it holds now, so that the
/// next reading is the peak of what follows (`/proc/<pid>/clear_refs`, Linux 4.0 and later).
pub fn reset_peak(pid: u32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").with_context(|| format!("writing {path}"))
}

/// Watches a running process's peak resident memory until it exits.
pub struct PeakWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: std::thread::JoinHandle<u64>,
}

impl PeakWatch {
    /// How often the peak is read: the kernel keeps the peak, so the reading only has to
    /// come after it, and a process's last reading is at most this long before its exit.
    const EVERY: std::time::Duration = std::time::Duration::from_millis(10);

    /// Starts watching `pid`.
    pub fn start(pid: u32) -> PeakWatch {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let watcher = std::thread::spawn(move || {
            // Read once more after being stopped: the last reading comes after the end.
            let mut peak = 0;
            while let Some(kib) = status_kib(pid, "VmHWM") {
                peak = kib.max(peak);
                if flag.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Self::EVERY);
            }
            peak
        });
        PeakWatch { stop, watcher }
    }

    /// The highest peak read, KiB (0 when the process was never seen).
    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.watcher.join().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_kib() {
        let text = "55d0-7ff [rollup]\nRss:                5120 kB\nPss:                1234 kB\n";
        assert_eq!(field_kib(text, "Pss"), Some(1234));
        assert_eq!(field_kib(text, "Rss"), Some(5120));
        assert_eq!(field_kib(text, "Swap"), None);
    }

    #[test]
    fn a_watched_process_has_a_peak() {
        let peak = PeakWatch::start(std::process::id()).finish();
        assert!(peak > 0 && peak >= status_kib(std::process::id(), "VmRSS").unwrap_or(0) / 2);
    }

    #[test]
    fn this_process_has_memory() {
        let own = tree_memory(std::process::id()).expect("own memory");
        assert!(own.pss_kib > 0 && own.rss_kib >= own.pss_kib && own.processes >= 1);
    }
}
