//! Scenario 5: more clients, as users' scripts run them. curl fetching (`-K` list) and
//! sending (`-T "dir/{a,b,...}"`) the small files in one process, over one connection where
//! the protocol has one (FTP, FTPS, SFTP through libssh2; TFTP one transfer after another);
//! tftp-hpa fetching a list of files in one run (every request from the same port); TFTP
//! with 64 KiB blocks (curl, atftp, atftp with a window); SFTP's large download with curl;
//! FTPS small files with `lftp mirror` (PROT P, TLS session resumed on data connections).

use anyhow::Context as _;

use super::small_files::{TreeClient, tree_rows};
use super::transfer::{Client, Direction, file_rows, size_label};
use super::{Bench, measure_row, small_files_limit, with_server_cpu};
use crate::cli::Protocol;
use crate::clients::tftp_hpa_get_many;
use crate::endpoint::{Endpoint, Side};
use crate::lineup::Lineup;
use crate::process::run_ok;
use crate::results::{Row, RowHead, Sample, Target, Unit};
use crate::scratch::discard;

/// The largest TFTP block (RFC 2348): 65,464 bytes of data in a 65,468-byte datagram.
const TFTP_LARGEST_BLOCK: &str = "65464";

/// Every row of scenario 5 for the selected protocols.
pub fn run(bench: &Bench<'_>, lineup: &Lineup, protocols: &[Protocol]) -> Vec<Row> {
    let mut rows = Vec::new();
    for protocol in protocols {
        rows.extend(tree_rows(bench, lineup, *protocol, TreeClient::CurlList));
        match protocol {
            Protocol::Ftp => {}
            Protocol::Ftps => rows.extend(tree_rows(bench, lineup, *protocol, TreeClient::Session)),
            Protocol::Sftp => rows.extend(sftp_curl_rows(bench, lineup)),
            Protocol::Tftp => {
                rows.extend(tftp_list_rows(bench, lineup));
                rows.extend(tftp_large_block_rows(bench, lineup));
            }
        }
    }
    rows
}

/// `tftp.hpa_list.download`: tftp-hpa fetching the first small files in one run; files per
/// second over the client's wall time.
fn tftp_list_rows(bench: &Bench<'_>, lineup: &Lineup) -> Vec<Row> {
    let small = &bench.scratch.small;
    let count = bench.sizes.tftp_list_count.min(small.files.len());
    let size_kib = bench.sizes.small_size / 1024;
    let head = RowHead {
        id: "tftp.hpa_list.download".to_owned(),
        protocol: Protocol::Tftp.name(),
        title: format!("TFTP {count} x {size_kib} KiB download, one run (tftp-hpa get f1 f2 ...)"),
        unit: Unit::FilesPerSecond,
        target: Some(Target::RatioAtLeast(1.0)),
    };
    measure_row(bench, head, Protocol::Tftp, lineup, |side: Side, endpoint, run| {
        let tag = format!("tftp-hpa-list-{}-{run}", side.name());
        tftp_list(bench, endpoint, count, &tag)
    })
}

/// One tftp-hpa run fetching the first `count` small files; files per second.
fn tftp_list(
    bench: &Bench<'_>,
    endpoint: &Endpoint,
    count: usize,
    tag: &str,
) -> anyhow::Result<Sample> {
    let small = &bench.scratch.small;
    let local = bench.scratch.download_path(tag);
    std::fs::create_dir_all(&local).with_context(|| format!("creating {}", local.display()))?;
    let remotes: Vec<String> =
        small.files.iter().take(count).map(|(name, _)| format!("{}/{name}", small.name)).collect();
    let mut command = tftp_hpa_get_many(endpoint, &remotes)?;
    command.current_dir(&local);
    let limit = small_files_limit(bench, count);
    let outcome = with_server_cpu(endpoint, || run_ok(&mut command, tag, limit));
    // tftp-hpa reports a failed file and goes on to the next: the copies are the verdict.
    let checked = outcome.and_then(|(done, cpu)| {
        small
            .verify_first(&local, count)
            .with_context(|| format!("copy at {}", local.display()))?;
        Ok((done.elapsed.as_secs_f64(), cpu))
    });
    discard(&local);
    let (seconds, cpu) = checked?;
    Ok(Sample { value: count as f64 / seconds, server_cpu: Some(cpu) })
}

/// The TFTP file downloaded with the largest block: curl, atftp, and atftp asking for a
/// window of 16 blocks as well.
fn tftp_large_block_rows(bench: &Bench<'_>, lineup: &Lineup) -> Vec<Row> {
    let source = &bench.scratch.tftp;
    let size = size_label(source.print.size);
    let block = format!("blksize {TFTP_LARGEST_BLOCK}");
    let window = [block.as_str(), "windowsize 16"];
    let curl_options = ["--tftp-blksize", TFTP_LARGEST_BLOCK];
    let plans: [(&str, String, Client<'_>); 3] = [
        (
            "tftp.curl.blksize65464",
            format!("TFTP {block} download ({size}, curl)"),
            Client::Curl { options: &curl_options },
        ),
        (
            "tftp.atftp.blksize65464",
            format!("TFTP {block} download ({size}, atftp)"),
            Client::Atftp { options: &window[..1] },
        ),
        (
            "tftp.atftp.blksize65464.window16",
            format!("TFTP {block} windowsize 16 download ({size}, atftp)"),
            Client::Atftp { options: &window },
        ),
    ];
    let mut rows = Vec::new();
    for (id, title, client) in plans {
        rows.extend(file_rows(
            bench,
            lineup,
            Protocol::Tftp,
            format!("{id}.download"),
            title,
            Some(Target::RatioAtLeast(1.0)),
            client,
            Direction::Download,
            source,
        ));
    }
    rows
}

/// The large file downloaded over SFTP with curl (libssh2), next to OpenSSH's rows.
fn sftp_curl_rows(bench: &Bench<'_>, lineup: &Lineup) -> Vec<Row> {
    let source = &bench.scratch.big;
    file_rows(
        bench,
        lineup,
        Protocol::Sftp,
        "sftp.curl.download".to_owned(),
        format!("SFTP download ({}, curl, libssh2)", size_label(source.print.size)),
        Some(Target::RatioAtLeast(1.0)),
        Client::Curl { options: &[] },
        Direction::Download,
        source,
    )
}
