//! A user racing their own quota: N new uploads opened at once from N sessions, against a
//! files quota of N-1. Each upload takes its place in the file count when it opens, so exactly
//! N-1 open and publish and the last is refused at its open with the quota reply of
//! docs/ERRORS.md, on FTP and on SFTP. All are open before any is written or closed: a quota
//! that only counted published files would let all N through.

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::AsyncWriteExt as _;
use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::clients::sftp::{SftpClient, refusal};
use wharf_e2e::errors_doc::assert_refused_as;
use wharf_e2e::server::{COUNTED, COUNTED_FILES};
use wharf_e2e::tree::temporary_files;
use wharf_e2e::{Wharf, step};
use wharf_vfs::ErrorKind;

/// Uploads opened at once: one more than the quota allows.
const N: usize = COUNTED_FILES + 1;

const CONTENT: &[u8] = b"one of several uploads racing the file quota";

/// The files in `counted`'s home, by name; no temporary file (or open multipart upload) may
/// be left.
fn published(wharf: &Wharf) -> Vec<String> {
    let home = wharf.root.join("counted");
    assert!(temporary_files(&home).is_empty(), "temporary files left: {home:?}");
    assert_eq!(wharf.open_multipart_uploads(), 0, "multipart uploads left open");
    let names = wharf.file_names("counted");
    for name in &names {
        assert_eq!(wharf.read(&format!("counted/{name}")), CONTENT, "{name}");
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_new_ftp_uploads_cannot_pass_the_file_quota() {
    ftp_uploads_race_the_file_quota(Wharf::start().await).await;
}

/// The same with the whole share in a bucket of a real S3-compatible server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_new_ftp_uploads_cannot_pass_the_file_quota_on_object_storage() {
    let Some(wharf) = Wharf::start_on_bucket().await else { return };
    ftp_uploads_race_the_file_quota(wharf).await;
}

async fn ftp_uploads_race_the_file_quota(wharf: Wharf) {
    let mut controls = Vec::new();
    for _ in 0..N {
        controls.push(FtpControl::login(wharf.ftp, COUNTED).await);
    }
    // Open every upload (STOR answered 150, data connection up) before writing any.
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for (i, control) in controls.iter_mut().enumerate() {
        match control.start_transfer(format!("STOR /upload-{i}").as_bytes()).await {
            Ok(data) => open.push((i, data)),
            Err(reply) => refused.push(reply.refusal()),
        }
    }
    for (_, data) in open.iter_mut() {
        step("FTP upload data", data.write_all(CONTENT)).await.expect("send data");
    }
    let opened: Vec<usize> = open.iter().map(|(i, _)| *i).collect();
    for (i, mut data) in open {
        step("FTP upload close", data.shutdown()).await.expect("close data");
        drop(data);
        let done = controls[i].reply().await;
        assert_eq!(done.code, 226, "upload {i}: {done:?}");
    }
    assert_eq!(opened.len(), N - 1, "uploads opened");
    assert_eq!(refused.len(), 1, "uploads refused");
    assert_refused_as(&refused[0], ErrorKind::QuotaExceeded, "FTP STOR past the file quota");
    let expected: Vec<String> = opened.iter().map(|i| format!("upload-{i}")).collect();
    assert_eq!(published(&wharf), expected);
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_new_sftp_uploads_cannot_pass_the_file_quota() {
    let wharf = Wharf::start().await;
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(SftpClient::login_key(&wharf, COUNTED).await);
    }
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let opened = step(
            "sftp open",
            client.raw.open(format!("/upload-{i}"), flags, FileAttributes::empty()),
        )
        .await;
        match opened {
            Ok(handle) => open.push((i, handle.handle)),
            Err(err) => refused.push(refusal(err)),
        }
    }
    for (i, handle) in &open {
        let write = clients[*i].raw.write(handle.as_str(), 0, CONTENT.to_vec());
        step("sftp write", write).await.expect("write");
    }
    for (i, handle) in &open {
        step("sftp close", clients[*i].raw.close(handle.as_str())).await.expect("publish");
    }
    assert_eq!(open.len(), N - 1, "uploads opened");
    assert_eq!(refused.len(), 1, "uploads refused");
    assert_refused_as(&refused[0], ErrorKind::QuotaExceeded, "SFTP OPEN past the file quota");
    let expected: Vec<String> = open.iter().map(|(i, _)| format!("upload-{i}")).collect();
    assert_eq!(published(&wharf), expected);
    wharf.stop().await;
}
