//! The scenarios, and how one figure is measured on Wharf and its peers.

pub mod clients;
pub mod cluster;
pub mod gated;
pub mod idle;
pub mod object;
pub mod parallel;
pub mod small_files;
pub mod transfer;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::{Protocol, Sizes};
use crate::clients::limit_for;
use crate::cpu::ServerCpu;
use crate::credentials::Credentials;
use crate::dataset::{Fingerprint, verify};
use crate::endpoint::{Endpoint, Side, Unavailable};
use crate::lineup::Lineup;
use crate::machine::PeerVersions;
use crate::peers::unftp::Unftp;
use crate::results::{ComparedPeer, Figure, Row, RowHead, Sample};
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
    /// Where unFTP is, for scenarios that start their own servers.
    pub unftp: &'a Unftp,
}

/// Collects one measurement's runs on Wharf and on each peer of its protocol.
pub struct RowRecorder {
    head: RowHead,
    peers: Vec<ComparedPeer>,
    runs: usize,
    samples: [Vec<Sample>; 3],
    failures: [Option<String>; 3],
    unavailable: [Option<Unavailable>; 3],
    per_run: Vec<[Option<f64>; 3]>,
}

impl RowRecorder {
    /// A measurement of `runs` runs per side, compared with `peers`.
    pub fn new(head: RowHead, peers: Vec<ComparedPeer>, runs: usize) -> RowRecorder {
        RowRecorder {
            head,
            peers,
            runs,
            samples: [Vec::new(), Vec::new(), Vec::new()],
            failures: [None, None, None],
            unavailable: [None, None, None],
            per_run: vec![[None; 3]; runs],
        }
    }

    /// The sides this measurement runs on: its peers and Wharf.
    pub fn sides(&self) -> impl Iterator<Item = Side> + '_ {
        self.peers.iter().map(|peer| peer.side).chain([Side::Wharf])
    }

    /// The sides of run `run`, in that run's order (see [`Side::order`]).
    pub fn order(&self, run: usize) -> Vec<Side> {
        Side::order(run).into_iter().filter(|side| self.sides().any(|s| s == *side)).collect()
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
                if let Some(values) = self.per_run.get_mut(run) {
                    values[index] = Some(sample.value);
                }
            }
            Err(err) => {
                eprintln!("  {title:<58} {:<5} FAILED: {err:#}", side.name());
                self.failures[index].get_or_insert(format!("{err:#}"));
            }
        }
    }

    /// Measures every run on every side still wanted, in each run's order.
    pub fn measure_runs(&mut self, mut measure: impl FnMut(Side, usize) -> anyhow::Result<Sample>) {
        for run in 0..self.runs {
            for side in self.order(run) {
                if self.wants(side) {
                    let outcome = measure(side, run);
                    self.record(side, run, outcome);
                }
            }
        }
    }

    /// The figure of `side` from what was recorded.
    fn figure(&self, side: Side) -> Figure {
        let index = side as usize;
        match &self.unavailable[index] {
            Some(why) => Figure::Unavailable { why: why.clone() },
            None => Figure::from_runs(self.samples[index].clone(), self.failures[index].clone()),
        }
    }

    /// The finished rows: Wharf against each peer, Wharf's runs shared by all of them.
    pub fn finish(self) -> Vec<Row> {
        let wharf = self.figure(Side::Wharf);
        self.peers
            .iter()
            .map(|peer| {
                let run_ratios = self
                    .per_run
                    .iter()
                    .filter_map(|values| {
                        match (values[peer.side as usize], values[Side::Wharf as usize]) {
                            (Some(theirs), Some(ours)) if theirs > 0.0 => Some(ours / theirs),
                            _ => None,
                        }
                    })
                    .collect();
                Row::new(&self.head, peer, self.figure(peer.side), wharf.clone(), run_ratios)
            })
            .collect()
    }
}

/// Measures one figure on one lineup: `runs` times on Wharf and on each peer of `protocol`
/// (see [`Side::peers_of`]), in each run's order, and returns one row per peer. A side
/// whose protocol is unavailable is reported so; a side whose run fails (an error, or bytes
/// that do not verify) is reported failed and measured no further.
pub fn measure_row(
    bench: &Bench<'_>,
    head: RowHead,
    protocol: Protocol,
    lineup: &Lineup,
    mut measure: impl FnMut(Side, &Endpoint, usize) -> anyhow::Result<Sample>,
) -> Vec<Row> {
    let mut recorder = RowRecorder::new(head, bench.peers.compared(protocol), bench.runs);
    let sides: Vec<Side> = recorder.sides().collect();
    for side in sides {
        if let Err(why) = lineup.endpoints(side).get(protocol) {
            recorder.unavailable(side, why.clone());
        }
    }
    // A side whose endpoint is unavailable was marked so above, and is not wanted.
    recorder.measure_runs(|side, run| {
        let endpoint = lineup
            .endpoints(side)
            .get(protocol)
            .as_ref()
            .map_err(|why| anyhow::anyhow!("{why}"))?;
        explain(lineup, side, measure(side, endpoint, run))
    });
    recorder.finish()
}

