//! `wharf-bench`: Wharf against vsftpd, unFTP, OpenSSH's sftp-server and tftpd-hpa on
//! loopback, with the same real clients, in the same run. See docs/BENCHMARKS.md.

mod cli;
mod clients;
mod cpu;
mod credentials;
mod dataset;
mod endpoint;
mod gate;
mod interrupt;
mod lineup;
mod machine;
mod memory;
mod net;
mod object_store;
mod peers;
mod prereq;
mod process;
mod report;
mod results;
mod scenarios;
mod scratch;
mod stats;
mod wharf_config;
mod wharf_server;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use crate::cli::{Options, Scenario};
use crate::credentials::Credentials;
use crate::lineup::Lineup;
use crate::machine::Machine;
use crate::peers::unftp::Unftp;
use crate::scenarios::Bench;
use crate::scratch::Scratch;
use crate::wharf_server::WharfSetup;

/// The repository this bench was built from (for the example configuration and results).
fn repository() -> &'static Path {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench)
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wharf-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The Wharf binary: given, or beside this program (both are built into the same target).
fn wharf_binary(options: &Options) -> anyhow::Result<PathBuf> {
    let path = match &options.wharf_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("wharf"),
    };
    anyhow::ensure!(
        path.is_file(),
        "no wharf binary at {} (build it with `cargo build --release -p wharf`, or pass --wharf-bin)",
        path.display()
    );
    Ok(path)
}

fn wharf_setup(options: &Options) -> anyhow::Result<WharfSetup> {
    let example_path = options
        .example_config
        .clone()
        .unwrap_or_else(|| repository().join("config/wharf.example.yaml"));
    let example = match wharf_config::load_mapping(&example_path) {
        Ok(mapping) => Some(mapping),
        Err(err) => {
            eprintln!("note: no example configuration ({err:#}); protocol sections start empty");
            None
        }
    };
    let replacements = match &options.wharf_sections {
        Some(path) => wharf_config::load_mapping(path)
            .with_context(|| format!("reading --wharf-sections {}", path.display()))?,
        None => serde_yaml::Mapping::new(),
    };
    Ok(WharfSetup { binary: wharf_binary(options)?, example, replacements })
}

/// Raises the open-file limit for the servers the bench starts, which inherit it: the
/// idle-session scenario holds a thousand connections, and Wharf budgets open files for its
/// sessions at their worst case (an SFTP session about 2,000; docs/SECURITY.md), so a
/// limit of a few thousand would refuse most of the SFTP sessions the scenarios open. Root
/// raises the hard limit too, to the kernel's ceiling (`fs.nr_open`); anyone else gets the
/// soft limit raised to the hard one.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|_| rustix::process::geteuid().is_root());
    let mut targets = Vec::new();
    if let (Some(ceiling), Some(hard)) = (ceiling, limit.maximum)
        && ceiling > hard
    {
        targets.push(Some(ceiling));
    }
    targets.push(limit.maximum);
    // A root without the capability to raise the hard limit (a container) keeps it.
    let raised = targets.into_iter().any(|target| {
        setrlimit(Resource::Nofile, Rlimit { current: target, maximum: target }).is_ok()
    });
    if !raised {
        eprintln!("note: could not raise the open-file limit");
    }
}

fn run(options: &Options) -> anyhow::Result<()> {
    let protocols = options.protocols();
    prereq::check(&protocols)?;
    interrupt::install()?;
    raise_open_file_limit();
    let setup = wharf_setup(options)?;
    let unftp = Unftp::find(options.unftp_bin.as_deref())?;
    let (stamp, started) = report::now_stamps();
    let machine = Machine::describe(unftp.binary().ok());
    let peers = machine.peer_versions();
    let sizes = options.sizes();
    let runs = options.run_count();

    let scratch = Scratch::create(options.scratch_parent.as_deref(), &sizes)?;
    let credentials = Credentials::create(&scratch.server_dir("credentials")?)?;
    let bench = Bench {
        scratch: &scratch,
        credentials: &credentials,
        sizes: &sizes,
        runs,
        peers: &peers,
        unftp: &unftp,
    };

    let mut rows = Vec::new();
    let mut wharf_listeners = Vec::new();
    let throughput = [Scenario::Transfer, Scenario::Small, Scenario::Parallel, Scenario::Clients];
    if throughput.iter().any(|s| options.runs_scenario(*s)) {
        eprintln!("starting the servers");
        let lineup = Lineup::start(&scratch, &credentials, &setup, &unftp, &protocols, "main")?;
        wharf_listeners = lineup.wharf_listeners();
        if options.runs_scenario(Scenario::Transfer) {
            eprintln!("scenario 1: one large file down and up");
            rows.extend(scenarios::transfer::run(&bench, &lineup, &protocols));
        }
        if options.runs_scenario(Scenario::Small) {
            eprintln!("scenario 2: many small files in one session");
            rows.extend(scenarios::small_files::run(&bench, &lineup, &protocols));
        }
        if options.runs_scenario(Scenario::Parallel) {
            eprintln!("scenario 3: parallel downloads");
            rows.extend(scenarios::parallel::run(&bench, &lineup, &protocols));
        }
        if options.runs_scenario(Scenario::Clients) {
            eprintln!(
                "scenario 5: more clients (curl lists, tftp-hpa lists, 64 KiB TFTP blocks, curl SFTP, FTPS lftp)"
            );
            rows.extend(scenarios::clients::run(&bench, &lineup, &protocols));
        }
    }
    if options.runs_scenario(Scenario::Memory) {
        eprintln!("scenario 4: memory per idle session (fresh servers each run)");
        rows.extend(scenarios::idle::run(&bench, &setup, &protocols));
    }
    if options.runs_scenario(Scenario::Object) {
        eprintln!("scenario 6: object storage (the share in a SeaweedFS bucket; rclone direct)");
        rows.extend(scenarios::object::run(&bench, &setup, &protocols));
    }
    if options.runs_scenario(Scenario::Cluster) {
        eprintln!("scenario 7: a cluster (two nodes, HAProxy, PostgreSQL) next to one node");
        rows.extend(scenarios::cluster::run(&bench, &setup, &protocols));
    }

    println!("{}", report::table(&rows));
    println!("{}", report::KeyTypes::BENCH.line());
    let notes = report::notes(&rows);
    if !notes.is_empty() {
        println!("{notes}");
    }
    let results_dir =
        options.results_dir.clone().unwrap_or_else(|| repository().join("bench/results"));
    let record = report::RunRecord {
        started,
        command: std::env::args().collect(),
        runs,
        sizes: &sizes,
        machine: &machine,
        wharf_listeners,
        keys: report::KeyTypes::BENCH,
        rows: &rows,
    };
    let path = report::write_json(&results_dir, &stamp, &record)?;
    println!("results: {}", path.display());
    Ok(())
}
