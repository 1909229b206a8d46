//! The parallel downloads of scenario 3 with the logins kept out of the figure: every client
//! logs in first and waits at a [`Gate`]; once all are in, the gate opens and every download
//! starts at once. The figure is the transfer phase alone: all bytes over the time from the
//! first client's start mark (taken after the gate) to the last client's end mark. The
//! cluster rows use it to tell the cost per transfer from the cost per login.
//!
//! The clients are the ones with a script and a shell escape: OpenSSH's sftp for SFTP, lftp
//! for FTP.

use std::time::Duration;

use anyhow::{Context as _, bail};

use super::{Bench, megabytes_per_second, with_cpu_of_each};
use crate::cli::Protocol;
use crate::clients::{lftp_after, limit_for, marked_span, sftp_after, sftp_quote};
use crate::dataset::verify;
use crate::endpoint::Endpoint;
use crate::gate::Gate;
use crate::lineup::DEFAULT_CIPHER;
use crate::process::RunningCommand;
use crate::results::Sample;
use crate::scratch::discard;

/// The most the clients may take to log in, all of them.
const LOGINS_LIMIT: Duration = Duration::from_secs(120);

/// The client of the gated downloads of `protocol`.
pub fn client_of(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Sftp => "sftp",
        _ => "lftp",
    }
}

/// The gated parallel downloads from `endpoint`, with the CPU seconds of each process tree
/// of `roots` over the whole run (logins included): their sum is the sample's CPU figure,
/// and each comes second, in the order given.
pub fn download_all_gated(
    bench: &Bench<'_>,
    protocol: Protocol,
    endpoint: &Endpoint,
    tag: &str,
    roots: &[u32],
) -> anyhow::Result<(Sample, Vec<f64>)> {
    let source = &bench.scratch.parallel;
    let count = bench.sizes.parallel_count;
    let total_bytes = source.print.size * count as u64;
    let limit = LOGINS_LIMIT + limit_for(total_bytes);
    let gate = Gate::close(bench.scratch.download_path(&format!("{tag}-gate")))?;
    let locals: Vec<_> =
        (0..count).map(|i| bench.scratch.download_path(&format!("{tag}-{i}"))).collect();
    let clients = || -> anyhow::Result<Vec<anyhow::Result<String>>> {
        let mut running = Vec::with_capacity(count);
        for (index, local) in locals.iter().enumerate() {
            let script = local.with_extension("script");
            let first = gate.wait_lines(index);
            let mut command = match protocol {
                Protocol::Ftp => {
                    let get = format!("get {} -o {}", source.name, local.display());
                    lftp_after(protocol, endpoint, "/", &script, &first, &[get])?
                }
                Protocol::Sftp => {
                    let get = format!("get {} {}", source.name, sftp_quote(local));
                    sftp_after(endpoint, DEFAULT_CIPHER, &script, &first, &[get])?
                }
                Protocol::Ftps | Protocol::Tftp => {
                    bail!("gated downloads are measured for FTP and SFTP")
                }
            };
            running.push(RunningCommand::start(&mut command, &format!("{tag} client {index}"))?);
        }
        // A client that cannot log in fails the run here; dropping `running` stops the rest.
        gate.wait_for(count, LOGINS_LIMIT)?;
        gate.open()?;
        Ok(running
            .into_iter()
            .enumerate()
            .map(|(index, client)| {
                let done = client.finish(limit)?.ok(&format!("client {index}"))?;
                Ok(done.stdout)
            })
            .collect())
    };
    let (outputs, each_cpu) = with_cpu_of_each(roots, clients)?;
    let mut first_start = u128::MAX;
    let mut last_end = 0;
    let mut checked = Ok(());
    for (index, (local, output)) in locals.iter().zip(outputs).enumerate() {
        if checked.is_ok() {
            checked = output
                .and_then(|stdout| marked_span(&stdout))
                .and_then(|(start, end)| {
                    first_start = first_start.min(start);
                    last_end = last_end.max(end);
                    verify(local, source.print)
                })
                .with_context(|| format!("download {index}"));
        }
        let _ = std::fs::remove_file(local.with_extension("script"));
        discard(local);
    }
    checked?;
    let seconds = (last_end.saturating_sub(first_start)) as f64 / 1e9;
    let sample = Sample {
        value: megabytes_per_second(total_bytes, seconds),
        server_cpu: Some(each_cpu.iter().sum()),
    };
    Ok((sample, each_cpu))
}
