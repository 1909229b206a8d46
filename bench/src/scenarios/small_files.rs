//! Scenario 2: many small files in one session, down and up: FTP with `lftp mirror`, SFTP
//! with `sftp -b` (`get -r`, `put -r`). The figure is files per second between the marks
//! around the transfer command, so the login is not in it. The clients scenario moves the
//! same files with `lftp mirror` over FTPS, and with one curl process per direction on
//! every protocol (see [`TreeClient`]).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::transfer::Direction;
use super::{Bench, measure_row, small_files_limit, with_server_cpu};
use crate::cli::Protocol;
use crate::clients::{
    curl, curl_download_list, curl_list_seconds, curl_upload_glob, curl_url, lftp, marked_seconds,
    run_curl, sftp, sftp_quote,
};
use crate::endpoint::{Endpoint, Side};
use crate::lineup::{DEFAULT_CIPHER, Lineup};
use crate::process::run_ok;
use crate::results::{Row, RowHead, Sample, Target, Unit};
use crate::scratch::{UPLOAD_DIR, discard};

/// How the small files are moved in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TreeClient {
    /// The protocol's session client copying the folder: `lftp mirror` (FTP, FTPS), `sftp -b`
    /// with `get -r`/`put -r` (SFTP); timed between marks in its script.
    Session,
    /// One curl process: downloads listed in a `-K` file, uploads as `-T "dir/{a,b,...}"`,
    /// over one connection where the protocol has one; timed from curl's own timing lines
    /// (see [`curl_list_seconds`]).
    CurlList,
}

/// One way of copying the folder: which client, over which protocol, which way.
#[derive(Debug, Clone, Copy)]
pub(super) struct TreeCopy {
    pub(super) client: TreeClient,
    pub(super) protocol: Protocol,
    pub(super) direction: Direction,
}

/// The command moving the folder to or from `copy`, and the path of a script or list file
/// it reads (removed after the run).
pub(super) fn tree_command(
    bench: &Bench<'_>,
    plan: TreeCopy,
    endpoint: &Endpoint,
    tag: &str,
    copy: &Path,
) -> anyhow::Result<(Command, PathBuf)> {
    let TreeCopy { client, protocol, direction } = plan;
    let small = &bench.scratch.small;
    let source_dir = bench.scratch.share.join(&small.name);
    let script = bench.scratch.download_path(&format!("{tag}.script"));
    let command = match (client, protocol, direction) {
        (TreeClient::Session, Protocol::Ftp | Protocol::Ftps, Direction::Download) => {
            let mirror = format!("mirror --no-perms . {}", copy.display());
            lftp(protocol, endpoint, &small.name, &script, &[mirror])?
        }
        (TreeClient::Session, Protocol::Ftp | Protocol::Ftps, Direction::Upload) => {
            let mirror = format!("mirror -R --no-perms {} {tag}", source_dir.display());
            lftp(protocol, endpoint, UPLOAD_DIR, &script, &[mirror])?
        }
        (TreeClient::Session, Protocol::Sftp, Direction::Download) => {
            let get = format!("get -r {} {}", small.name, sftp_quote(copy));
            sftp(endpoint, DEFAULT_CIPHER, &script, &[get])?
        }
        (TreeClient::Session, Protocol::Sftp, Direction::Upload) => {
            let put = format!("put -r {} {UPLOAD_DIR}/{tag}", sftp_quote(&source_dir));
            sftp(endpoint, DEFAULT_CIPHER, &script, &[put])?
        }
        (TreeClient::Session, Protocol::Tftp, _) => {
            anyhow::bail!("TFTP has no session to copy a folder in")
        }
        (TreeClient::CurlList, _, Direction::Download) => {
            std::fs::create_dir_all(copy)
                .with_context(|| format!("creating {}", copy.display()))?;
            let urls: Vec<(String, PathBuf)> = small
                .files
                .iter()
                .map(|(name, _)| {
                    let remote = format!("{}/{name}", small.name);
                    (curl_url(protocol, endpoint, &remote), copy.join(name))
                })
                .collect();
            let list = curl_download_list(urls.iter().map(|(u, p)| (u.as_str(), p.as_path())));
            std::fs::write(&script, list)
                .with_context(|| format!("writing {}", script.display()))?;
            // `--fail-early`: the first failed transfer ends the run, so a list cannot pass
            // with holes in it.
            let mut command = curl(protocol, endpoint)?;
            command.arg("--fail-early").arg("--config").arg(&script);
            command
        }
        (TreeClient::CurlList, _, Direction::Upload) => {
            // Made here, writable by every server's user (vsftpd and tftpd-hpa write as
            // unprivileged users): curl then sends files only, no MKD.
            std::fs::create_dir_all(copy)
                .with_context(|| format!("creating {}", copy.display()))?;
            std::fs::set_permissions(copy, std::fs::Permissions::from_mode(0o777))?;
            let names: Vec<&str> = small.files.iter().map(|(name, _)| name.as_str()).collect();
            let mut command = curl(protocol, endpoint)?;
            command
                .arg("--fail-early")
                .arg("--upload-file")
                .arg(curl_upload_glob(&source_dir, &names)?)
                .arg(curl_url(protocol, endpoint, &format!("{UPLOAD_DIR}/{tag}/")));
            command
        }
    };
    Ok((command, script))
}

