//! Scenario 3: many clients download the same file at once (curl for FTP and FTPS, sftp for
//! SFTP, tftp-hpa for TFTP), one client process per download. The figure is the aggregate
//! rate: all bytes over the wall time from the first start to the last exit, session set-up
//! included (it is part of serving many clients at once).

use std::time::Instant;

use anyhow::Context as _;

use super::{Bench, measure_row, megabytes_per_second, with_cpu_of_each};
use crate::cli::Protocol;
use crate::clients::{Transfer, curl_to_stdout, limit_for, sftp, sftp_quote, tftp_hpa};
use crate::dataset::{check, fingerprint_stream, verify};
use crate::endpoint::{Endpoint, Side};
use crate::lineup::{DEFAULT_CIPHER, Lineup};
use crate::process::RunningCommand;
use crate::results::{Row, RowHead, Sample, Unit};
use crate::scratch::discard;

fn download_all(
    bench: &Bench<'_>,
    protocol: Protocol,
    endpoint: &Endpoint,
    tag: &str,
) -> anyhow::Result<Sample> {
    download_all_metered(bench, protocol, endpoint, tag, &[endpoint.server_pid])
        .map(|(sample, _)| sample)
}

/// The parallel downloads of this scenario from `endpoint`, with the CPU seconds of each
/// process tree of `roots` (the servers behind the endpoint) meanwhile: the sample's CPU
/// figure is their sum, and each one's comes second, in the order given.
pub fn download_all_metered(
    bench: &Bench<'_>,
    protocol: Protocol,
    endpoint: &Endpoint,
    tag: &str,
    roots: &[u32],
) -> anyhow::Result<(Sample, Vec<f64>)> {
    let source = &bench.scratch.parallel;
    let count = bench.sizes.parallel_count;
    let total_bytes = source.print.size * count as u64;
    // Every download shares the machine with the others: allow for all of them.
    let limit = limit_for(total_bytes);
    let locals: Vec<_> =
        (0..count).map(|i| bench.scratch.download_path(&format!("{tag}-{i}"))).collect();
    let size = source.print.size;
    let clients = || -> anyhow::Result<_> {
        let started = Instant::now();
        let mut running = Vec::with_capacity(count);
        for (index, local) in locals.iter().enumerate() {
            let transfer = Transfer::Get { remote: source.name.clone(), local: local.clone() };
            let label = format!("{tag} client {index}");
            // curl streams its download to us and it is checked on the fly (see
            // `curl_to_stdout`); the other clients write files, checked afterwards.
            let (mut command, streams) = match protocol {
                Protocol::Ftp | Protocol::Ftps => {
                    (curl_to_stdout(protocol, endpoint, &source.name, &[])?, true)
                }
                Protocol::Sftp => {
                    let batch = local.with_extension("batch");
                    let get = format!("get {} {}", source.name, sftp_quote(local));
                    (sftp(endpoint, DEFAULT_CIPHER, &batch, &[get])?, false)
                }
                Protocol::Tftp => (tftp_hpa(endpoint, &transfer), false),
            };
            running.push(RunningCommand::start_consuming(
                &mut command,
                &label,
                move |mut stdout| {
                    if streams {
                        Some(fingerprint_stream(stdout, size))
                    } else {
                        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
                        None
                    }
                },
            )?);
        }
        let mut outcomes = Vec::with_capacity(count);
        for (index, client) in running.into_iter().enumerate() {
            outcomes
                .push(client.finish(limit).and_then(|done| done.ok(&format!("client {index}"))));
        }
        Ok((outcomes, started.elapsed().as_secs_f64()))
    };
    let ((outcomes, seconds), each_cpu) = with_cpu_of_each(roots, clients)?;
    let cpu = each_cpu.iter().sum();
    let mut checked = Ok(());
    for (index, (local, outcome)) in locals.iter().zip(outcomes).enumerate() {
        if checked.is_ok() {
            checked = outcome
                .and_then(|done| match done.stdout {
                    Some(streamed) => check(&format!("download {index}"), streamed?, source.print),
                    None => verify(local, source.print),
                })
                .with_context(|| format!("download {index}"));
        }
        let _ = std::fs::remove_file(local.with_extension("batch"));
        discard(local);
    }
    checked?;
    let sample =
        Sample { value: megabytes_per_second(total_bytes, seconds), server_cpu: Some(cpu) };
    Ok((sample, each_cpu))
}

/// The rows of scenario 3 for the selected protocols.
pub fn run(bench: &Bench<'_>, lineup: &Lineup, protocols: &[Protocol]) -> Vec<Row> {
    let count = bench.sizes.parallel_count;
    let mib = bench.scratch.parallel.print.size / (1024 * 1024);
    protocols
        .iter()
        .flat_map(|protocol| {
            let client = match protocol {
                Protocol::Ftp | Protocol::Ftps => "curl",
                Protocol::Sftp => "sftp",
                Protocol::Tftp => "tftp-hpa",
            };
            let id = format!("{}.parallel", protocol.name().to_lowercase());
            let head = RowHead {
                id: id.clone(),
                protocol: protocol.name(),
                title: format!(
                    "{} {count} parallel downloads of {mib} MiB ({client})",
                    protocol.name()
                ),
                unit: Unit::MegabytesPerSecond,
                target: None,
            };
            measure_row(bench, head, *protocol, lineup, |side: Side, endpoint, run| {
                let tag = format!("{}-{}-{run}", id.replace('.', "-"), side.name());
                download_all(bench, *protocol, endpoint, &tag)
            })
        })
        .collect()
}
