//! Interrupted uploads: a client that disappears in the middle of replacing a file, on each
//! protocol, leaves the previous file byte-identical and no temporary file, neither on disk
//! once the server noticed nor in any listing at any time. Rust clients drop their
//! connections; real clients (OpenSSH's sftp, tftp-hpa) are killed. When an FTP upload whose
//! data connection closed cleanly is published is in `ftp_killed_client.rs`.

use std::path::Path;

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::AsyncWriteExt as _;
use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::clients::real::RealClients;
use wharf_e2e::clients::sftp::SftpClient;
use wharf_e2e::clients::tftp::TftpClient;
use wharf_e2e::interrupted::{assert_previous_file_intact, kill_mid_upload, notice_limit};
use wharf_e2e::server::{DEVICES, LAB, RW};
use wharf_e2e::tree::{wait_for_no_temporary_files, wait_for_upload_in_progress};
use wharf_e2e::{MIB, Wharf, step};
use wharf_testkit::pattern;

fn old_content() -> Vec<u8> {
    pattern(MIB + 11)
}

fn new_content(size: usize) -> Vec<u8> {
    pattern(size).into_iter().map(|byte| !byte).collect()
}

/// How an FTP client goes away in the middle of `STOR`.
#[derive(Debug, Clone, Copy)]
enum FtpExit {
    /// The control connection closes, then the data connection (a killed process closes its
    /// descriptors in order, and the control connection was opened first).
    ControlThenData,
    /// The data connection is reset (unsent data, or SO_LINGER 0), then the control one.
    DataResetThenControl,
    /// Over FTPS (`AUTH TLS`, `PROT P`): the control connection closes, then the data one.
    TlsControlThenData,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_client_gone_mid_upload_leaves_the_previous_file() {
    let wharf = Wharf::start().await;
    let exits =
        [FtpExit::ControlThenData, FtpExit::DataResetThenControl, FtpExit::TlsControlThenData];
    for exit in exits {
        let relative = format!("exchange/ftp-{exit:?}.bin");
        let old = old_content();
        wharf.put(&relative, &old);
        let new = new_content(4 * MIB);
        let tls = matches!(exit, FtpExit::TlsControlThenData);
        let mut ftp = FtpControl::login_over(&wharf, RW, tls).await;
        let command = format!("STOR /{relative}");
        let half = &new[..new.len() / 2];
        if let FtpExit::DataResetThenControl = exit {
            let mut data = ftp.start_transfer_tcp(command.as_bytes()).await.expect("150");
            step("half", data.write_all(half)).await.expect("send half");
            wait_for_upload_in_progress(&wharf.root, 1, notice_limit()).await;
            data.set_zero_linger().expect("SO_LINGER 0");
            drop(data);
            drop(ftp);
        } else {
            let mut data = ftp.start_transfer(command.as_bytes()).await.expect("150");
            step("half", data.write_all(half)).await.expect("send half");
            step("flush", data.flush()).await.expect("flush");
            wait_for_upload_in_progress(&wharf.root, 1, notice_limit()).await;
            drop(ftp);
            drop(data);
        }
        assert_previous_file_intact(&wharf, &relative, &old).await;
    }
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_client_gone_mid_upload_leaves_the_previous_file() {
    let wharf = Wharf::start().await;
    let relative = "exchange/sftp.bin";
    let old = old_content();
    wharf.put(relative, &old);
    let (sftp, cut) = SftpClient::login_key_cuttable(&wharf, RW).await;
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let handle = sftp.raw.open(format!("/{relative}"), flags, FileAttributes::empty()).await;
    let handle = handle.expect("open for replacement").handle;
    let new = new_content(2 * MIB);
    for (index, chunk) in new[..MIB].chunks(32 * 1024).enumerate() {
        let offset = (index * 32 * 1024) as u64;
        sftp.raw.write(handle.as_str(), offset, chunk.to_vec()).await.expect("write");
    }
    wait_for_upload_in_progress(&wharf.root, 1, notice_limit()).await;
    // The connection is cut before CLOSE: the server must not publish what it has.
    cut.cut();
    drop(sftp);
    assert_previous_file_intact(&wharf, relative, &old).await;
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_client_gone_mid_upload_leaves_the_previous_file() {
    let wharf = Wharf::start().await;
    // The lab may replace files in /lab: an abandoned replacement keeps the old one.
    let relative = "lab/tftp.bin";
    let old = old_content();
    wharf.put(relative, &old);
    let lab = TftpClient::new(wharf.tftp, Wharf::tftp_source(LAB));
    lab.upload_and_vanish(&format!("/{relative}"), &new_content(2 * MIB), 40)
        .await
        .expect("upload started");
    // The blocks it sent reach storage on the blocking pool, after their acknowledgements:
    // wait for the upload's temporary file (the upload was in progress).
    wait_for_upload_in_progress(&wharf.root, 1, notice_limit()).await;
    assert_previous_file_intact(&wharf, relative, &old).await;

    // Devices only create: an abandoned upload creates nothing.
    let devices = TftpClient::new(wharf.tftp, Wharf::tftp_source(DEVICES)).lockstep();
    devices.upload_and_vanish("/uploads/never.bin", &new_content(MIB), 100).await.expect("started");
    wait_for_no_temporary_files(&wharf.root, notice_limit()).await;
    assert!(!wharf.root.join("uploads/never.bin").exists(), "an abandoned upload was published");
    // A client that vanished does not block the name: the next upload creates it.
    devices.upload("/uploads/never.bin", b"complete").await.expect("a new upload");
    assert_eq!(wharf.read("uploads/never.bin"), b"complete");
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_killed_mid_upload_leave_the_previous_file() {
    let Some(clients) = RealClients::find() else { return };
    let wharf = Wharf::start().await;
    let local = wharf.base().join("client");
    let big = local.join("new.bin");
    std::fs::write(&big, new_content(8 * MIB)).expect("local file");
    let old = old_content();

    // No FTP client is killed here: a killed client's kernel may close its data connection
    // before its control connection, and then the upload is published (stream mode cannot
    // tell it from a finished one). ftp_killed_client.rs tests the rule that decides.

    // OpenSSH's sftp, limited to 4 Mbit/s.
    let relative = "exchange/openssh.bin";
    wharf.put(relative, &old);
    let batch = write_batch(&local, &format!("put {} /{relative}\n", big.display()));
    kill_mid_upload(&wharf, clients.openssh_sftp(&wharf, RW, &batch, &["-l", "4096"])).await;
    assert_previous_file_intact(&wharf, relative, &old).await;

    // tftp-hpa (lock-step, 512-byte blocks: 8 MiB take a while), as a device creating a file.
    let mut tftp = clients.tftp(&wharf, &["put", &big.display().to_string(), "/uploads/hpa.bin"]);
    tftp.current_dir(&local);
    kill_mid_upload(&wharf, tftp).await;
    wait_for_no_temporary_files(&wharf.root, notice_limit()).await;
    assert!(!wharf.root.join("uploads/hpa.bin").exists(), "a killed TFTP upload was published");
    wharf.stop().await;
}

fn write_batch(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("batch.txt");
    std::fs::write(&path, text).expect("batch file");
    path
}
