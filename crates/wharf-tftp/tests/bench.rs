//! Speed against tftpd-hpa, same machine, same run, same clients (ignored by default):
//!
//! ```sh
//! cargo test -p wharf-tftp --release --test bench -- --ignored --nocapture
//! ```
//!
//! Downloads a 64 MiB file over loopback from tftpd-hpa (`in.tftpd`, started on a free port)
//! and from Wharf with tftp-hpa's client at 512-byte blocks and atftp at larger blocks and
//! windows, seven times each with the servers alternating (so both see the same background
//! load), and prints the median MB/s of each, their range, and the ratio of the medians.
//! `WHARF_BENCH_CASES=atftp` runs only the cases whose name contains that text. tftpd-hpa
//! chroots into its directory, so the benchmark runs as root, with `in.tftpd` on `PATH`.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, config, run_client};
use wharf_testkit::{ChildGuard, pattern, require_tool};

const SIZE: usize = 64 << 20;
const RUNS: usize = 7;

/// A client invocation: a name for the table and how to fetch `f64` into a local file.
struct Case {
    name: &'static str,
    program: &'static str,
    args: fn(port: u16, local: &Path) -> Vec<String>,
}

fn cases() -> Vec<Case> {
    fn atftp(options: &[&str], port: u16, local: &Path) -> Vec<String> {
        let mut args = Vec::new();
        for option in options {
            args.push("--option".to_owned());
            args.push((*option).to_owned());
        }
        args.extend(
            ["-g", "-r", "f64", "-l", &local.display().to_string(), "127.0.0.1", &port.to_string()]
                .map(str::to_owned),
        );
        args
    }
    vec![
        Case {
            name: "tftp-hpa, 512-byte blocks",
            program: "tftp",
            args: |port, local| {
                [
                    "-m",
                    "binary",
                    "127.0.0.1",
                    &port.to_string(),
                    "-c",
                    "get",
                    "f64",
                    &local.display().to_string(),
                ]
                .map(str::to_owned)
                .to_vec()
            },
        },
        Case {
            name: "atftp, blksize 1468",
            program: "atftp",
            args: |port, local| atftp(&["blksize 1468"], port, local),
        },
        Case {
            name: "atftp, blksize 65464",
            program: "atftp",
            args: |port, local| atftp(&["blksize 65464"], port, local),
        },
        Case {
            name: "atftp, blksize 1468, windowsize 16",
            program: "atftp",
            args: |port, local| atftp(&["blksize 1468", "windowsize 16"], port, local),
        },
        Case {
            name: "atftp, blksize 1468, windowsize 64",
            program: "atftp",
            args: |port, local| atftp(&["blksize 1468", "windowsize 64"], port, local),
        },
    ]
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("free port").port()
}

/// MB/s of one download with `case` from the server on `port`, checked byte for byte.
async fn measure_once(case: &Case, port: u16, expected: &[u8]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("f64");
    let mut command = Command::new(case.program);
    command.args((case.args)(port, &local));
    let started = Instant::now();
    let output = run_client(command, 120).await;
    let elapsed = started.elapsed();
    assert!(output.status.success(), "{}: {output:?}", case.name);
    assert!(
        std::fs::read(&local).expect("downloaded") == expected,
        "{}: content differs",
        case.name
    );
    SIZE as f64 / 1e6 / elapsed.as_secs_f64()
}

fn median(speeds: &[f64]) -> f64 {
    let mut sorted = speeds.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// `median (min-max)`.
fn summary(speeds: &[f64]) -> String {
    let min = speeds.iter().copied().fold(f64::INFINITY, f64::min);
    let max = speeds.iter().copied().fold(0.0, f64::max);
    format!("{:.1} ({:.0}-{:.0})", median(speeds), min, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn download_speed_against_tftpd_hpa() {
    // tftpd-hpa installs `in.tftpd` in an `sbin` directory: have it on PATH.
    let (Some(_), Some(_), Some(in_tftpd)) =
        (require_tool("tftp"), require_tool("atftp"), require_tool("in.tftpd"))
    else {
        return;
    };
    let content = pattern(SIZE);
    let server = TestServer::start(
        common::USERS,
        wharf_tftp::TftpConfig { timeout: Duration::from_secs(1), ..config() },
    )
    .await;
    server.put("f64", &content);
    let hpa_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(hpa_dir.path().join("f64"), &content).expect("hpa file");
    let hpa_port = free_udp_port();
    let hpa = ChildGuard(
        Command::new(in_tftpd)
            .args(["-L", "-u", "root", "-a", &format!("127.0.0.1:{hpa_port}"), "-s"])
            .arg(hpa_dir.path())
            .spawn()
            .expect("in.tftpd"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "\n{:<36} {:>24} {:>24} {:>6}",
        "64 MiB download, MB/s", "tftpd-hpa median (range)", "wharf median (range)", "ratio"
    );
    let only = std::env::var("WHARF_BENCH_CASES").unwrap_or_default();
    for case in cases().into_iter().filter(|case| case.name.contains(only.as_str())) {
        // Alternate the servers so both see the same background load.
        let (mut theirs, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            theirs.push(measure_once(&case, hpa_port, &content).await);
            ours.push(measure_once(&case, server.addr.port(), &content).await);
        }
        println!(
            "{:<36} {:>24} {:>24} {:>5.2}x",
            case.name,
            summary(&theirs),
            summary(&ours),
            median(&ours) / median(&theirs)
        );
    }
    drop(hpa);
    server.stop().await;
}
