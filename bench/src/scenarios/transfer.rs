//! Scenario 1: one large file down and up. FTP and FTPS with curl, SFTP with OpenSSH's sftp
//! under two ciphers, TFTP with tftp-hpa (default options) and atftp (larger blocks, and a
//! window where the server grants one: tftpd-hpa does not, so it answers lock-step).

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use super::{Bench, measure_row, megabytes_per_second, wait_for_upload, with_server_cpu};
use crate::cli::Protocol;
use crate::clients::{
    Transfer, atftp, curl_to_stdout, curl_transfer, curl_transfer_seconds, limit_for,
    marked_seconds, run_curl, sftp, sftp_quote, tftp_hpa,
};
use crate::dataset::{Fingerprint, SourceFile, check, fingerprint_stream, verify};
use crate::endpoint::{Endpoint, Side};
use crate::lineup::Lineup;
use crate::process::{RunningCommand, run_ok};
use crate::results::{Row, RowHead, Sample, Target, Unit};
use crate::scratch::discard;

/// The SSH ciphers of the SFTP rows, as `-c` takes them.
const SFTP_CIPHERS: [(&str, &str); 2] = [
    ("chacha20-poly1305@openssh.com", "chacha20-poly1305"),
    ("aes128-gcm@openssh.com", "aes128-gcm"),
];

/// How a row's client moves the file and reports its time.
#[derive(Debug, Clone, Copy)]
pub(super) enum Client<'a> {
    /// curl for the row's protocol, with these options on downloads.
    Curl {
        options: &'a [&'a str],
    },
    Sftp {
        cipher: &'a str,
    },
    TftpHpa,
    Atftp {
        options: &'a [&'a str],
    },
}

/// A row's transfer direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Download,
    Upload,
}

impl Direction {
    /// `download` or `upload`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
        }
    }
}

/// `64 MiB`, `1 GiB`.
pub(super) fn size_label(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// Runs one transfer and returns its seconds, with the fingerprint of the download when
/// it was checked as it streamed (curl); otherwise the caller verifies the copy.
pub(super) fn timed_transfer(
    client: Client<'_>,
    protocol: Protocol,
    endpoint: &Endpoint,
    transfer: &Transfer,
    bytes: u64,
    label: &str,
    batch_file: &Path,
) -> anyhow::Result<(f64, Option<Fingerprint>)> {
    let limit = limit_for(bytes);
    let seconds = match client {
        Client::Curl { options } => match transfer {
            Transfer::Get { remote, .. } => {
                let streamed = RunningCommand::start_consuming(
                    &mut curl_to_stdout(protocol, endpoint, remote, options)?,
                    label,
                    move |stdout| fingerprint_stream(stdout, bytes),
                )?
                .finish(limit)?
                .ok(label)?;
                let seconds = curl_transfer_seconds(&streamed.stderr, protocol)?;
                return Ok((seconds, Some(streamed.stdout?)));
            }
            Transfer::Put { .. } => {
                let done =
                    run_curl(&mut curl_transfer(protocol, endpoint, transfer)?, label, limit)?;
                curl_transfer_seconds(&done.stderr, protocol)?
            }
        },
        Client::Sftp { cipher } => {
            let command = match transfer {
                Transfer::Get { remote, local } => format!("get {remote} {}", sftp_quote(local)),
                Transfer::Put { local, remote } => format!("put {} {remote}", sftp_quote(local)),
            };
            let mut sftp_command: Command = sftp(endpoint, cipher, batch_file, &[command])?;
            let done = run_ok(&mut sftp_command, label, limit);
            let _ = std::fs::remove_file(batch_file);
            marked_seconds(&done?.stdout)?
        }
        Client::TftpHpa => {
            let done = run_ok(&mut tftp_hpa(endpoint, transfer), label, limit)?;
            done.elapsed.as_secs_f64()
        }
        Client::Atftp { options } => {
            let done = run_ok(&mut atftp(endpoint, options, transfer), label, limit)?;
            done.elapsed.as_secs_f64()
        }
    };
    Ok((seconds, None))
}

/// Measures one file's download or upload on Wharf and the protocol's peers.
#[allow(clippy::too_many_arguments)]
pub(super) fn file_rows(
    bench: &Bench<'_>,
    lineup: &Lineup,
    protocol: Protocol,
    id: String,
    title: String,
    target: Option<Target>,
    client: Client<'_>,
    direction: Direction,
    source: &SourceFile,
) -> Vec<Row> {
    let head = RowHead {
        id: id.clone(),
        protocol: protocol.name(),
        title,
        unit: Unit::MegabytesPerSecond,
        target,
    };
    measure_row(bench, head, protocol, lineup, |side: Side, endpoint, run| {
        let tag = format!("{}-{}-{}", id.replace('.', "-"), side.name(), run);
        let label = format!("{id} ({})", side.name());
        let bytes = source.print.size;
        let batch = bench.scratch.download_path(&format!("{tag}.batch"));
        bench.scratch.touch_free_memory(bytes)?;
        match direction {
            Direction::Download => {
                let local = bench.scratch.download_path(&tag);
                let transfer = Transfer::Get { remote: source.name.clone(), local: local.clone() };
                let timed = with_server_cpu(endpoint, || {
                    timed_transfer(client, protocol, endpoint, &transfer, bytes, &label, &batch)
                });
                let checked = timed.and_then(|((seconds, streamed), cpu)| {
                    match streamed {
                        Some(print) => check(&format!("{id} download"), print, source.print),
                        None => verify(&local, source.print),
                    }
                    .map(|()| (seconds, cpu))
                });
                discard(&local);
                let (seconds, cpu) = checked?;
                Ok(Sample { value: megabytes_per_second(bytes, seconds), server_cpu: Some(cpu) })
            }
            Direction::Upload => {
                let name = format!("{tag}.bin");
                let remote = format!("{}/{name}", crate::scratch::UPLOAD_DIR);
                let transfer = Transfer::Put { local: source.path.clone(), remote };
                let uploaded = bench.scratch.uploaded(&name);
                let timed = with_server_cpu(endpoint, || {
                    timed_transfer(client, protocol, endpoint, &transfer, bytes, &label, &batch)
                });
                let checked = timed
                    .and_then(|((s, _), cpu)| {
                        wait_for_upload(&uploaded, source.print).map(|()| (s, cpu))
                    })
                    .with_context(|| format!("upload to {}", side.name()));
                discard(&uploaded);
                let (seconds, cpu) = checked?;
                Ok(Sample { value: megabytes_per_second(bytes, seconds), server_cpu: Some(cpu) })
            }
        }
    })
}

/// One file's rows (download and upload) before measuring.
struct Plan<'a> {
    id: &'static str,
    /// Protocol and options, e.g. `FTPS explicit PROT P`.
    name: String,
    /// Size and client, e.g. `1 GiB, curl`.
    detail: String,
    target: Option<Target>,
    client: Client<'a>,
    source: &'a SourceFile,
}

