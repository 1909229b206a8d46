//! Scenario 6: object storage. Wharf serves its whole share from a bucket of SeaweedFS
//! (started by the bench on loopback) over FTP and SFTP, and rclone moves the same files
//! straight to and from the same bucket: what the gateway costs next to going to the store
//! directly. Rows: the large file down and up (curl over FTP; OpenSSH sftp with aes128-gcm,
//! the cheapest cipher, so that the row shows storage rather than encryption), the small files
//! down and up in one session (lftp mirror, `sftp -r`), and Wharf's peak resident memory above
//! idle during the large transfers.
//!
//! rclone runs with its defaults for one file (4 parts in flight on upload, 4 ranged streams
//! on a download above 250 MiB: how users run it), and with `--transfers 1 --checkers 1` for
//! the small files, one file at a time as the FTP and SFTP clients move them. Its figures are
//! wall time of the whole process (start-up included, about 50 ms); Wharf's come from the
//! clients' own timing as in the other scenarios. CPU figures: Wharf's side is Wharf plus
//! SeaweedFS, rclone's is SeaweedFS; the log line of each run shows the split.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use super::small_files::{TreeClient, TreeCopy, tree_command};
use super::transfer::{Client, Direction, size_label, timed_transfer};
use super::{Bench, RowRecorder, megabytes_per_second, small_files_limit, with_cpu_of};
use crate::cli::Protocol;
use crate::clients::{Transfer, limit_for, marked_seconds};
use crate::dataset::{check, verify};
use crate::endpoint::{Endpoint, Side, Unavailable};
use crate::memory::{PeakWatch, reset_peak, status_kib};
use crate::object_store::ObjectStore;
use crate::process::{RunningCommand, run_ok};
use crate::results::{ComparedPeer, Row, RowHead, Sample, Target, Unit};
use crate::scratch::{UPLOAD_DIR, discard};
use crate::wharf_server::{self, WharfServer, WharfSetup};

/// The issue's target: Wharf at least 0.8 of the direct client's throughput.
const TARGET: Target = Target::RatioAtLeast(0.8);

/// The stated bound on Wharf's resident memory above idle during one large transfer, MiB.
const MEMORY_BOUND_MIB: f64 = 128.0;

/// The SSH cipher of the SFTP rows.
const SFTP_CIPHER: &str = "aes128-gcm@openssh.com";

/// What one row moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// The large file.
    BigFile,
    /// The small files, one session.
    SmallFiles,
}

/// One row before it is measured.
#[derive(Debug, Clone, Copy)]
struct Plan {
    protocol: Protocol,
    load: Load,
    direction: Direction,
}

impl Plan {
    fn id(self) -> String {
        let load = match self.load {
            Load::BigFile => "",
            Load::SmallFiles => ".small",
        };
        format!("object.{}{load}.{}", self.protocol.name().to_lowercase(), self.direction.name())
    }

    fn head(self, bench: &Bench<'_>) -> RowHead {
        let verb = self.direction.name();
        let protocol = self.protocol.name();
        let (unit, what) = match self.load {
            Load::BigFile => {
                let client = match self.protocol {
                    Protocol::Sftp => "OpenSSH sftp aes128-gcm",
                    _ => "curl",
                };
                let size = size_label(bench.scratch.big.print.size);
                (Unit::MegabytesPerSecond, format!("{size}, {client}; rclone copyto"))
            }
            Load::SmallFiles => {
                let count = bench.scratch.small.files.len();
                let kib = bench.sizes.small_size / 1024;
                let client = match self.protocol {
                    Protocol::Sftp => "sftp -r",
                    _ => "lftp mirror",
                };
                let what = format!("{count} x {kib} KiB, {client}; rclone copy --transfers 1");
                (Unit::FilesPerSecond, what)
            }
        };
        RowHead {
            id: self.id(),
            protocol: "S3",
            title: format!("{protocol} on SeaweedFS {verb} ({what})"),
            unit,
            target: Some(TARGET),
        }
    }
}

/// The rows of the selected protocols among FTP and SFTP.
fn plans(protocols: &[Protocol]) -> Vec<Plan> {
    let mut plans = Vec::new();
    for protocol in [Protocol::Ftp, Protocol::Sftp] {
        if !protocols.contains(&protocol) {
            continue;
        }
        for load in [Load::BigFile, Load::SmallFiles] {
            for direction in [Direction::Download, Direction::Upload] {
                plans.push(Plan { protocol, load, direction });
            }
        }
    }
    plans
}

fn memory_head() -> RowHead {
    RowHead {
        id: "object.memory".to_owned(),
        protocol: "S3",
        title: "Peak resident memory during the large transfers (Wharf: above idle; rclone: \
                whole process)"
            .to_owned(),
        unit: Unit::Mebibytes,
        target: Some(Target::WharfAtMost(MEMORY_BOUND_MIB)),
    }
}

