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
    fn this_process_has_memory() {
        let own = tree_memory(std::process::id()).expect("own memory");
        assert!(own.pss_kib > 0 && own.rss_kib >= own.pss_kib && own.processes >= 1);
    }
}
