//! Interrupted uploads with the share in a bucket of a real S3-compatible server: a client
//! that disappears in the middle of replacing an object, on FTP, SFTP and TFTP, leaves the
//! previous object byte-identical, lists nothing new, and leaves no multipart upload open.
//! Each upload is several parts long and the client vanishes after more than two, so a
//! multipart upload is open at the store when it goes (the positive signal the test waits for).

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::AsyncWriteExt as _;
use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::clients::sftp::SftpClient;
use wharf_e2e::clients::tftp::TftpClient;
use wharf_e2e::interrupted::{assert_previous_file_intact, notice_limit};
use wharf_e2e::server::{LAB, RW};
use wharf_e2e::{MIB, Wharf, step};
use wharf_testkit::pattern;

/// Several parts.
const NEW_SIZE: usize = 24 * MIB;
/// What the client sends before it goes: more than two parts, since the store's writer keeps
/// a full part back until the next one is full (wharf_vfs::object::UPLOAD_MEMORY).
const SENT: usize = 2 * wharf_vfs::object::PART_SIZE + 2 * MIB;

fn old_content() -> Vec<u8> {
    pattern(MIB + 11)
}

fn new_content() -> Vec<u8> {
    pattern(NEW_SIZE).into_iter().map(|byte| !byte).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_gone_mid_upload_leave_the_previous_object_and_no_multipart_upload() {
    let Some(wharf) = Wharf::start_on_bucket().await else { return };
    wharf.make_folder("exchange");
    let old = old_content();
    let new = new_content();

    // FTP: the control connection closes, then the data connection.
    let relative = "exchange/ftp.bin";
    wharf.put(relative, &old);
    let mut ftp = FtpControl::login_over(&wharf, RW, false).await;
    let mut data = ftp.start_transfer(format!("STOR /{relative}").as_bytes()).await.expect("150");
    step("send", data.write_all(&new[..SENT])).await.expect("send");
    step("flush", data.flush()).await.expect("flush");
    wharf.wait_for_upload_in_progress(1, notice_limit()).await;
    drop(ftp);
    drop(data);
    assert_previous_file_intact(&wharf, relative, &old).await;

    // SFTP: the connection is cut before CLOSE.
    let relative = "exchange/sftp.bin";
    wharf.put(relative, &old);
    let (sftp, cut) = SftpClient::login_key_cuttable(&wharf, RW).await;
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let handle = sftp.raw.open(format!("/{relative}"), flags, FileAttributes::empty()).await;
    let handle = handle.expect("open for replacement").handle;
    for (index, chunk) in new[..SENT].chunks(32 * 1024).enumerate() {
        let offset = (index * 32 * 1024) as u64;
        sftp.raw.write(handle.as_str(), offset, chunk.to_vec()).await.expect("write");
    }
    wharf.wait_for_upload_in_progress(1, notice_limit()).await;
    cut.cut();
    drop(sftp);
    assert_previous_file_intact(&wharf, relative, &old).await;

    // TFTP: the lab replaces a file in /lab and stops answering after more than a part.
    let relative = "lab/tftp.bin";
    wharf.put(relative, &old);
    let lab = TftpClient::new(wharf.tftp, Wharf::tftp_source(LAB));
    let blocks = (SENT / 8192) as u64;
    lab.upload_and_vanish(&format!("/{relative}"), &new, blocks).await.expect("upload started");
    wharf.wait_for_upload_in_progress(1, notice_limit()).await;
    assert_previous_file_intact(&wharf, relative, &old).await;

    wharf.stop().await;
}
