//! Concurrency: 100 FTP sessions, 50 SFTP sessions and 50 TFTP reads at once, all
//! byte-exact; and a file read over SFTP while it is being replaced over FTP is always the
//! whole old or the whole new content, never a mix.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Barrier, oneshot};
use wharf_e2e::clients::Session;
use wharf_e2e::clients::ftp::Suppa;
use wharf_e2e::clients::sftp::SftpClient;
use wharf_e2e::clients::tftp::TftpClient;
use wharf_e2e::server::{DEVICES, RW};
use wharf_e2e::{MIB, Protocol, Wharf, step, within};
use wharf_testkit::pattern;

const FTP_SESSIONS: usize = 100;
/// FTPS sessions on top (TLS handshakes cost CPU: a 2-core machine stays within budget).
const FTPS_SESSIONS: usize = 20;
const SFTP_SESSIONS: usize = 50;
const TFTP_READS: usize = 50;

/// Where one session stores its own file.
fn own_path(protocol: Protocol, index: usize) -> String {
    format!("/exchange/{}-{index}.bin", protocol.name().to_lowercase())
}

/// Bytes unique to one session.
fn own_content(protocol: Protocol, index: usize) -> Vec<u8> {
    let salt = (index as u8).wrapping_mul(31) ^ (protocol as u8).wrapping_mul(101);
    pattern(64 * 1024 + index).into_iter().map(|byte| byte ^ salt).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_at_once_are_byte_exact() {
    let wharf = Wharf::start().await;
    let shared = Arc::new(pattern(MIB + 333));
    wharf.put("firmware/shared.bin", &shared);
    std::fs::create_dir_all(wharf.root.join("exchange")).expect("exchange");
    // Everyone logs in (TFTP clients get ready), then all transfers start together.
    let start = Arc::new(Barrier::new(FTP_SESSIONS + FTPS_SESSIONS + SFTP_SESSIONS + TFTP_READS));
    let clock = Instant::now();
    let mut tasks = Vec::new();
    let wharf = Arc::new(wharf);
    let sessions = [
        (Protocol::Ftp, FTP_SESSIONS),
        (Protocol::Ftps, FTPS_SESSIONS),
        (Protocol::Sftp, SFTP_SESSIONS),
    ];
    for (protocol, count) in sessions {
        for index in 0..count {
            let (start, shared, wharf) = (start.clone(), shared.clone(), wharf.clone());
            tasks.push(tokio::spawn(async move {
                let mut session = Session::open(&wharf, protocol, RW).await;
                start.wait().await;
                let own = own_content(protocol, index);
                let path = own_path(protocol, index);
                session.upload(&path, &own).await.expect("upload");
                let got = session.download("/firmware/shared.bin").await.expect("download");
                assert!(got == *shared, "{protocol} session {index}: shared file differs");
                let back = session.download(&path).await.expect("download own");
                assert!(back == own, "{protocol} session {index}: own file differs");
                session.close().await;
            }));
        }
    }
    for index in 0..TFTP_READS {
        let (start, shared) = (start.clone(), shared.clone());
        let tftp = TftpClient::new(wharf.tftp, Wharf::tftp_source(DEVICES));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let got = tftp.download("/firmware/shared.bin").await.expect("TFTP download");
            assert!(got.data == *shared, "TFTP read {index}: shared file differs");
        }));
    }
    within(std::time::Duration::from_secs(240), "200 clients", async {
        for task in tasks {
            task.await.expect("client task");
        }
    })
    .await;
    eprintln!(
        "{FTP_SESSIONS} FTP + {FTPS_SESSIONS} FTPS + {SFTP_SESSIONS} SFTP sessions and \
         {TFTP_READS} TFTP reads: {:.1?}",
        clock.elapsed()
    );
    for (protocol, count) in sessions {
        for index in 0..count {
            let stored = wharf.read(own_path(protocol, index).trim_start_matches('/'));
            assert!(stored == own_content(protocol, index), "{protocol} session {index}");
        }
    }
    let wharf = Arc::into_inner(wharf).expect("every client task ended");
    wharf.stop().await;
}

/// Rounds of replacing the file.
const ROUNDS: usize = 12;
/// Reads over SFTP while one replacement runs, at most.
const READS_PER_ROUND: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_over_ftp_is_read_whole_over_sftp() {
    let wharf = Wharf::start().await;
    // Two versions of different sizes: a mix would show as a wrong length or wrong bytes.
    let versions = [Arc::new(pattern(MIB + 17)), Arc::new(pattern(2 * MIB + 3))];
    wharf.put("exchange/flip.bin", &versions[0]);
    let sftp = SftpClient::login_key(&wharf, RW).await;
    let mut ftp = Suppa::login(wharf.ftp, RW).await;
    let mut reads_during_uploads = 0;
    for round in 0..ROUNDS {
        let old = versions[round % 2].clone();
        let new = versions[(round + 1) % 2].clone();
        // The upload sends half, waits until the reader has read once, then sends the rest.
        let (half_sent, half_sent_rx) = oneshot::channel::<()>();
        let (read_once, read_once_rx) = oneshot::channel::<()>();
        let upload = async {
            let mut stream = step("STOR", ftp.inner().put_with_stream("/exchange/flip.bin"))
                .await
                .expect("STOR");
            let middle = new.len() / 2;
            step("first half", stream.write_all(&new[..middle])).await.expect("send");
            step("flush", stream.flush()).await.expect("flush");
            let _ = half_sent.send(());
            let _ = step("reader", read_once_rx).await;
            for chunk in new[middle..].chunks(256 * 1024) {
                step("rest", stream.write_all(chunk)).await.expect("send");
            }
            step("226", stream.finish()).await.expect("upload completes");
        };
        let reads = async {
            step("half sent", half_sent_rx).await.expect("upload started");
            let mid = sftp.download("/exchange/flip.bin").await.expect("read mid-upload");
            assert!(mid == *old, "round {round}: a read during the upload is the old file");
            let _ = read_once.send(());
            let mut count = 1;
            // More reads while the rest arrives: each must be one whole version.
            while count < READS_PER_ROUND {
                let got = sftp.download("/exchange/flip.bin").await.expect("read");
                assert!(
                    got == *old || got == *new,
                    "round {round}: read {count} is a mix ({} bytes)",
                    got.len()
                );
                count += 1;
                if got == *new {
                    break;
                }
            }
            count
        };
        let ((), count) = tokio::join!(upload, reads);
        reads_during_uploads += count;
        let after = sftp.download("/exchange/flip.bin").await.expect("read after");
        assert!(after == *new, "round {round}: the finished upload is the new file");
    }
    eprintln!("{reads_during_uploads} SFTP reads during {ROUNDS} FTP replacements, none mixed");
    assert!(wharf_e2e::tree::temporary_files(&wharf.root).is_empty());
    ftp.quit().await;
    sftp.close().await;
    wharf.stop().await;
}
