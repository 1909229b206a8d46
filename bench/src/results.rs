//! What a bench run found: one row per figure, each with both sides, the CPU time each
//! server spent, their ratio, and whether the two sides can be told apart at all.

use crate::endpoint::{Side, Unavailable};
use crate::stats::{Summary, summarize};

/// The unit of a row's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Unit {
    /// Megabytes (10^6 bytes) per second.
    #[serde(rename = "MB/s")]
    MegabytesPerSecond,
    /// Files per second.
    #[serde(rename = "files/s")]
    FilesPerSecond,
    /// KiB of server memory per idle session.
    #[serde(rename = "KiB/session")]
    KibPerSession,
    /// MiB of resident memory at a peak.
    #[serde(rename = "MiB")]
    Mebibytes,
    /// Milliseconds a client waits for something (a session, a login).
    #[serde(rename = "ms")]
    Milliseconds,
}

impl Unit {
    /// As shown in the table.
    pub fn label(self) -> &'static str {
        match self {
            Unit::MegabytesPerSecond => "MB/s",
            Unit::FilesPerSecond => "files/s",
            Unit::KibPerSession => "KiB/session",
            Unit::Mebibytes => "MiB",
            Unit::Milliseconds => "ms",
        }
    }

    /// Whether a larger figure is better (speeds), or a smaller one (memory, waiting).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Unit::KibPerSession | Unit::Mebibytes | Unit::Milliseconds)
    }
}

/// What a row must show to pass (from the issue).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Wharf/peer at least this.
    RatioAtLeast(f64),
    /// Wharf's figure at most this.
    WharfAtMost(f64),
}

impl Target {
    /// As shown in the table.
    pub fn label(self) -> String {
        match self {
            Target::RatioAtLeast(ratio) => format!(">= {ratio:.1}x"),
            Target::WharfAtMost(limit) => format!("<= {limit:.0}"),
        }
    }
}

/// How a row's two sides compare against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better than the target asks, by more than the spread of the runs.
    Met,
    /// The two sides' ranges (min to max over the runs) overlap: the runs cannot tell them
    /// apart, whichever median is ahead. Not counted as met.
    Parity,
    /// Worse than the target asks, by more than the spread of the runs.
    Missed,
}

/// One side's figure in a row.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Figure {
    /// Measured: every run's value and their summary.
    Measured {
        /// Median, min, max.
        summary: Summary,
        /// Each run, in order.
        samples: Vec<f64>,
        /// The server's CPU seconds (user + system of its process tree) in each run, where
        /// the scenario measures them (every throughput row; not idle memory).
        cpu_samples: Vec<f64>,
        /// Their median, min and max.
        cpu_seconds: Option<Summary>,
    },
    /// Could not be measured at all.
    Unavailable {
        /// Why.
        #[serde(flatten)]
        why: Unavailable,
    },
    /// A run failed (wrong bytes, an error, a time-out): no figure is claimed.
    Failed {
        /// What went wrong.
        error: String,
        /// Runs that succeeded before.
        samples: Vec<f64>,
    },
}

impl Figure {
    /// The summary when measured.
    pub fn summary(&self) -> Option<Summary> {
        match self {
            Figure::Measured { summary, .. } => Some(*summary),
            _ => None,
        }
    }

    /// The summary of the server's CPU seconds, when measured.
    pub fn cpu_seconds(&self) -> Option<Summary> {
        match self {
            Figure::Measured { cpu_seconds, .. } => *cpu_seconds,
            _ => None,
        }
    }

    /// Builds the figure from a side's runs (each value with the server's CPU seconds, when
    /// measured): a failure anywhere wins over good runs.
    pub fn from_runs(runs: Vec<Sample>, failure: Option<String>) -> Figure {
        let samples: Vec<f64> = runs.iter().map(|run| run.value).collect();
        let cpu_samples: Vec<f64> = runs.iter().filter_map(|run| run.server_cpu).collect();
        // A CPU figure only when every run has one: a partial set would summarize other runs.
        let cpu_seconds =
            if cpu_samples.len() == runs.len() { summarize(&cpu_samples) } else { None };
        match (failure, summarize(&samples)) {
            (Some(error), _) => Figure::Failed { error, samples },
            (None, Some(summary)) => {
                Figure::Measured { summary, samples, cpu_samples, cpu_seconds }
            }
            (None, None) => Figure::Failed { error: "no run".to_owned(), samples },
        }
    }
}

