//! The matrix: for every pair (upload protocol, download protocol) among the protocols the
//! server serves, a file written by one is listed by the other (where it can list) and read
//! back byte-identical, at 0 B, 1 B, 512 B, 1 MiB and 40 MiB.
//!
//! Where the files go: TFTP devices may only create files in `/uploads` and read `/firmware`,
//! so a TFTP upload lands in `/uploads` (read back over TFTP by the `lab` identity, the one
//! TFTP identity that may read it), a file for a TFTP download is written into `/firmware` by
//! the read-write user, and FTP/SFTP pairs use `/exchange`.
//!
//! TFTP at 512-byte blocks is lock-step (one round trip per block), so only two 40 MiB
//! transfers use them: a download and an upload, each crossing the block-number rollover
//! (81,920 blocks). The others ask for 8 KiB blocks in windows of 8.

use std::time::Instant;

use crate::clients::{Protocol, Sessions};
use crate::server::{DEVICES, LAB, RW};
use crate::{MATRIX_SIZES, Wharf, step};
use wharf_testkit::pattern;

const LOCKSTEP_SIZE: usize = 40 * 1024 * 1024;

/// Content unique to one cell of the matrix, so a file read from the wrong place never
/// matches.
fn content(cell: u8, size: usize) -> Vec<u8> {
    pattern(size).into_iter().map(|byte| byte ^ cell.wrapping_mul(37).wrapping_add(1)).collect()
}

/// Where a file moving from `up` to `down` is stored, and which identity does each side.
fn route(up: Protocol, down: Protocol) -> (&'static str, &'static str, &'static str) {
    match (up, down) {
        (Protocol::Tftp, Protocol::Tftp) => ("uploads", DEVICES, LAB),
        (Protocol::Tftp, _) => ("uploads", DEVICES, RW),
        (_, Protocol::Tftp) => ("firmware", RW, DEVICES),
        _ => ("exchange", RW, RW),
    }
}

/// Runs the matrix on `wharf` and stops it. Used by `tests/matrix.rs` (local share) and
/// `tests/matrix_on_object_storage.rs` (a bucket), two test binaries so that the two
/// matrices, each loading both CPUs, never run at once.
pub async fn run_matrix(wharf: Wharf) {
    wharf.make_folder("exchange");
    let protocols = Protocol::ALL;
    eprintln!("matrix protocols: {protocols:?}");
    // One logged-in session per protocol and identity, reused for every cell.
    let mut sessions = Sessions::new(&wharf);
    let mut cell = 0u8;
    let mut lockstep_download_done = false;
    let mut lockstep_upload_done = false;
    let started = Instant::now();
    for &up in &protocols {
        for &down in &protocols {
            let (folder, uploader, downloader) = route(up, down);
            for size in MATRIX_SIZES {
                cell = cell.wrapping_add(1);
                let data = content(cell, size);
                let name = format!("{}-to-{}-{size}.bin", up.name(), down.name()).to_lowercase();
                let path = format!("/{folder}/{name}");
                let what = format!("{up} -> {down}, {size} B");

                // Two 40 MiB TFTP transfers in plain lock-step at 512-byte blocks.
                let lockstep_up = up == Protocol::Tftp
                    && size == LOCKSTEP_SIZE
                    && !std::mem::replace(&mut lockstep_upload_done, true);
                let lockstep_down = down == Protocol::Tftp
                    && up != Protocol::Tftp
                    && size == LOCKSTEP_SIZE
                    && !std::mem::replace(&mut lockstep_download_done, true);

                let clock = Instant::now();
                let session = sessions.get(up, uploader).await;
                if let Some(tftp) = session.tftp() {
                    let client = tftp.clone();
                    let client = if lockstep_up { client.lockstep() } else { client };
                    let uploaded = client.upload(&path, &data).await;
                    uploaded.unwrap_or_else(|err| panic!("{what}: upload: {err:?}"));
                } else {
                    let uploaded = session.upload(&path, &data).await;
                    uploaded.unwrap_or_else(|err| panic!("{what}: upload: {err:?}"));
                }
                let upload_time = clock.elapsed();
                assert!(
                    wharf.read(&format!("{folder}/{name}")) == data,
                    "{what}: the stored file differs from what was sent"
                );

                let session = sessions.get(down, downloader).await;
                if let Some(listing) = session.list(&format!("/{folder}")).await {
                    let entries = listing.unwrap_or_else(|err| panic!("{what}: list: {err:?}"));
                    let entry = entries.iter().find(|entry| entry.name == name);
                    let entry = entry.unwrap_or_else(|| panic!("{what}: {name} not listed"));
                    assert_eq!(entry.size, Some(size as u64), "{what}: listed size");
                    assert!(!entry.is_dir, "{what}: listed as a folder");
                }
                let clock = Instant::now();
                let received = if let Some(tftp) = session.tftp() {
                    let client = tftp.clone();
                    let client = if lockstep_down { client.lockstep() } else { client };
                    let received = client.download(&path).await;
                    let received =
                        received.unwrap_or_else(|err| panic!("{what}: download: {err:?}"));
                    if lockstep_down {
                        assert_eq!(received.blksize, 512);
                        assert!(received.rolled_over, "{what}: block numbers rolled over");
                    }
                    received.data
                } else {
                    let received = session.download(&path).await;
                    received.unwrap_or_else(|err| panic!("{what}: download: {err:?}"))
                };
                assert_eq!(received.len(), size, "{what}: downloaded size");
                assert!(received == data, "{what}: downloaded bytes differ");
                if size == LOCKSTEP_SIZE {
                    eprintln!(
                        "{what}: upload {upload_time:.1?}{}, download {:.1?}{}",
                        if lockstep_up { " (TFTP lock-step, 512 B blocks)" } else { "" },
                        clock.elapsed(),
                        if lockstep_down { " (TFTP lock-step, 512 B blocks)" } else { "" },
                    );
                }
            }
        }
    }
    assert!(lockstep_download_done && lockstep_upload_done, "both lock-step transfers ran");
    eprintln!("matrix of {} pairs in {:.1?}", protocols.len() * protocols.len(), started.elapsed());
    step("close", sessions.close()).await;
    assert!(crate::tree::temporary_files(&wharf.root).is_empty(), "no temporary file left");
    assert_eq!(wharf.open_multipart_uploads(), 0, "no multipart upload left open");
    wharf.stop().await;
}
