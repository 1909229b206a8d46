//! Command-line options and the sizes they select.

use std::path::PathBuf;

use clap::Parser;

/// Benchmarks Wharf against vsftpd and unFTP (FTP, FTPS), OpenSSH's sftp-server (SFTP) and
/// tftpd-hpa (TFTP) on loopback, with the same real clients, and reports Wharf/peer ratios.
#[derive(Debug, Parser)]
#[command(name = "wharf-bench", version, about)]
pub struct Options {
    /// Protocols to measure, comma-separated: ftp, ftps, sftp, tftp (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<Protocol>,
    /// Scenarios to run, comma-separated: transfer, small, parallel, memory, clients, object,
    /// cluster (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Measurements per figure; the table shows their median, min and max.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// A smoke run: small sizes, one run each.
    #[arg(long)]
    pub quick: bool,
    /// The Wharf binary (default: `wharf` beside this program, as `bench/run` builds it).
    #[arg(long)]
    pub wharf_bin: Option<PathBuf>,
    /// The unFTP binary (default: `unftp` on PATH). Without one, unFTP's cells say "not
    /// installed".
    #[arg(long)]
    pub unftp_bin: Option<PathBuf>,
    /// Wharf's example configuration, from which each protocol's section is derived.
    #[arg(long)]
    pub example_config: Option<PathBuf>,
    /// A YAML file of Wharf configuration sections that replace the derived ones (e.g. a
    /// `sftp:` section), for when the derivation guesses wrong.
    #[arg(long)]
    pub wharf_sections: Option<PathBuf>,
    /// Where the JSON results go (default: `bench/results` of the repository).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Parent of the scratch directory (default: the system temporary directory).
    #[arg(long)]
    pub scratch_parent: Option<PathBuf>,
}

/// A protocol row group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Protocol {
    /// Plain FTP.
    Ftp,
    /// FTP with explicit TLS (AUTH TLS, PROT P).
    Ftps,
    /// SFTP over SSH.
    Sftp,
    /// TFTP.
    Tftp,
}

impl Protocol {
    /// Every protocol, in table order.
    pub const ALL: [Protocol; 4] = [Protocol::Ftp, Protocol::Ftps, Protocol::Sftp, Protocol::Tftp];

    /// The name used in tables and in Wharf's banner.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ftp => "FTP",
            Protocol::Ftps => "FTPS",
            Protocol::Sftp => "SFTP",
            Protocol::Tftp => "TFTP",
        }
    }
}

/// A kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One large file down and up.
    Transfer,
    /// Many small files in one session.
    Small,
    /// Many downloads at once.
    Parallel,
    /// Memory per idle session.
    Memory,
    /// More clients: curl over one connection for many files, tftp-hpa fetching a list,
    /// 64 KiB TFTP blocks, curl's SFTP (libssh2), FTPS small files with lftp.
    Clients,
    /// The share in a bucket of SeaweedFS, FTP and SFTP next to rclone on the same bucket.
    Object,
    /// Two nodes behind HAProxy sharing their state in PostgreSQL, next to one node alone:
    /// parallel downloads and the time of one short session, FTP and SFTP.
    Cluster,
}

/// How much data each scenario moves.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sizes {
    /// The large file of FTP, FTPS and SFTP.
    pub big_file: u64,
    /// The TFTP file.
    pub tftp_file: u64,
    /// The file of the parallel downloads.
    pub parallel_file: u64,
    /// Parallel downloads at once.
    pub parallel_count: usize,
    /// Number of small files (also the files of curl's lists).
    pub small_count: usize,
    /// Small files tftp-hpa fetches in one run.
    pub tftp_list_count: usize,
    /// Size of each small file.
    pub small_size: u64,
    /// Idle FTP sessions held for the memory figure.
    pub idle_ftp_sessions: usize,
    /// Idle SFTP sessions held for the memory figure.
    pub idle_sftp_sessions: usize,
}

const MIB: u64 = 1024 * 1024;

impl Sizes {
    /// What the issue asks for.
    pub fn full() -> Sizes {
        Sizes {
            big_file: 1024 * MIB,
            tftp_file: 64 * MIB,
            parallel_file: 16 * MIB,
            parallel_count: 50,
            small_count: 1_000,
            tftp_list_count: 200,
            small_size: 4096,
            idle_ftp_sessions: 1_000,
            idle_sftp_sessions: 200,
        }
    }

    /// A smoke run that finishes in a minute or two.
    pub fn quick() -> Sizes {
        Sizes {
            big_file: 64 * MIB,
            tftp_file: 2 * MIB,
            parallel_file: 2 * MIB,
            parallel_count: 8,
            small_count: 100,
            tftp_list_count: 20,
            small_size: 4096,
            idle_ftp_sessions: 100,
            idle_sftp_sessions: 20,
        }
    }
}

impl Options {
    /// The protocols selected.
    pub fn protocols(&self) -> Vec<Protocol> {
        if self.only.is_empty() { Protocol::ALL.to_vec() } else { self.only.clone() }
    }

    /// Whether `scenario` was selected.
    pub fn runs_scenario(&self, scenario: Scenario) -> bool {
        self.scenarios.is_empty() || self.scenarios.contains(&scenario)
    }

    /// Measurements per figure.
    pub fn run_count(&self) -> usize {
        if self.quick { 1 } else { self.runs.max(1) }
    }

    /// The sizes selected.
    pub fn sizes(&self) -> Sizes {
        if self.quick { Sizes::quick() } else { Sizes::full() }
    }
}
