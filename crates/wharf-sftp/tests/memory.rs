//! The memory and descriptor budgets seen from a client: open uploads and directories are paid
//! for, reads go on without a cache once the budget is spent, open handles take descriptors
//! from a floor and then the process, and a connection gives back what it took.

mod common;

use std::time::Duration;

use common::{ALICE as USERS, Server, bounded, login_password, raw_sftp, sftp};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::AsyncReadExt as _;
use wharf_testkit::pattern;

const MIB: u64 = 1024 * 1024;

/// The message of a refused SFTP call, and checks that its status is a failure.
fn failure_message<T: std::fmt::Debug>(
    result: Result<T, russh_sftp::client::error::Error>,
) -> String {
    match result {
        Err(russh_sftp::client::error::Error::Status(status)) => {
            assert_eq!(status.status_code, StatusCode::Failure, "{status:?}");
            status.error_message
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_beyond_the_budget_are_refused_and_reads_go_on() {
    bounded(async {
        // A connection's fixed floor pays for one upload; its budget of 2 MiB for one more.
        let server = Server::start_with_memory(USERS, 2 * MIB, 64 * MIB).await;
        let data = pattern(3 * MIB as usize);
        server.share.put("alice/big.bin", &data);
        std::fs::create_dir_all(server.share.root.join("alice/dir")).expect("mkdir");
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let memory = &server.share.gateway.memory;
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let none = FileAttributes::empty;
        let first = raw.open("one.bin", flags, none()).await.expect("first upload").handle;
        assert_eq!(memory.in_use(), 0, "the floor pays for the first upload");
        let second = raw.open("two.bin", flags, none()).await.expect("second upload").handle;
        let paid = memory.in_use();
        assert!(paid > MIB as usize, "the budget pays for the second: {paid}");
        let refused = failure_message(raw.open("three.bin", flags, none()).await);
        assert!(refused.contains("memory"), "the reason is given: {refused}");
        assert!(!server.share.root.join("alice/three.bin").exists(), "nothing was touched");
        // Reads are never refused for memory, and answer right.
        let read = raw.open("big.bin", OpenFlags::READ, none()).await.expect("open").handle;
        for offset in [2 * MIB, 0, MIB + 12345] {
            let got = raw.read(read.clone(), offset, 32 * 1024).await.expect("read").data;
            let start = offset as usize;
            assert!(!got.is_empty() && got == data[start..start + got.len()], "at {offset}");
        }
        // Closing an upload gives its memory back: a third upload may open now.
        raw.write(second.clone(), 0, b"two".to_vec()).await.expect("write");
        raw.close(second).await.expect("close publishes");
        assert_eq!(memory.in_use(), 0);
        let third = raw.open("three.bin", flags, none()).await.expect("third upload").handle;
        // Directories are paid for too: they open until floor and budget are spent.
        let mut dirs = Vec::new();
        let refused = loop {
            assert!(dirs.len() < 200, "directories should run out of memory first");
            match raw.opendir("dir").await {
                Ok(dir) => dirs.push(dir.handle),
                Err(err) => break failure_message::<()>(Err(err)),
            }
        };
        assert!(refused.contains("memory") && !dirs.is_empty(), "{} open: {refused}", dirs.len());
        raw.close(third).await.expect("close publishes");
        let dir = raw.opendir("dir").await.expect("room again").handle;
        for handle in dirs.into_iter().chain([dir, first, read]) {
            raw.close(handle).await.expect("close");
        }
        assert_eq!(std::fs::read(server.share.root.join("alice/two.bin")).expect("two"), b"two");
        assert_eq!(memory.in_use(), 0, "everything given back");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_handles_take_their_descriptors_from_a_floor_then_the_process_budget() {
    bounded(async {
        let server = Server::start(USERS).await;
        server.share.put("alice/read.bin", b"read me");
        let gateway = &server.share.gateway;
        // Admission takes a connection's fixed worst case (with the handles' floor of 16),
        // whatever `max_open_handles` is; then room for exactly three more descriptors.
        let fixed = wharf_sftp::SftpConfig::default().descriptors_per_connection()
            + gateway.authenticator.users().max_mounts();
        gateway.descriptors.set_capacity(fixed + 3);
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        assert_eq!(gateway.descriptors.held(), fixed, "admitted without its handles");
        let none = FileAttributes::empty;
        // Sixteen reads (one descriptor each) are the floor: the process gives nothing more.
        let mut reads = Vec::new();
        for _ in 0..16 {
            reads.push(raw.open("read.bin", OpenFlags::READ, none()).await.expect("read").handle);
        }
        assert_eq!(gateway.descriptors.held(), fixed, "paid from the floor");
        // Then from the process: a read (1) and an upload (2).
        reads.push(raw.open("read.bin", OpenFlags::READ, none()).await.expect("a read").handle);
        assert_eq!(gateway.descriptors.held(), fixed + 1);
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let upload = raw.open("up.bin", flags, none()).await.expect("an upload").handle;
        assert_eq!(gateway.descriptors.held(), fixed + 3);
        let refused = failure_message(raw.open("read.bin", OpenFlags::READ, none()).await);
        assert!(refused.contains("descriptors"), "the reason is given: {refused}");
        let refused = failure_message(raw.opendir(".").await);
        assert!(refused.contains("descriptors"), "{refused}");
        // Closing gives them back.
        raw.write(upload.clone(), 0, b"up".to_vec()).await.expect("write");
        raw.close(upload).await.expect("close publishes");
        assert_eq!(gateway.descriptors.held(), fixed + 1);
        let dir = raw.opendir(".").await.expect("room again").handle;
        raw.close(dir).await.expect("close");
        for read in reads {
            raw.close(read).await.expect("close");
        }
        assert_eq!(gateway.descriptors.held(), fixed);
        assert_eq!(std::fs::read(server.share.root.join("alice/up.bin")).expect("up"), b"up");
        server.stop().await;
    })
    .await;
}
