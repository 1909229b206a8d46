//! What watches the server: the audit log (JSON lines), the transfer log (xferlog) and the
//! metrics, all fed by the audit events the shared layer emits through `tracing`.

pub mod http;
pub mod log_file;
pub mod metrics;
pub mod record;
pub mod xferlog;

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing_subscriber::layer::Context;
use wharf_access::AUDIT_TARGET;

use log_file::LogFile;
use metrics::Metrics;
use record::AuditRecord;

/// Target of the defender's "address banned" events.
const DEFENDER_TARGET: &str = "wharf::defender";

/// A `tracing` layer turning audit events into log lines and metrics.
pub struct Observers {
    audit_log: Option<LogFile>,
    transfer_log: Option<LogFile>,
    metrics: Arc<Metrics>,
}

#[derive(Serialize)]
struct AuditLine<'a> {
    time: String,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

impl Observers {
    /// Observers writing to the given files (each optional) and counting into `metrics`.
    pub fn new(
        audit_log: Option<LogFile>,
        transfer_log: Option<LogFile>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Observers { audit_log, transfer_log, metrics }
    }

    /// Which events this layer needs: every audit event (reads of metadata are at DEBUG) and
    /// the defender's bans — and nothing else, so other crates' debug events cost nothing.
    pub fn filter() -> tracing_subscriber::filter::Targets {
        tracing_subscriber::filter::Targets::new()
            .with_target(AUDIT_TARGET, tracing::Level::DEBUG)
            .with_target(DEFENDER_TARGET, tracing::Level::WARN)
    }

    fn on_audit(&self, record: &AuditRecord) {
        self.metrics.observe(record);
        let now = OffsetDateTime::now_utc();
        if let Some(log) = &self.audit_log {
            let line = AuditLine { time: now.format(&Rfc3339).unwrap_or_default(), record };
            if let Ok(json) = serde_json::to_string(&line) {
                log.write_line(&json);
            }
        }
        if let (Some(log), Some(line)) = (&self.transfer_log, xferlog::line(record, now)) {
            log.write_line(&line);
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Observers {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        match event.metadata().target() {
            AUDIT_TARGET => self.on_audit(&AuditRecord::from_event(event)),
            DEFENDER_TARGET => self.metrics.observe_ban(),
            _ => {}
        }
    }
}