/// Copies the small-file folder once as `plan` says and returns files per second.
fn copy_tree(
    bench: &Bench<'_>,
    plan: TreeCopy,
    endpoint: &Endpoint,
    tag: &str,
) -> anyhow::Result<Sample> {
    let TreeCopy { client, protocol, direction } = plan;
    let small = &bench.scratch.small;
    let count = small.files.len();
    let copy = match direction {
        Direction::Download => bench.scratch.download_path(tag),
        Direction::Upload => bench.scratch.uploaded(tag),
    };
    let label = format!("{tag} ({})", protocol.name());
    let outcome =
        tree_command(bench, plan, endpoint, tag, &copy).and_then(|(mut command, script)| {
            let limit = small_files_limit(bench, count);
            let run = with_server_cpu(endpoint, || match client {
                TreeClient::Session => run_ok(&mut command, &label, limit),
                TreeClient::CurlList => run_curl(&mut command, &label, limit),
            });
            let _ = std::fs::remove_file(script);
            run
        });
    let checked = outcome.and_then(|(output, cpu)| {
        let seconds = match client {
            TreeClient::Session => marked_seconds(&output.stdout)?,
            TreeClient::CurlList => curl_list_seconds(&output.stderr, count, protocol)?,
        };
        wait_for_files(&copy, count);
        small.verify_copy(&copy).with_context(|| format!("copy at {}", copy.display()))?;
        Ok((seconds, cpu))
    });
    discard(&copy);
    let (seconds, cpu) = checked?;
    Ok(Sample { value: count as f64 / seconds, server_cpu: Some(cpu) })
}

/// Waits (briefly) until `dir` holds `count` entries: a server may publish the last upload
/// by renaming it into place just after the client saw its transfer end.
fn wait_for_files(dir: &Path, count: usize) {
    let entries = || std::fs::read_dir(dir).map(Iterator::count).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while entries() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The rows of scenario 2 for the selected protocols among FTP and SFTP.
pub fn run(bench: &Bench<'_>, lineup: &Lineup, protocols: &[Protocol]) -> Vec<Row> {
    protocols
        .iter()
        .filter(|p| matches!(p, Protocol::Ftp | Protocol::Sftp))
        .flat_map(|protocol| tree_rows(bench, lineup, *protocol, TreeClient::Session))
        .collect()
}

/// The small-file rows of `protocol` with `client`, down and up.
pub(super) fn tree_rows(
    bench: &Bench<'_>,
    lineup: &Lineup,
    protocol: Protocol,
    client: TreeClient,
) -> Vec<Row> {
    let count = bench.scratch.small.files.len();
    let size_kib = bench.sizes.small_size / 1024;
    let mut rows = Vec::new();
    for direction in [Direction::Download, Direction::Upload] {
        let verb = direction.name();
        let (id, how) = match client {
            TreeClient::Session => {
                let how = match protocol {
                    Protocol::Ftps => "one session (lftp mirror, PROT P)",
                    Protocol::Sftp => "one session (sftp -r)",
                    Protocol::Ftp | Protocol::Tftp => "one session (lftp mirror)",
                };
                ("small", how.to_owned())
            }
            TreeClient::CurlList => {
                let session = match protocol {
                    Protocol::Tftp => "one process",
                    Protocol::Ftp | Protocol::Ftps | Protocol::Sftp => "one connection",
                };
                let curl = match direction {
                    Direction::Download => "curl -K",
                    Direction::Upload => "curl -T {...}",
                };
                let library = if protocol == Protocol::Sftp { ", libssh2" } else { "" };
                ("curl_list", format!("{session} ({curl}{library})"))
            }
        };
        let id = format!("{}.{id}.{verb}", protocol.name().to_lowercase());
        let head = RowHead {
            id: id.clone(),
            protocol: protocol.name(),
            title: format!("{} {count} x {size_kib} KiB {verb}, {how}", protocol.name()),
            unit: Unit::FilesPerSecond,
            target: Some(Target::RatioAtLeast(1.0)),
        };
        rows.extend(measure_row(bench, head, protocol, lineup, |side: Side, ep, run| {
            let tag = format!("{}-{}-{run}", id.replace('.', "-"), side.name());
            copy_tree(bench, TreeCopy { client, protocol, direction }, ep, &tag)
        }));
    }
    rows
}
