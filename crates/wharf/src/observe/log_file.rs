//! An append-only log file written one whole line at a time, so concurrent writers never
//! interleave inside a line and nothing sits in a buffer when the process dies.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A log file opened for appending.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    /// Opens (or creates, readable by owner and group) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path)?;
        Ok(LogFile { path: path.to_owned(), file: Mutex::new(file) })
    }

    /// Appends `line` and a newline in one write.
    pub fn write_line(&self, line: &str) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = file.write_all(&buf) {
            // Not through tracing: this runs inside a tracing layer.
            eprintln!("wharf: cannot write {}: {err}", self.path.display());
        }
    }
}