/// Runs `client`, the measured part of a run against `endpoint` (the client processes, from
/// their start to their exit), and returns its result with the CPU seconds the server spent
/// meanwhile, its session processes included (see [`crate::cpu`]).
pub fn with_server_cpu<T>(
    endpoint: &Endpoint,
    client: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, f64)> {
    let (result, [seconds]) = with_cpu_of([endpoint.server_pid], client)?;
    Ok((result, seconds))
}

/// Runs `client` and returns its result with the CPU seconds each process tree of `roots`
/// spent meanwhile (see [`crate::cpu`]), in the order given.
pub fn with_cpu_of<T, const N: usize>(
    roots: [u32; N],
    client: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, [f64; N])> {
    let (result, each) = with_cpu_of_each(&roots, client)?;
    let mut seconds = [0.0; N];
    for (slot, value) in seconds.iter_mut().zip(each) {
        *slot = value;
    }
    Ok((result, seconds))
}

/// [`with_cpu_of`] for a number of roots known at run time: the CPU seconds of each, in the
/// order given.
pub fn with_cpu_of_each<T>(
    roots: &[u32],
    client: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Vec<f64>)> {
    let mut started = Vec::with_capacity(roots.len());
    for root in roots {
        started.push(ServerCpu::start(*root)?);
    }
    let result = client()?;
    let mut seconds = Vec::with_capacity(started.len());
    for meter in started {
        seconds.push(meter.finish()?);
    }
    Ok((result, seconds))
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

/// The time limit for moving `count` of the small files: a small file costs round trips
/// rather than bytes, so each is allowed fifty times its size (see [`limit_for`]).
pub fn small_files_limit(bench: &Bench<'_>, count: usize) -> Duration {
    limit_for(bench.sizes.small_size * count as u64 * 50)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Unit;

    fn recorder(peers: Vec<ComparedPeer>, runs: usize) -> RowRecorder {
        let head = RowHead {
            id: "ftp.download".into(),
            protocol: "FTP",
            title: "FTP download".into(),
            unit: Unit::MegabytesPerSecond,
            target: None,
        };
        RowRecorder::new(head, peers, runs)
    }

    fn peer(side: Side, name: &str) -> ComparedPeer {
        ComparedPeer { side, name: name.into() }
    }

    fn sample(value: f64) -> anyhow::Result<Sample> {
        Ok(Sample { value, server_cpu: Some(1.0) })
    }

    #[test]
    fn one_row_per_peer_each_against_the_same_wharf_runs() {
        let mut recorder =
            recorder(vec![peer(Side::Peer, "vsftpd 3.0.3"), peer(Side::Unftp, "unFTP 0.16.0")], 2);
        for (run, [vsftpd, unftp, wharf]) in
            [[100.0, 50.0, 200.0], [80.0, 40.0, 240.0]].iter().enumerate()
        {
            recorder.record(Side::Peer, run, sample(*vsftpd));
            recorder.record(Side::Unftp, run, sample(*unftp));
            recorder.record(Side::Wharf, run, sample(*wharf));
        }
        let rows = recorder.finish();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].id.as_str(), rows[1].id.as_str()),
            ("ftp.download", "ftp.download.unftp")
        );
        assert_eq!((rows[0].peer_side, rows[1].peer_side), (Side::Peer, Side::Unftp));
        assert_eq!(rows[1].peer_name, "unFTP 0.16.0");
        assert_eq!(rows[0].run_ratios, [2.0, 3.0]);
        assert_eq!(rows[1].run_ratios, [4.0, 6.0]);
        let wharf = |row: &Row| row.wharf.summary().map(|s| s.median);
        assert_eq!(wharf(&rows[0]), wharf(&rows[1]));
    }

    #[test]
    fn a_peer_not_installed_leaves_the_other_rows_measured() {
        let mut recorder =
            recorder(vec![peer(Side::Peer, "vsftpd 3.0.3"), peer(Side::Unftp, "unFTP")], 1);
        recorder.unavailable(Side::Unftp, Unavailable::NotInstalled("cargo install".into()));
        assert!(!recorder.wants(Side::Unftp) && recorder.wants(Side::Wharf));
        recorder.record(Side::Peer, 0, sample(100.0));
        recorder.record(Side::Wharf, 0, sample(150.0));
        let rows = recorder.finish();
        assert_eq!(rows[0].ratio, Some(1.5));
        assert!(matches!(rows[1].peer, Figure::Unavailable { why: Unavailable::NotInstalled(_) }));
        assert_eq!((rows[1].ratio, rows[1].wharf.summary().map(|s| s.median)), (None, Some(150.0)));
    }

    #[test]
    fn a_protocol_without_unftp_runs_only_its_peer_and_wharf() {
        let recorder = recorder(vec![peer(Side::Peer, "OpenSSH 9.2p1 sftp-server")], 2);
        assert_eq!(recorder.order(0), [Side::Peer, Side::Wharf]);
        assert_eq!(recorder.order(1), [Side::Wharf, Side::Peer]);
        assert_eq!(recorder.finish().len(), 1);
    }
}