/// The plans of `protocol`.
fn plans<'a>(bench: &'a Bench<'_>, protocol: Protocol) -> Vec<Plan<'a>> {
    let big = &bench.scratch.big;
    let tftp = &bench.scratch.tftp;
    let big_size = size_label(big.print.size);
    let tftp_size = size_label(tftp.print.size);
    let at_least_peer = Some(Target::RatioAtLeast(1.0));
    let plan = |id, name: &str, detail: String, target, client, source| Plan {
        id,
        name: name.to_owned(),
        detail,
        target,
        client,
        source,
    };
    match protocol {
        Protocol::Ftp => vec![plan(
            "ftp",
            "FTP",
            format!("{big_size}, curl"),
            at_least_peer,
            Client::Curl { options: &[] },
            big,
        )],
        Protocol::Ftps => vec![plan(
            "ftps",
            "FTPS explicit PROT P",
            format!("{big_size}, curl"),
            at_least_peer,
            Client::Curl { options: &[] },
            big,
        )],
        Protocol::Sftp => SFTP_CIPHERS
            .iter()
            .map(|(cipher, short)| {
                plan(
                    if short.starts_with("chacha") { "sftp.chacha20" } else { "sftp.aes128gcm" },
                    &format!("SFTP {short}"),
                    format!("{big_size}, OpenSSH sftp"),
                    at_least_peer,
                    Client::Sftp { cipher },
                    big,
                )
            })
            .collect(),
        Protocol::Tftp => vec![
            plan(
                "tftp.default",
                "TFTP default options",
                format!("{tftp_size}, tftp-hpa"),
                at_least_peer,
                Client::TftpHpa,
                tftp,
            ),
            plan(
                "tftp.blksize1468",
                "TFTP blksize 1468",
                format!("{tftp_size}, atftp"),
                None,
                Client::Atftp { options: &["blksize 1468"] },
                tftp,
            ),
            plan(
                "tftp.blksize1468.window16",
                "TFTP blksize 1468 windowsize 16",
                format!("{tftp_size}, atftp"),
                None,
                Client::Atftp { options: &["blksize 1468", "windowsize 16"] },
                tftp,
            ),
        ],
    }
}

/// All rows of scenario 1 for `protocols`.
pub fn run(bench: &Bench<'_>, lineup: &Lineup, protocols: &[Protocol]) -> Vec<Row> {
    let mut rows = Vec::new();
    for protocol in protocols {
        for plan in plans(bench, *protocol) {
            for direction in [Direction::Download, Direction::Upload] {
                rows.extend(file_rows(
                    bench,
                    lineup,
                    *protocol,
                    format!("{}.{}", plan.id, direction.name()),
                    format!("{} {} ({})", plan.name, direction.name(), plan.detail),
                    plan.target,
                    plan.client,
                    direction,
                    plan.source,
                ));
            }
        }
    }
    rows
}