/// One run of one side: the figure, and the server's CPU seconds during it when measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The figure in the row's unit.
    pub value: f64,
    /// User + system seconds of the server's process tree during the measured transfer.
    pub server_cpu: Option<f64>,
}

/// Whether Wharf's range and the peer's range scaled by `ratio` overlap: then the runs
/// cannot tell Wharf/peer from `ratio`.
fn ranges_overlap(peer: Summary, wharf: Summary, ratio: f64) -> bool {
    wharf.min <= peer.max * ratio && peer.min * ratio <= wharf.max
}

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Stable identifier, e.g. `ftp.download`; a row against unFTP ends in `.unftp`
    /// (`ftp.download.unftp`).
    pub id: String,
    /// Protocol group (`FTP`, ...).
    pub protocol: &'static str,
    /// What is measured, with the client.
    pub title: String,
    /// The peer's name and version.
    pub peer_name: String,
    /// Which peer: `peer` (vsftpd, OpenSSH, tftpd-hpa) or `unftp`.
    pub peer_side: Side,
    /// Unit of both figures.
    pub unit: Unit,
    /// Whether larger figures are better (speeds) or smaller (memory).
    pub higher_is_better: bool,
    /// The target, if it sets one for this row.
    pub target: Option<Target>,
    /// The peer's figure.
    pub peer: Figure,
    /// Wharf's figure.
    pub wharf: Figure,
    /// Wharf's median over the peer's median, when both were measured.
    pub ratio: Option<f64>,
    /// Wharf/peer of each run (measured side by side, in the same run).
    pub run_ratios: Vec<f64>,
    /// Whether the two sides' ranges (min to max) overlap, when both were measured: the
    /// ratio is then shown as parity, whatever its value.
    pub parity: Option<bool>,
    /// The verdict on the target (`None`: no target or not measured).
    pub verdict: Option<Verdict>,
}

impl Row {
    /// Completes a row from both sides' figures: `head` measured on Wharf and on `peer`.
    pub fn new(
        head: &RowHead,
        peer_side: &ComparedPeer,
        peer: Figure,
        wharf: Figure,
        run_ratios: Vec<f64>,
    ) -> Row {
        let both = peer.summary().zip(wharf.summary());
        let ratio = both.filter(|(p, _)| p.median > 0.0).map(|(p, w)| w.median / p.median);
        let parity = both.map(|(p, w)| ranges_overlap(p, w, 1.0));
        let verdict = match head.target {
            Some(Target::RatioAtLeast(min)) => both.zip(ratio).map(|((p, w), ratio)| {
                if ranges_overlap(p, w, min) {
                    Verdict::Parity
                } else if ratio >= min {
                    Verdict::Met
                } else {
                    Verdict::Missed
                }
            }),
            Some(Target::WharfAtMost(max)) => wharf
                .summary()
                .map(|w| if w.median <= max { Verdict::Met } else { Verdict::Missed }),
            None => None,
        };
        Row {
            id: match peer_side.side {
                Side::Unftp => format!("{}.unftp", head.id),
                Side::Peer | Side::Wharf => head.id.clone(),
            },
            protocol: head.protocol,
            title: head.title.clone(),
            peer_name: peer_side.name.clone(),
            peer_side: peer_side.side,
            unit: head.unit,
            higher_is_better: head.unit.higher_is_better(),
            target: head.target,
            peer,
            wharf,
            ratio,
            run_ratios,
            parity,
            verdict,
        }
    }
}

/// A peer a row compares Wharf with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComparedPeer {
    /// Which one.
    pub side: Side,
    /// Its name and version, for the table.
    pub name: String,
}

/// The description of a measurement, before it is taken: one row per peer of its protocol.
#[derive(Debug, Clone)]
pub struct RowHead {
    /// See [`Row::id`].
    pub id: String,
    /// See [`Row::protocol`].
    pub protocol: &'static str,
    /// See [`Row::title`].
    pub title: String,
    /// See [`Row::unit`].
    pub unit: Unit,
    /// See [`Row::target`].
    pub target: Option<Target>,
}
