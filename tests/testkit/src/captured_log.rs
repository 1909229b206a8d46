//! Everything the process logs, kept in memory for a test to read (the audit events among it).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The log lines written since [`CapturedLog::install`]. Clones share the lines.
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
    /// Installs a capturing subscriber (DEBUG and up, no colours) as the process's global
    /// one. A test binary may do this once; call it from the only test that reads the log.
    pub fn install() -> CapturedLog {
        let captured = CapturedLog::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        captured
    }

    /// The audit events (target `wharf::audit`) written so far, one line each.
    pub fn audit_lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| line.contains("wharf::audit"))
            .map(str::to_owned)
            .collect()
    }

    /// The audit events of operation `op` (`download`, `upload`, `login`, ...).
    pub fn audit_events(&self, op: &str) -> Vec<String> {
        let marker = format!("op=\"{op}\"");
        self.audit_lines().into_iter().filter(|line| line.contains(&marker)).collect()
    }
}
