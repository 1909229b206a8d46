//! What an interrupted upload must leave behind, checked the same way for every protocol:
//! the previous file byte-identical and listed with its old size, no temporary file in any
//! listing, and none on disk (no open multipart upload on a bucket) once the server noticed
//! the client is gone.

use std::process::{Command, Stdio};
use std::time::Duration;

use wharf_testkit::ChildGuard;

use crate::clients::ftp::{FtpControl, parse_mlsd};
use crate::clients::sftp::SftpClient;
use crate::server::{RW, TFTP_RETRIES, TFTP_TIMEOUT, Wharf};
use crate::tree::{is_temporary_name, wait_for_upload_in_progress};

/// How long the server may take to notice a vanished client and drop its upload: at once
/// for a closed connection, after its retransmissions for TFTP.
pub fn notice_limit() -> Duration {
    TFTP_TIMEOUT * (TFTP_RETRIES + 2) + Duration::from_secs(10)
}

/// The folder's listing over FTP and SFTP shows `name` with the old size and no temporary
/// file.
pub async fn assert_listings_clean(wharf: &Wharf, folder: &str, name: &str, size: usize) {
    let mut ftp = FtpControl::login(wharf.ftp, RW).await;
    let listing = ftp.listing("MLSD", Some(folder.as_bytes())).await.expect("MLSD");
    let entries = parse_mlsd(&listing);
    assert!(!entries.iter().any(|e| is_temporary_name(&e.name)), "FTP lists a temporary file");
    let entry = entries.iter().find(|e| e.name == name);
    assert_eq!(entry.and_then(|e| e.size), Some(size as u64), "FTP listing of {name}: {listing}");
    for verb in ["LIST -a", "NLST -a"] {
        let listing = ftp.listing(verb, Some(folder.as_bytes())).await.expect("listing");
        assert!(!listing.contains(".wharf-tmp"), "FTP {verb}: {listing}");
    }
    let sftp = SftpClient::login_key(wharf, RW).await;
    let entries = sftp.list(folder).await.expect("SFTP readdir");
    assert!(!entries.iter().any(|e| is_temporary_name(&e.name)), "SFTP lists a temporary file");
    let entry = entries.iter().find(|e| e.name == name);
    assert_eq!(entry.and_then(|e| e.size), Some(size as u64), "SFTP listing of {name}");
    sftp.close().await;
}

/// After the client vanished: the old file is intact and listed, nothing temporary remains.
pub async fn assert_previous_file_intact(wharf: &Wharf, relative: &str, old: &[u8]) {
    let (folder, name) = relative.rsplit_once('/').expect("folder/name");
    assert_listings_clean(wharf, &format!("/{folder}"), name, old.len()).await;
    wharf.wait_for_no_unfinished_upload(notice_limit()).await;
    assert!(wharf.read(relative) == old, "{relative}: the previous file changed");
    assert_listings_clean(wharf, &format!("/{folder}"), name, old.len()).await;
}

/// Starts `command` (a real client uploading), waits until its upload is under way on the
/// server, and kills it.
pub async fn kill_mid_upload(wharf: &Wharf, mut command: Command) {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let child = ChildGuard(command.spawn().expect("start the client"));
    // A real client takes its time to start and log in on a loaded machine; the wait ends
    // as soon as its upload shows.
    wait_for_upload_in_progress(&wharf.root, 1, crate::STEP_LIMIT).await;
    drop(child); // SIGKILL, then reaped
}
