//! A download counts what the client was sent, not what the server read ahead for it: the
//! audit event (and so the transfer log and metrics) of a file read only in part shows the
//! bytes the client asked for and got.

mod common;

use common::{Server, bounded, login_password, raw_sftp};
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use wharf_testkit::{CapturedLog, pattern};

const USERS: &str = "users:\n  - name: alice\n    password: \"$HASH\"\n    home: alice\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_read_file_counts_only_the_bytes_sent() {
    let log = CapturedLog::global();
    bounded(async {
        let server = Server::start(USERS).await;
        server.share.put("alice/big.bin", &pattern(8 * 1024 * 1024));
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let handle = raw
            .open("big.bin", OpenFlags::READ, FileAttributes::empty())
            .await
            .expect("open")
            .handle;
        // Two sequential reads: the server reads several blocks (256 KiB each) ahead.
        for offset in [0, 32 * 1024] {
            let data = raw.read(handle.as_str(), offset, 32 * 1024).await.expect("read").data;
            assert_eq!(data.len(), 32 * 1024);
        }
        // And one far away, answered from a block of its own.
        let data = raw.read(handle.as_str(), 5 * 1024 * 1024 + 7, 1000).await.expect("read");
        assert_eq!(data.data.len(), 1000);
        raw.close(handle).await.expect("close");
        // The close answers after the download's audit event is written.
        server.stop().await;
    })
    .await;
    let events = log.audit_events("download");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("bytes=66536"), "{events:?}");
}
