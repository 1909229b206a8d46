//! Counters derived from audit and defender events, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use wharf_hooks::HookCounters;

use super::record::AuditRecord;

/// A metric name with its labels, e.g. `wharf_logins_total{protocol="ftp",outcome="ok"}`.
type Series = (&'static str, Vec<(&'static str, String)>);

/// The counters and gauges of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Series, i64>>,
    /// The event hooks' counters, read at scrape time (see [`Metrics::watch_hooks`]).
    hooks: OnceLock<HookCounters>,
}

/// Help text and type of each metric, in output order.
const FAMILIES: &[(&str, &str, &str)] = &[
    ("wharf_sessions_active", "gauge", "Logged-in sessions, by protocol."),
    ("wharf_logins_total", "counter", "Login attempts, by protocol and outcome (ok or failed)."),
    ("wharf_transfers_total", "counter", "Finished transfers, by protocol, direction and outcome."),
    ("wharf_bytes_total", "counter", "Bytes transferred, by protocol and direction (in = upload)."),
    ("wharf_errors_total", "counter", "Operations that failed, by error kind."),
    ("wharf_bans_total", "counter", "Addresses banned by the defender since start."),
    ("wharf_bans_active", "gauge", "Addresses banned right now."),
];

/// Help text and type of the event hooks' metrics, by rule.
const HOOK_FAMILIES: &[(&str, &str, &str)] = &[
    ("wharf_hook_events_delivered_total", "counter", "Hook events delivered, by rule."),
    (
        "wharf_hook_attempts_failed_total",
        "counter",
        "Hook deliveries that failed and wait to be tried again, by rule.",
    ),
    (
        "wharf_hook_events_dropped_total",
        "counter",
        "Hook events dropped (spool full or failing), by rule.",
    ),
    ("wharf_hook_events_spooled", "gauge", "Hook events waiting in the spool, by rule."),
];

impl Metrics {
    fn add(&self, name: &'static str, labels: Vec<(&'static str, String)>, delta: i64) {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        *values.entry((name, labels)).or_insert(0) += delta;
    }

    /// Accounts for one audit event.
    pub fn observe(&self, record: &AuditRecord) {
        let protocol = record.protocol.clone();
        match record.op.as_str() {
            "login" => {
                let outcome = if record.outcome == "ok" { "ok" } else { "failed" };
                self.add(
                    "wharf_logins_total",
                    vec![("protocol", protocol.clone()), ("outcome", outcome.into())],
                    1,
                );
                if record.outcome == "ok" {
                    self.add("wharf_sessions_active", vec![("protocol", protocol)], 1);
                }
            }
            "logout" => self.add("wharf_sessions_active", vec![("protocol", protocol)], -1),
            "download" | "upload" => {
                let direction = if record.op == "download" { "out" } else { "in" };
                self.add(
                    "wharf_transfers_total",
                    vec![
                        ("protocol", protocol.clone()),
                        ("direction", direction.into()),
                        ("outcome", record.outcome.clone()),
                    ],
                    1,
                );
                let bytes = i64::try_from(record.bytes.unwrap_or(0)).unwrap_or(i64::MAX);
                self.add(
                    "wharf_bytes_total",
                    vec![("protocol", protocol), ("direction", direction.into())],
                    bytes,
                );
            }
            _ => {}
        }
        if !matches!(record.outcome.as_str(), "ok" | "aborted") && record.op != "login" {
            self.add("wharf_errors_total", vec![("kind", record.outcome.clone())], 1);
        }
    }

    /// Accounts for an address being banned.
    pub fn observe_ban(&self) {
        self.add("wharf_bans_total", Vec::new(), 1);
    }

    /// Renders the event hooks' counters too, read from `counters` at each scrape.
    pub fn watch_hooks(&self, counters: HookCounters) {
        let _ = self.hooks.set(counters);
    }

    fn render_hooks(&self, out: &mut String) {
        let Some(counters) = self.hooks.get() else { return };
        let rules = counters.snapshot();
        for (index, (family, kind, help)) in HOOK_FAMILIES.iter().enumerate() {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for rule in &rules {
                let value =
                    [rule.delivered, rule.failed_attempts, rule.dropped, rule.spooled][index];
                let _ = writeln!(out, "{family}{{rule=\"{}\"}} {value}", escape(&rule.rule));
            }
        }
    }

    /// Renders every metric; `active_bans` is read from the defender at scrape time.
    pub fn render(&self, active_bans: usize) -> String {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            if *family == "wharf_bans_active" {
                let _ = writeln!(out, "{family} {active_bans}");
                continue;
            }
            let mut any = false;
            for ((name, labels), value) in values.iter().filter(|((name, _), _)| name == family) {
                any = true;
                let labels: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
                }
            }
            if !any && *family == "wharf_bans_total" {
                let _ = writeln!(out, "{family} 0");
            }
        }
        self.render_hooks(&mut out);
        out
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: &str, protocol: &str, outcome: &str, bytes: Option<u64>) -> AuditRecord {
        AuditRecord {
            op: op.into(),
            protocol: protocol.into(),
            outcome: outcome.into(),
            bytes,
            ..AuditRecord::default()
        }
    }

    #[test]
    fn counts_logins_sessions_bytes_and_errors() {
        let m = Metrics::default();
        m.observe(&record("login", "ftp", "ok", None));
        m.observe(&record("login", "ftp", "denied", None));
        m.observe(&record("login", "sftp", "ok", None));
        m.observe(&record("logout", "sftp", "ok", None));
        m.observe(&record("download", "ftp", "ok", Some(1000)));
        m.observe(&record("upload", "ftp", "no_space", Some(10)));
        m.observe(&record("stat", "ftp", "not_found", None));
        m.observe_ban();
        let text = m.render(3);
        for expected in [
            "wharf_logins_total{protocol=\"ftp\",outcome=\"ok\"} 1",
            "wharf_logins_total{protocol=\"ftp\",outcome=\"failed\"} 1",
            "wharf_sessions_active{protocol=\"ftp\"} 1",
            "wharf_sessions_active{protocol=\"sftp\"} 0",
            "wharf_bytes_total{protocol=\"ftp\",direction=\"out\"} 1000",
            "wharf_bytes_total{protocol=\"ftp\",direction=\"in\"} 10",
            "wharf_transfers_total{protocol=\"ftp\",direction=\"in\",outcome=\"no_space\"} 1",
            "wharf_errors_total{kind=\"no_space\"} 1",
            "wharf_errors_total{kind=\"not_found\"} 1",
            "wharf_bans_total 1",
            "wharf_bans_active 3",
            "# TYPE wharf_bytes_total counter",
        ] {
            assert!(text.contains(expected), "missing {expected}:\n{text}");
        }
    }
}