/// Everything the rows run against.
struct Stage<'a> {
    bench: &'a Bench<'a>,
    store: ObjectStore,
    _wharf: Option<WharfServer>,
    endpoints: crate::endpoint::Endpoints,
    store_pid: u32,
    /// Wharf's resident memory before the first transfer, KiB.
    wharf_idle_kib: u64,
    /// The highest memory figure of each side in each run, MiB (for the memory row).
    peaks: BTreeMap<(usize, usize), f64>,
}

/// All rows of scenario 6 for `protocols` (FTP and SFTP only).
pub fn run(bench: &Bench<'_>, setup: &WharfSetup, protocols: &[Protocol]) -> Vec<Row> {
    let plans = plans(protocols);
    if plans.is_empty() {
        return Vec::new();
    }
    let mut stage = match Stage::set_up(bench, setup, protocols) {
        Ok(stage) => stage,
        Err(why) => return unavailable_rows(bench, &plans, &why),
    };
    let peer = ComparedPeer { side: Side::Peer, name: stage.store.rclone_version() };
    let mut rows = Vec::new();
    for plan in &plans {
        let mut recorder = RowRecorder::new(plan.head(bench), vec![peer.clone()], bench.runs);
        if let Err(why) = stage.endpoints.get(plan.protocol) {
            recorder.unavailable(Side::Wharf, why.clone());
        }
        recorder.measure_runs(|side, run| stage.measure(*plan, side, run));
        rows.extend(recorder.finish());
    }
    let mut memory = RowRecorder::new(memory_head(), vec![peer], bench.runs);
    for ((run, side), mib) in &stage.peaks {
        let side = if *side == Side::Wharf as usize { Side::Wharf } else { Side::Peer };
        memory.record(side, *run, Ok(Sample { value: *mib, server_cpu: None }));
    }
    rows.extend(memory.finish());
    rows
}

/// Every row, both sides unavailable for `why`.
fn unavailable_rows(bench: &Bench<'_>, plans: &[Plan], why: &Unavailable) -> Vec<Row> {
    let peer = ComparedPeer { side: Side::Peer, name: "rclone".to_owned() };
    let heads = plans.iter().map(|plan| plan.head(bench)).chain([memory_head()]);
    heads
        .flat_map(|head| {
            let mut recorder = RowRecorder::new(head, vec![peer.clone()], bench.runs);
            recorder.unavailable(Side::Peer, why.clone());
            recorder.unavailable(Side::Wharf, why.clone());
            recorder.finish()
        })
        .collect()
}

