//! The machine a run was measured on, and the versions of the peers and clients.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cli::Protocol;
use crate::endpoint::Side;
use crate::process::run;
use crate::results::ComparedPeer;

/// Debian packages whose versions are recorded with the results.
const RECORDED_PACKAGES: [&str; 9] = [
    "vsftpd",
    "openssh-server",
    "tftpd-hpa",
    "curl",
    "lftp",
    "openssh-client",
    "tftp-hpa",
    "atftp",
    "openssl",
];

/// Facts about the machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub cpus: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// Operating system.
    pub os: String,
    /// Load averages (1, 5, 15 min) when the run started: other work on the machine.
    pub load_at_start: String,
    /// Installed versions of the peers and clients.
    pub packages: Vec<(String, String)>,
    /// unFTP's version (`unftp --version`), or `not installed`.
    pub unftp: String,
    /// The open-file limit the servers run under (`None`: unlimited). Wharf budgets each
    /// session's worst case against it, so a low limit refuses sessions (docs/SECURITY.md).
    pub open_file_limit: Option<u64>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn package_version(package: &str) -> String {
    let mut command = Command::new("dpkg-query");
    command.args(["-W", "-f", "${Version}", package]);
    match run(&mut command, "dpkg-query", Duration::from_secs(10)) {
        Ok(done) if done.status.success() => done.stdout.trim().to_owned(),
        _ => "not installed".to_owned(),
    }
}

impl Machine {
    /// Reads the facts from /proc, /etc/os-release and dpkg, and asks `unftp` (when found)
    /// for its version.
    pub fn describe(unftp: Option<&Path>) -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok())
            .map_or(0, |kib: u64| kib / 1024);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_mib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os,
            load_at_start: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            packages: RECORDED_PACKAGES
                .iter()
                .map(|p| ((*p).to_owned(), package_version(p)))
                .collect(),
            unftp: unftp
                .and_then(crate::peers::unftp::version)
                .unwrap_or_else(|| "not installed".to_owned()),
            open_file_limit: rustix::process::getrlimit(rustix::process::Resource::Nofile).current,
        }
    }

    /// The peers' names with their versions.
    pub fn peer_versions(&self) -> PeerVersions {
        let version = |package: &str| {
            let full = self
                .packages
                .iter()
                .find(|(name, _)| name == package)
                .map_or("", |(_, version)| version.as_str());
            // "1:9.2p1-2+deb12u10" -> "9.2p1": drop the epoch and the Debian revision.
            let upstream = full.split_once(':').map_or(full, |(_, rest)| rest);
            upstream.split(['-', '+']).next().unwrap_or(upstream).to_owned()
        };
        PeerVersions {
            vsftpd: format!("vsftpd {}", version("vsftpd")),
            openssh: format!("OpenSSH {} sftp-server", version("openssh-server")),
            tftpd: format!("tftpd-hpa {}", version("tftpd-hpa")),
            unftp: format!("unFTP {}", self.unftp),
        }
    }
}

/// Display names of the peers.
#[derive(Debug, Clone)]
pub struct PeerVersions {
    vsftpd: String,
    openssh: String,
    tftpd: String,
    unftp: String,
}

impl PeerVersions {
    /// The peers Wharf is compared with on `protocol`, with their names.
    pub fn compared(&self, protocol: Protocol) -> Vec<ComparedPeer> {
        Side::peers_of(protocol)
            .iter()
            .map(|side| ComparedPeer { side: *side, name: self.name(*side, protocol) })
            .collect()
    }

    fn name(&self, side: Side, protocol: Protocol) -> String {
        match (side, protocol) {
            (Side::Wharf, _) => "Wharf".to_owned(),
            (Side::Unftp, _) => self.unftp.clone(),
            (Side::Peer, Protocol::Ftp | Protocol::Ftps) => self.vsftpd.clone(),
            (Side::Peer, Protocol::Sftp) => self.openssh.clone(),
            (Side::Peer, Protocol::Tftp) => self.tftpd.clone(),
        }
    }
}
