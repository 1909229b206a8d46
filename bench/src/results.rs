//! What a bench run found: one row per figure, each with both sides and their ratio.

use crate::endpoint::Unavailable;
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
}

impl Unit {
    /// As shown in the table.
    pub fn label(self) -> &'static str {
        match self {
            Unit::MegabytesPerSecond => "MB/s",
            Unit::FilesPerSecond => "files/s",
            Unit::KibPerSession => "KiB/session",
        }
    }

    /// Whether a larger figure is better (speeds), or a smaller one (memory).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Unit::KibPerSession)
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

    /// Builds the figure from a side's runs: a failure anywhere wins over good runs.
    pub fn from_runs(samples: Vec<f64>, failure: Option<String>) -> Figure {
        match (failure, summarize(&samples)) {
            (Some(error), _) => Figure::Failed { error, samples },
            (None, Some(summary)) => Figure::Measured { summary, samples },
            (None, None) => Figure::Failed { error: "no run".to_owned(), samples },
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Stable identifier, e.g. `ftp.download`.
    pub id: String,
    /// Protocol group (`FTP`, ...).
    pub protocol: &'static str,
    /// What is measured, with the client.
    pub title: String,
    /// The peer's name and version.
    pub peer_name: String,
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
    /// Whether the target is met (`None`: no target or not measured).
    pub target_met: Option<bool>,
}

impl Row {
    /// Completes a row from both sides' figures.
    pub fn new(head: RowHead, peer: Figure, wharf: Figure, run_ratios: Vec<f64>) -> Row {
        let ratio = match (peer.summary(), wharf.summary()) {
            (Some(p), Some(w)) if p.median > 0.0 => Some(w.median / p.median),
            _ => None,
        };
        let target_met = match head.target {
            Some(Target::RatioAtLeast(min)) => ratio.map(|r| r >= min),
            Some(Target::WharfAtMost(max)) => wharf.summary().map(|w| w.median <= max),
            None => None,
        };
        Row {
            id: head.id,
            protocol: head.protocol,
            title: head.title,
            peer_name: head.peer_name,
            unit: head.unit,
            higher_is_better: head.unit.higher_is_better(),
            target: head.target,
            peer,
            wharf,
            ratio,
            run_ratios,
            target_met,
        }
    }
}

/// The description of a row, before it is measured.
#[derive(Debug, Clone)]
pub struct RowHead {
    /// See [`Row::id`].
    pub id: String,
    /// See [`Row::protocol`].
    pub protocol: &'static str,
    /// See [`Row::title`].
    pub title: String,
    /// See [`Row::peer_name`].
    pub peer_name: String,
    /// See [`Row::unit`].
    pub unit: Unit,
    /// See [`Row::target`].
    pub target: Option<Target>,
}