impl<'a> Stage<'a> {
    /// Starts the store, fills the bucket with the data set (the large file and the small
    /// files, under the names the other scenarios use) and starts Wharf on it.
    fn set_up(
        bench: &'a Bench<'a>,
        setup: &WharfSetup,
        protocols: &[Protocol],
    ) -> Result<Stage<'a>, Unavailable> {
        let broken = |err: anyhow::Error| Unavailable::Broken(format!("{err:#}"));
        let dir = bench.scratch.server_dir("object").map_err(broken)?;
        let store = ObjectStore::start(&dir)?;
        let scratch = bench.scratch;
        eprintln!("  filling the bucket with the data set");
        store.seed_file(&scratch.big.path, &scratch.big.name).map_err(broken)?;
        store
            .seed_folder(&scratch.share.join(&scratch.small.name), &scratch.small.name)
            .map_err(broken)?;
        store.make_folder(UPLOAD_DIR).map_err(broken)?;
        let wharf_dir = dir.join("wharf");
        let local_root = dir.join("local-root");
        std::fs::create_dir_all(&local_root).map_err(|e| broken(e.into()))?;
        let storage = store
            .wharf_storage(&wharf_server::data_dir(&wharf_dir), &local_root)
            .map_err(broken)?;
        let served: Vec<Protocol> = protocols
            .iter()
            .copied()
            .filter(|p| matches!(p, Protocol::Ftp | Protocol::Sftp))
            .collect();
        let (wharf, endpoints) = wharf_server::start_with_storage(
            setup,
            &wharf_dir,
            &local_root,
            bench.credentials,
            &served,
            Some(storage),
        )
        .map_err(broken)?;
        let wharf_pid = wharf
            .as_ref()
            .map(|w| w.pid())
            .ok_or_else(|| Unavailable::Broken("wharf did not start on the bucket".to_owned()))?;
        let store_pid = store.pid().map_err(broken)?;
        let wharf_idle_kib = status_kib(wharf_pid, "VmRSS").unwrap_or(0);
        Ok(Stage {
            bench,
            store,
            _wharf: wharf,
            endpoints,
            store_pid,
            wharf_idle_kib,
            peaks: BTreeMap::new(),
        })
    }

    /// One run of `plan` on `side`.
    fn measure(&mut self, plan: Plan, side: Side, run: usize) -> anyhow::Result<Sample> {
        let tag = format!("{}-{}-{run}", plan.id().replace('.', "-"), side.name());
        match (side, plan.load) {
            (Side::Wharf, Load::BigFile) => self.wharf_big(plan, &tag, run),
            (Side::Wharf, Load::SmallFiles) => self.wharf_small(plan, &tag),
            (_, Load::BigFile) => self.rclone_big(plan, &tag, run),
            (_, Load::SmallFiles) => self.rclone_small(plan, &tag),
        }
    }

    fn endpoint(&self, protocol: Protocol) -> anyhow::Result<&Endpoint> {
        self.endpoints.get(protocol).as_ref().map_err(|why| anyhow::anyhow!("{why}"))
    }

    /// Keeps the highest memory figure of `side` in `run`.
    fn note_peak(&mut self, run: usize, side: Side, kib: u64) {
        let mib = kib as f64 / 1024.0;
        let slot = self.peaks.entry((run, side as usize)).or_insert(0.0);
        *slot = slot.max(mib);
    }

    /// Logs where the CPU went and makes the sample.
    fn sample(&self, label: &str, value: f64, wharf_cpu: Option<f64>, store_cpu: f64) -> Sample {
        let wharf = wharf_cpu.map(|s| format!("wharf {s:.2} s, ")).unwrap_or_default();
        eprintln!("    {label}: CPU {wharf}SeaweedFS {store_cpu:.2} s");
        Sample { value, server_cpu: Some(wharf_cpu.unwrap_or(0.0) + store_cpu) }
    }

    fn wharf_big(&mut self, plan: Plan, tag: &str, run: usize) -> anyhow::Result<Sample> {
        let endpoint = self.endpoint(plan.protocol)?.clone();
        let scratch = self.bench.scratch;
        let source = &scratch.big;
        let bytes = source.print.size;
        let client = match plan.protocol {
            Protocol::Sftp => Client::Sftp { cipher: SFTP_CIPHER },
            _ => Client::Curl { options: &[] },
        };
        let batch = scratch.download_path(&format!("{tag}.batch"));
        let label = format!("{} (wharf)", plan.id());
        let (transfer, local, key) = match plan.direction {
            Direction::Download => {
                let local = scratch.download_path(tag);
                let transfer = Transfer::Get { remote: source.name.clone(), local: local.clone() };
                (transfer, Some(local), None)
            }
            Direction::Upload => {
                let key = format!("{UPLOAD_DIR}/{tag}.bin");
                let transfer = Transfer::Put { local: source.path.clone(), remote: key.clone() };
                (transfer, None, Some(key))
            }
        };
        scratch.touch_free_memory(bytes)?;
        reset_peak(endpoint.server_pid)?;
        let timed = with_cpu_of([endpoint.server_pid, self.store_pid], || {
            timed_transfer(client, plan.protocol, &endpoint, &transfer, bytes, &label, &batch)
        });
        let peak = status_kib(endpoint.server_pid, "VmHWM").unwrap_or(0);
        self.note_peak(run, Side::Wharf, peak.saturating_sub(self.wharf_idle_kib));
        let checked = timed.and_then(|((seconds, streamed), cpu)| {
            match (&local, &key, streamed) {
                (_, _, Some(print)) => check(&plan.id(), print, source.print)?,
                (Some(local), _, None) => verify(local, source.print)?,
                (None, Some(key), None) => self.store.verify_object(key, source.print)?,
                (None, None, None) => {}
            }
            Ok((seconds, cpu))
        });
        if let Some(local) = &local {
            discard(local);
        }
        if let Some(key) = &key {
            self.store.remove(key, false)?;
        }
        let (seconds, [wharf_cpu, store_cpu]) = checked?;
        let value = megabytes_per_second(bytes, seconds);
        Ok(self.sample(&label, value, Some(wharf_cpu), store_cpu))
    }

    fn rclone_big(&mut self, plan: Plan, tag: &str, run: usize) -> anyhow::Result<Sample> {
        let scratch = self.bench.scratch;
        let source = &scratch.big;
        let bytes = source.print.size;
        let label = format!("{} (rclone)", plan.id());
        let local = scratch.download_path(tag);
        let key = format!("{UPLOAD_DIR}/{tag}.bin");
        let (from, to) = match plan.direction {
            Direction::Download => (self.store.remote(&source.name), path_text(&local)?),
            Direction::Upload => (path_text(&source.path)?, self.store.remote(&key)),
        };
        scratch.touch_free_memory(bytes)?;
        let mut command = self.store.rclone(&["copyto", &from, &to]);
        let timed =
            with_cpu_of([self.store_pid], || run_watched(&mut command, &label, limit_for(bytes)));
        let checked = timed.and_then(|((seconds, peak), cpu)| {
            self.note_peak(run, Side::Peer, peak);
            match plan.direction {
                Direction::Download => verify(&local, source.print)?,
                Direction::Upload => self.store.verify_object(&key, source.print)?,
            }
            Ok((seconds, cpu))
        });
        match plan.direction {
            Direction::Download => discard(&local),
            Direction::Upload => self.store.remove(&key, false)?,
        }
        let (seconds, [store_cpu]) = checked?;
        Ok(self.sample(&label, megabytes_per_second(bytes, seconds), None, store_cpu))
    }

    fn wharf_small(&mut self, plan: Plan, tag: &str) -> anyhow::Result<Sample> {
        let endpoint = self.endpoint(plan.protocol)?.clone();
        let scratch = self.bench.scratch;
        let small = &scratch.small;
        let count = small.files.len();
        let copy = scratch.download_path(tag);
        let label = format!("{} (wharf)", plan.id());
        let tree = TreeCopy {
            client: TreeClient::Session,
            protocol: plan.protocol,
            direction: plan.direction,
        };
        let (mut command, script) = tree_command(self.bench, tree, &endpoint, tag, &copy)?;
        let limit = small_files_limit(self.bench, count);
        let timed = with_cpu_of([endpoint.server_pid, self.store_pid], || {
            run_ok(&mut command, &label, limit)
        });
        let _ = std::fs::remove_file(script);
        let outcome = timed.and_then(|(done, cpu)| Ok((marked_seconds(&done.stdout)?, cpu)));
        let copied = self.check_tree_copy(plan.direction, &copy, &format!("{UPLOAD_DIR}/{tag}"));
        let (seconds, [wharf_cpu, store_cpu]) = outcome?;
        copied?;
        Ok(self.sample(&label, count as f64 / seconds, Some(wharf_cpu), store_cpu))
    }

    fn rclone_small(&mut self, plan: Plan, tag: &str) -> anyhow::Result<Sample> {
        let scratch = self.bench.scratch;
        let small = &scratch.small;
        let count = small.files.len();
        let copy = scratch.download_path(tag);
        let label = format!("{} (rclone)", plan.id());
        let uploaded = format!("{UPLOAD_DIR}/{tag}");
        let (from, to) = match plan.direction {
            Direction::Download => (self.store.remote(&small.name), path_text(&copy)?),
            Direction::Upload => {
                (path_text(&scratch.share.join(&small.name))?, self.store.remote(&uploaded))
            }
        };
        let args = ["copy", "--transfers", "1", "--checkers", "1", &from, &to];
        let mut command = self.store.rclone(&args);
        let limit = small_files_limit(self.bench, count);
        let timed = with_cpu_of([self.store_pid], || run_watched(&mut command, &label, limit));
        let copied = self.check_tree_copy(plan.direction, &copy, &uploaded);
        let ((seconds, _), [store_cpu]) = timed?;
        copied?;
        Ok(self.sample(&label, count as f64 / seconds, None, store_cpu))
    }

    /// Checks the copy a small-file run made (the local folder `copy`, or the objects under
    /// `uploaded`), then removes it whatever the check found.
    fn check_tree_copy(
        &self,
        direction: Direction,
        copy: &Path,
        uploaded: &str,
    ) -> anyhow::Result<()> {
        let small = &self.bench.scratch.small;
        let checked = match direction {
            Direction::Download => small.verify_copy(copy),
            Direction::Upload => self.store.verify_folder(uploaded, small, copy),
        };
        discard(copy);
        let removed = match direction {
            Direction::Download => Ok(()),
            Direction::Upload => self.store.remove(uploaded, true),
        };
        checked.and(removed)
    }
}

/// Runs `command` to a successful end within `limit`; returns its wall time in seconds and
/// its peak resident memory, KiB.
fn run_watched(
    command: &mut std::process::Command,
    label: &str,
    limit: std::time::Duration,
) -> anyhow::Result<(f64, u64)> {
    let running = RunningCommand::start(command, label)?;
    let watch = PeakWatch::start(running.pid());
    let finished = running.finish(limit);
    let peak = watch.finish();
    let done = finished?.ok(label)?;
    Ok((done.elapsed.as_secs_f64(), peak))
}

fn path_text(path: &Path) -> anyhow::Result<String> {
    path.to_str().map(str::to_owned).context("a scratch path is not UTF-8")
}
