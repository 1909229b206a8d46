//! The memory budget seen from a client: open uploads and directories are paid for, reads go
//! on without a cache once the budget is spent, and a connection gives back what it took.

mod common;

use std::time::Duration;

use common::{ALICE as USERS, Server, bounded, login_password, raw_sftp, sftp, status_code};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::AsyncReadExt as _;
use wharf_testkit::pattern;

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_directories_beyond_the_budget_are_refused_and_reads_go_on() {
    bounded(async {
        // A connection may hold 1 MiB beyond its fixed floor (which pays for one upload).
        let server = Server::start_with_memory(USERS, MIB, 64 * MIB).await;
        let data = pattern(3 * MIB as usize);
        server.share.put("alice/big.bin", &data);
        std::fs::create_dir_all(server.share.root.join("alice/dir")).expect("mkdir");
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let none = FileAttributes::empty;
        // The floor pays for the first upload, the budget for the second.
        let first = raw.open("one.bin", flags, none()).await.expect("first upload").handle;
        let second = raw.open("two.bin", flags, none()).await.expect("second upload").handle;
        assert_eq!(server.share.gateway.memory.in_use(), MIB as usize, "the second is paid");
        let refused = raw.open("three.bin", flags, none()).await;
        assert_eq!(status_code(refused), StatusCode::Failure, "a third upload is refused");
        assert_eq!(status_code(raw.opendir("dir").await), StatusCode::Failure, "so is a listing");
        assert!(
            !server.share.root.join("alice/three.bin").exists(),
            "a refused open touches nothing"
        );
        // Reads are never refused for memory: served exactly, and right.
        let read = raw.open("big.bin", OpenFlags::READ, none()).await.expect("open").handle;
        for offset in [2 * MIB, 0, MIB + 12345] {
            let got = raw.read(read.clone(), offset, 32 * 1024).await.expect("read").data;
            let start = offset as usize;
            assert!(got == data[start..start + got.len()], "bytes at {offset}");
            assert!(!got.is_empty());
        }
        assert_eq!(server.share.gateway.memory.in_use(), MIB as usize, "nothing cached");
        // Closing an upload gives its memory back: a directory may be opened again.
        raw.write(second.clone(), 0, b"two".to_vec()).await.expect("write");
        raw.close(second).await.expect("close publishes");
        let dir = raw.opendir("dir").await.expect("a listing now").handle;
        raw.close(dir).await.expect("close");
        raw.close(first).await.expect("close publishes");
        raw.close(read).await.expect("close");
        assert_eq!(std::fs::read(server.share.root.join("alice/two.bin")).expect("two"), b"two");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_gives_back_all_it_took_from_the_budget() {
    bounded(async {
        let server = Server::start_with_memory(USERS, 16 * MIB, 64 * MIB).await;
        let data = pattern(24 * MIB as usize);
        server.share.put("alice/big.bin", &data);
        let ssh = login_password(server.addr, "alice").await;
        let client = sftp(&ssh).await;
        let mut file = client.open("big.bin").await.expect("open");
        let mut received = Vec::new();
        file.read_to_end(&mut received).await.expect("read");
        assert!(received == data, "the download is byte-exact");
        drop(file);
        // The connection stays open; once its replies are out and the file is closed, the
        // budget is whole again (blocks and replies alike).
        let memory = &server.share.gateway.memory;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while memory.in_use() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} bytes still reserved",
                memory.in_use()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.close().await.expect("close");
        server.stop().await;
    })
    .await;
}
