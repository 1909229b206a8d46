//! The four scenarios of the issue, and how one row is measured on both sides.

pub mod idle;
pub mod parallel;
pub mod small_files;
pub mod transfer;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::{Protocol, Sizes};
use crate::cpu::ServerCpu;
use crate::credentials::Credentials;
use crate::dataset::{Fingerprint, verify};
use crate::endpoint::{Endpoint, Side, Unavailable};
use crate::lineup::Lineup;
use crate::machine::PeerVersions;
use crate::results::{Figure, Row, RowHead, Sample};
use crate::scratch::Scratch;

/// What every scenario works with.
pub struct Bench<'a> {
    /// The scratch directory and data set.
    pub scratch: &'a Scratch,
    /// Client credentials.
    pub credentials: &'a Credentials,
    /// Sizes of this run.
    pub sizes: &'a Sizes,
    /// Measurements per figure.
    pub runs: usize,
    /// Names of the peers, for the table.
    pub peers: &'a PeerVersions,
}

/// Collects one row's runs on both sides.
pub struct RowRecorder {
    head: RowHead,
    runs: usize,
    samples: [Vec<Sample>; 2],
    failures: [Option<String>; 2],
    unavailable: [Option<Unavailable>; 2],
    per_run: Vec<[Option<f64>; 2]>,
}

impl RowRecorder {
    /// A row of `runs` runs per side.
    pub fn new(head: RowHead, runs: usize) -> RowRecorder {
        RowRecorder {
            head,
            runs,
            samples: [Vec::new(), Vec::new()],
            failures: [None, None],
            unavailable: [None, None],
            per_run: vec![[None, None]; runs],
        }
    }

    /// Whether `side` should still be measured (not unavailable, no failed run).
    pub fn wants(&self, side: Side) -> bool {
        self.failures[side as usize].is_none() && self.unavailable[side as usize].is_none()
    }

    /// `side` cannot be measured.
    pub fn unavailable(&mut self, side: Side, why: Unavailable) {
        self.unavailable[side as usize].get_or_insert(why);
    }

    /// Records run `run` of `side`; a failure ends that side's measurements.
    pub fn record(&mut self, side: Side, run: usize, outcome: anyhow::Result<Sample>) {
        let index = side as usize;
        let title = &self.head.title;
        match outcome {
            Ok(sample) => {
                let cpu = sample
                    .server_cpu
                    .map(|seconds| format!(", server CPU {seconds:.2} s"))
                    .unwrap_or_default();
                eprintln!(
                    "  {title:<58} {:<5} run {}/{}: {:.1} {}{cpu}",
                    side.name(),
                    run + 1,
                    self.runs,
                    sample.value,
                    self.head.unit.label()
                );
                self.samples[index].push(sample);
                if let Some(pair) = self.per_run.get_mut(run) {
                    pair[index] = Some(sample.value);
                }
            }
            Err(err) => {
                eprintln!("  {title:<58} {:<5} FAILED: {err:#}", side.name());
                self.failures[index].get_or_insert(format!("{err:#}"));
            }
        }
    }

    /// The finished row.
    pub fn finish(self) -> Row {
        let run_ratios = self
            .per_run
            .iter()
            .filter_map(|pair| match pair {
                [Some(peer), Some(wharf)] if *peer > 0.0 => Some(wharf / peer),
                _ => None,
            })
            .collect();
        let [peer_samples, wharf_samples] = self.samples;
        let [peer_failure, wharf_failure] = self.failures;
        let [peer_unavailable, wharf_unavailable] = self.unavailable;
        let figure = |unavailable: Option<Unavailable>, samples, failure| match unavailable {
            Some(why) => Figure::Unavailable { why },
            None => Figure::from_runs(samples, failure),
        };
        Row::new(
            self.head,
            figure(peer_unavailable, peer_samples, peer_failure),
            figure(wharf_unavailable, wharf_samples, wharf_failure),
            run_ratios,
        )
    }
}

/// Measures one row on one lineup: `runs` times each side, alternating which side goes
/// first. A side whose protocol is unavailable is reported so; a side whose run fails (an
/// error, or bytes that do not verify) is reported failed and measured no further.
pub fn measure_row(
    head: RowHead,
    protocol: Protocol,
    runs: usize,
    lineup: &Lineup,
    mut measure: impl FnMut(Side, &Endpoint, usize) -> anyhow::Result<Sample>,
) -> Row {
    let mut recorder = RowRecorder::new(head, runs);
    for side in Side::BOTH {
        if let Err(why) = lineup.endpoints(side).get(protocol) {
            recorder.unavailable(side, why.clone());
        }
    }
    for run in 0..runs {
        for side in Side::order(run) {
            if let (true, Ok(endpoint)) =
                (recorder.wants(side), lineup.endpoints(side).get(protocol))
            {
                let outcome = measure(side, endpoint, run);
                recorder.record(side, run, explain(lineup, side, outcome));
            }
        }
    }
    recorder.finish()
}

/// Runs `client`, the measured part of a run against `endpoint` (the client processes, from
/// their start to their exit), and returns its result with the CPU seconds the server spent
/// meanwhile, its session processes included (see [`crate::cpu`]).
pub fn with_server_cpu<T>(
    endpoint: &Endpoint,
    client: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, f64)> {
    let meter = ServerCpu::start(endpoint.server_pid)?;
    let result = client()?;
    Ok((result, meter.finish()?))
}

/// A failed Wharf measurement, with the reason when Wharf itself has stopped.
pub fn explain<T>(lineup: &Lineup, side: Side, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
    match (outcome, side) {
        (Err(err), Side::Wharf) => match lineup.wharf_diagnosis() {
            Some(diagnosis) => Err(err.context(diagnosis)),
            None => Err(err),
        },
        (outcome, _) => outcome,
    }
}

/// Megabytes per second for `bytes` in `seconds`.
pub fn megabytes_per_second(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds.max(1e-9) / 1e6
}

/// Waits (briefly) until an upload has its full size at `path`: a server may publish an
/// upload by renaming it into place just after the client saw the transfer end.
pub fn wait_for_upload(path: &Path, expected: Fingerprint) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(path).map(|m| m.len()).ok() != Some(expected.size)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    verify(path, expected)
}
