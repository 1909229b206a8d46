//! Checks on the storage tree as it lies on disk: digests (a refused operation changes
//! nothing), the sentinel outside the share, and temporary upload files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wharf_testkit::{SENTINEL, tree_digest};
use wharf_vfs::local::TEMP_PREFIX;

use crate::server::Wharf;

/// What `/etc/passwd` always holds; it must never appear in a reply.
pub const PASSWD_MARK: &[u8] = b"root:x:0:0";

/// A digest of every name, type and content under the share (on a bucket: every key).
pub fn share_digest(wharf: &Wharf) -> String {
    wharf.bucket_digest().unwrap_or_else(|| tree_digest(&wharf.root))
}

/// Panics unless the directory outside the share holds exactly the sentinel, unchanged.
pub fn assert_outside_untouched(wharf: &Wharf) {
    let mut names: Vec<_> = std::fs::read_dir(&wharf.outside)
        .expect("outside folder")
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name()))
        .collect();
    names.sort();
    assert_eq!(names, [std::ffi::OsString::from("sentinel.txt")], "nothing was added outside");
    let content = std::fs::read(wharf.outside.join("sentinel.txt")).expect("sentinel");
    assert_eq!(content, SENTINEL, "the sentinel outside the share changed");
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// Panics when `received` (anything a server sent) shows the sentinel or `/etc/passwd`.
pub fn assert_nothing_from_outside(what: &str, received: &[u8]) {
    assert!(!contains(received, SENTINEL), "{what}: the sentinel's content was sent");
    assert!(!contains(received, PASSWD_MARK), "{what}: /etc/passwd was sent");
}

/// Temporary upload files (`.wharf-tmp-*`) anywhere under `dir`.
pub fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                found.push(path);
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            }
        }
    }
    found
}

/// Waits until no temporary upload file is left under `dir`: the server removes one when
/// it abandons an upload, which happens when it notices the client is gone (at once for a
/// closed connection, after its retransmissions for TFTP). Panics after `limit`.
pub async fn wait_for_no_temporary_files(dir: &Path, limit: Duration) {
    let started = Instant::now();
    loop {
        let left = temporary_files(dir);
        if left.is_empty() {
            return;
        }
        assert!(started.elapsed() < limit, "temporary upload files left after {limit:?}: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until an upload in progress shows on disk under `dir`: a temporary upload file that
/// has received at least `bytes`. Panics after `limit`.
pub async fn wait_for_upload_in_progress(dir: &Path, bytes: u64, limit: Duration) -> PathBuf {
    let started = Instant::now();
    loop {
        let grown = temporary_files(dir)
            .into_iter()
            .find(|path| std::fs::metadata(path).is_ok_and(|meta| meta.len() >= bytes));
        if let Some(path) = grown {
            return path;
        }
        assert!(started.elapsed() < limit, "no upload of {bytes} bytes under way after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a name is a temporary upload file's.
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name.contains(".wharf-tmp")
}
