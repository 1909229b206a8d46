//! Everything the process logs, kept in memory for a test to read: the audit events, or a line
//! the test waits for as its positive signal.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The log lines written since the capture was installed. Clones share the lines.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// The capture of this test binary, installed on first use as the process's global
    /// subscriber (DEBUG and up, no colours).
    pub fn global() -> &'static CapturedLog {
        static CAPTURED: OnceLock<CapturedLog> = OnceLock::new();
        CAPTURED.get_or_init(|| {
            let captured = CapturedLog::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            captured
        })
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
    }

    /// Whether a line logged so far holds every one of `parts`.
    pub fn contains(&self, parts: &[&str]) -> bool {
        self.lines().iter().any(|line| parts.iter().all(|part| line.contains(part)))
    }

    /// Waits (at most `secs` seconds) until a logged line holds every one of `parts`.
    pub async fn wait_for(&self, parts: &[&str], secs: u64) {
        for _ in 0..secs * 100 {
            if self.contains(parts) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no log line with {parts:?} within {secs} s");
    }

    /// The audit events (target `wharf::audit`) written so far, one line each.
    pub fn audit_lines(&self) -> Vec<String> {
        self.lines().into_iter().filter(|line| line.contains("wharf::audit")).collect()
    }

    /// The audit events of operation `op` (`download`, `upload`, `login`, ...).
    pub fn audit_events(&self, op: &str) -> Vec<String> {
        let marker = format!("op=\"{op}\"");
        self.audit_lines().into_iter().filter(|line| line.contains(&marker)).collect()
    }
}
