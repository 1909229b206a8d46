//! Scenario 2: many small files in one session, down and up: FTP with `lftp mirror`, SFTP
//! with `sftp -b` (`get -r`, `put -r`). The figure is files per second between the marks
//! around the transfer command, so the login is not in it.

use anyhow::Context as _;

use super::{Bench, measure_row, with_server_cpu};
use crate::cli::Protocol;
use crate::clients::{lftp, limit_for, marked_seconds, sftp, sftp_quote};
use crate::endpoint::{Endpoint, Side};
use crate::lineup::{DEFAULT_CIPHER, Lineup};
use crate::process::run_ok;
use crate::results::{Row, RowHead, Sample, Target, Unit};
use crate::scratch::{UPLOAD_DIR, discard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Download,
    Upload,
}

/// Copies the small-file folder once and returns files per second.
fn copy_tree(
    bench: &Bench<'_>,
    protocol: Protocol,
    direction: Direction,
    endpoint: &Endpoint,
    tag: &str,
) -> anyhow::Result<Sample> {
    let small = &bench.scratch.small;
    let count = small.files.len();
    let limit = limit_for(bench.sizes.small_size * count as u64 * 50);
    let source_dir = bench.scratch.share.join(&small.name);
    let local = bench.scratch.download_path(tag);
    let uploaded = bench.scratch.uploaded(tag);
    let label = format!("{tag} ({})", protocol.name());
    let script = bench.scratch.download_path(&format!("{tag}.script"));
    let client = || match (protocol, direction) {
        (Protocol::Ftp, direction) => {
            let (start_dir, command) = match direction {
                Direction::Download => {
                    (small.name.as_str(), format!("mirror --no-perms . {}", local.display()))
                }
                Direction::Upload => {
                    (UPLOAD_DIR, format!("mirror -R --no-perms {} {tag}", source_dir.display()))
                }
            };
            let finished =
                run_ok(&mut lftp(endpoint, start_dir, &script, &[command])?, &label, limit);
            let _ = std::fs::remove_file(&script);
            finished
        }
        (Protocol::Sftp, direction) => {
            let command = match direction {
                Direction::Download => format!("get -r {} {}", small.name, sftp_quote(&local)),
                Direction::Upload => {
                    format!("put -r {} {UPLOAD_DIR}/{tag}", sftp_quote(&source_dir))
                }
            };
            let finished =
                run_ok(&mut sftp(endpoint, DEFAULT_CIPHER, &script, &[command])?, &label, limit);
            let _ = std::fs::remove_file(&script);
            finished
        }
        _ => anyhow::bail!("no small-file client for {}", protocol.name()),
    };
    let (output, cpu) = with_server_cpu(endpoint, client)?;
    let seconds = marked_seconds(&output.stdout);
    let copy = match direction {
        Direction::Download => local,
        Direction::Upload => uploaded,
    };
    let checked = seconds.and_then(|s| {
        small.verify_copy(&copy).with_context(|| format!("copy at {}", copy.display()))?;
        Ok(s)
    });
    discard(&copy);
    Ok(Sample { value: count as f64 / checked?, server_cpu: Some(cpu) })
}

/// The rows of scenario 2 for the selected protocols among FTP and SFTP.
pub fn run(bench: &Bench<'_>, lineup: &Lineup, protocols: &[Protocol]) -> Vec<Row> {
    let count = bench.scratch.small.files.len();
    let size_kib = bench.sizes.small_size / 1024;
    let mut rows = Vec::new();
    for protocol in protocols.iter().filter(|p| matches!(p, Protocol::Ftp | Protocol::Sftp)) {
        let client = if *protocol == Protocol::Ftp { "lftp mirror" } else { "sftp -r" };
        for (direction, verb) in [(Direction::Download, "download"), (Direction::Upload, "upload")]
        {
            let id = format!("{}.small.{verb}", protocol.name().to_lowercase());
            let head = RowHead {
                id: id.clone(),
                protocol: protocol.name(),
                title: format!(
                    "{} {count} x {size_kib} KiB {verb}, one session ({client})",
                    protocol.name()
                ),
                peer_name: bench.peers.name_for(*protocol),
                unit: Unit::FilesPerSecond,
                target: Some(Target::RatioAtLeast(1.0)),
            };
            rows.push(measure_row(head, *protocol, bench.runs, lineup, |side: Side, ep, run| {
                let tag = format!("{}-{}-{run}", id.replace('.', "-"), side.name());
                copy_tree(bench, *protocol, direction, ep, &tag)
            }));
        }
    }
    rows
}
