//! An FTP client killed in the middle of `STOR` leaves the previous file intact.
//!
//! When a client process dies, its kernel closes its control and data connections together.
//! In stream mode the end of the data connection is the end of the file, so the data
//! connection alone cannot tell a finished upload from an interrupted one; the control
//! connection can: a client that finished waits there for the `226`. Before publishing an
//! upload, the session peeks at the control socket and drops the upload when the client has
//! closed it (`crates/wharf-ftp/src/probe.rs`).
//!
//! Each case is repeated, since the two connections close within microseconds of each
//! other.

use std::process::Command;

use tokio::io::AsyncWriteExt as _;
use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::clients::real::RealClients;
use wharf_e2e::interrupted::{assert_previous_file_intact, kill_mid_upload, notice_limit};
use wharf_e2e::server::RW;
use wharf_e2e::tree::wait_for_upload_in_progress;
use wharf_e2e::{MIB, Wharf, step};
use wharf_testkit::pattern;

const REPEATS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_killed_mid_upload_leaves_the_previous_file() {
    let Some(clients) = RealClients::find() else { return };
    let wharf = Wharf::start().await;
    let big = wharf.base().join("client/new.bin");
    std::fs::write(&big, pattern(8 * MIB)).expect("local file");
    let old = pattern(MIB + 11).into_iter().map(|b| !b).collect::<Vec<u8>>();
    for round in 0..REPEATS {
        let relative = format!("exchange/curl-{round}.bin");
        wharf.put(&relative, &old);
        let mut curl: Command = clients.curl(&RealClients::ftp_url(&wharf, RW, &relative));
        curl.args(["--limit-rate", "512k", "-T"]).arg(&big);
        kill_mid_upload(&wharf, curl).await;
        assert_previous_file_intact(&wharf, &relative, &old).await;
    }
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connections_both_close_mid_upload_leaves_the_previous_file() {
    let wharf = Wharf::start().await;
    let old = pattern(MIB + 11);
    let new: Vec<u8> = pattern(4 * MIB).into_iter().map(|b| !b).collect();
    for round in 0..REPEATS {
        let relative = format!("exchange/both-{round}.bin");
        wharf.put(&relative, &old);
        let mut ftp = FtpControl::login(wharf.ftp, RW).await;
        let command = format!("STOR /{relative}");
        let mut data = ftp.start_transfer(command.as_bytes()).await.expect("150");
        // Half of the file, a whole number of the server's 256 KiB receive blocks: once all
        // of it is on disk, the server waits on the data connection with nothing buffered,
        // and the data connection's end leads straight to the commit.
        let half = new.len() / 2;
        step("half", data.write_all(&new[..half])).await.expect("send half");
        wait_for_upload_in_progress(&wharf.root, half as u64, notice_limit()).await;
        // As a process's exit would, both cleanly (the exit releases them in the opposite
        // order, data first; the curl test above covers that).
        drop(ftp);
        drop(data);
        assert_previous_file_intact(&wharf, &relative, &old).await;
    }
    wharf.stop().await;
}
