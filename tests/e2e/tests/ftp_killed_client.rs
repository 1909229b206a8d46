//! When an FTP upload whose data connection ended is published, on the whole server, in the
//! clear and over TLS.
//!
//! In stream mode the end of the data connection is the end of the file, so the data
//! connection alone cannot tell a finished upload from one whose client died. The session
//! decides by one rule (`crates/wharf-ftp/src/probe.rs`): an upload whose data connection has
//! ended is published unless, at that moment, the client has closed its control connection
//! without sending anything on it since the transfer began. A client that finished waits for
//! the `226` or says something (`QUIT` means "finish, then log out"); a dead one says nothing.
//!
//! What the rule cannot catch, and this file therefore does not try: a killed client whose
//! kernel closes its data connection before its control connection (last opened, first
//! released) looks exactly like one that finished, and its upload is published, as on every
//! FTP server. Killing a real client here would test the kernel's timing, not the rule, so
//! these clients close their connections in a known order and every case waits for what the
//! server does (a closed connection, a reply, the file on disk), never for time to pass.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wharf_e2e::clients::ftp::{BoxStream, FtpControl};
use wharf_e2e::interrupted::{assert_previous_file_intact, notice_limit};
use wharf_e2e::server::RW;
use wharf_e2e::tree::wait_for_upload_in_progress;
use wharf_e2e::{MIB, STEP_LIMIT, Wharf, step, within};
use wharf_testkit::pattern;

fn old_content() -> Vec<u8> {
    pattern(MIB + 11)
}

fn new_content() -> Vec<u8> {
    pattern(4 * MIB).into_iter().map(|b| !b).collect()
}

fn flavour(tls: bool) -> &'static str {
    if tls { "tls" } else { "plain" }
}

/// Waits until the server has closed (or reset) the data connection: it dropped the upload.
async fn wait_for_server_to_close(mut data: BoxStream) {
    let mut sink = vec![0u8; 64 * 1024];
    within(STEP_LIMIT, "the server closing the data connection", async {
        while let Ok(read) = data.read(&mut sink).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}

/// Waits until `relative` holds `content`: the upload was published.
async fn wait_for_published(wharf: &Wharf, relative: &str, content: &[u8]) {
    let path = wharf.root.join(relative);
    within(STEP_LIMIT, "the upload being published", async {
        while !std::fs::read(&path).is_ok_and(|now| now == content) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_connection_closed_before_the_data_ends_keeps_the_previous_file() {
    let wharf = Wharf::start().await;
    let (old, new) = (old_content(), new_content());
    for tls in wharf.ftp_flavours() {
        let relative = format!("exchange/control-first-{}.bin", flavour(tls));
        wharf.put(&relative, &old);
        let mut ftp = FtpControl::login_over(&wharf, RW, tls).await;
        let mut data =
            ftp.start_transfer(format!("STOR /{relative}").as_bytes()).await.expect("150");
        step("half", data.write_all(&new[..new.len() / 2])).await.expect("send half");
        step("flush", data.flush()).await.expect("flush");
        wait_for_upload_in_progress(&wharf.root, 1, notice_limit()).await;
        // Closed as a dying process's kernel closes it: no QUIT, no TLS close.
        drop(ftp);
        wait_for_server_to_close(data).await;
        assert_previous_file_intact(&wharf, &relative, &old).await;
    }
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connections_both_close_mid_upload_leaves_the_previous_file() {
    let wharf = Wharf::start().await;
    let old = old_content();
    let new = new_content();
    let relative = "exchange/both.bin";
    wharf.put(relative, &old);
    let mut ftp = FtpControl::login(wharf.ftp, RW).await;
    let command = format!("STOR /{relative}");
    let mut data = ftp.start_transfer(command.as_bytes()).await.expect("150");
    let half = new.len() / 2;
    step("half", data.write_all(&new[..half])).await.expect("send half");
    wait_for_upload_in_progress(&wharf.root, 1, notice_limit()).await;
    // Both closed cleanly, the control connection first: when the server reads the data's
    // end, the control connection's end is already there, and nothing was said.
    drop(ftp);
    drop(data);
    assert_previous_file_intact(&wharf, relative, &old).await;
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_right_after_the_data_publishes_the_upload_in_both_orders() {
    let wharf = Wharf::start().await;
    let (old, new) = (old_content(), new_content());
    for tls in wharf.ftp_flavours() {
        for quit_first in [true, false] {
            let order = if quit_first { "quit-then-data-close" } else { "data-close-then-quit" };
            let relative = format!("exchange/{order}-{}.bin", flavour(tls));
            wharf.put(&relative, &old);
            let mut ftp = FtpControl::login_over(&wharf, RW, tls).await;
            let command = format!("STOR /{relative}");
            let mut data = ftp.start_transfer(command.as_bytes()).await.expect("150");
            step("data", data.write_all(&new)).await.expect("send");
            if quit_first {
                ftp.send(b"QUIT").await;
                step("close data", data.shutdown()).await.expect("close data");
            } else {
                step("close data", data.shutdown()).await.expect("close data");
                ftp.send(b"QUIT").await;
            }
            drop(data);
            // Then the control connection closes, without waiting for any reply.
            drop(ftp);
            wait_for_published(&wharf, &relative, &new).await;
        }
    }
    wharf.stop().await;
}

/// Over TLS a client can end its control connection on purpose (the TLS close), which a dead
/// process cannot: that is a word from the client, and its upload finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_tls_close_of_the_control_connection_lets_the_upload_finish() {
    let wharf = Wharf::start().await;
    let (old, new) = (old_content(), new_content());
    let relative = "exchange/tls-close.bin";
    wharf.put(relative, &old);
    let mut ftp = FtpControl::login_over(&wharf, RW, true).await;
    let mut data = ftp.start_transfer(format!("STOR /{relative}").as_bytes()).await.expect("150");
    let half = new.len() / 2;
    step("half", data.write_all(&new[..half])).await.expect("send half");
    ftp.shutdown().await;
    step("rest", data.write_all(&new[half..])).await.expect("send the rest");
    step("close data", data.shutdown()).await.expect("close data");
    drop(data);
    assert_eq!(ftp.reply().await.code, 226);
    assert!(wharf.read(relative) == new, "the upload was not published");
    wharf.stop().await;
}
