//! Transfers and file operations end to end with a Rust client (russh + russh-sftp).

mod common;

use common::{
    Server, bounded, framed, login_password, raw_sftp, read_packet, sftp, sftp_stream, status_code,
};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wharf_testkit::{pattern, tree_digest};

const USERS: &str = r#"
users:
  - name: alice
    password: "$HASH"
    home: alice
  - name: reader
    password: "$HASH"
    home: alice
    permissions: { /: [read] }
  - name: nosetattr
    password: "$HASH"
    home: alice
    permissions:
      /: [list, download, upload, overwrite, append, delete, rename, mkdir, rmdir]
"#;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_are_byte_exact_both_ways() {
    bounded(async {
        let server = Server::start(USERS).await;
        let ssh = login_password(server.addr, "alice").await;
        let sftp = sftp(&ssh).await;
        for size in [0, 1, MIB, 100 * MIB] {
            let data = pattern(size);
            let name = format!("up-{size}.bin");
            let mut file = sftp.create(name.as_str()).await.expect("create");
            file.write_all(&data).await.expect("write");
            file.shutdown().await.expect("close");
            let on_disk = std::fs::read(server.share.root.join("alice").join(&name)).expect("read");
            assert!(on_disk == data, "upload of {size} bytes differs");

            let down = format!("down-{size}.bin");
            server.share.put(&format!("alice/{down}"), &data);
            let mut file = sftp.open(down.as_str()).await.expect("open");
            let mut received = Vec::with_capacity(size);
            file.read_to_end(&mut received).await.expect("read");
            assert!(
                received == data,
                "download of {size} bytes differs ({} bytes)",
                received.len()
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(server.share.root.join("alice"))
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".wharf-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary upload files left: {leftovers:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_out_of_order_reads_get_the_right_bytes() {
    bounded(async {
        let server = Server::start(USERS).await;
        let data = pattern(3 * MIB + 12345);
        server.share.put("alice/big.bin", &data);
        let ssh = login_password(server.addr, "alice").await;
        let raw = std::sync::Arc::new(raw_sftp(&ssh).await);
        let handle = raw
            .open("big.bin", OpenFlags::READ, FileAttributes::empty())
            .await
            .expect("open")
            .handle;
        // Backwards, straddling blocks, past the end: all at once.
        let mut reads = Vec::new();
        for (offset, len) in [
            (3 * MIB as u64, 32 * 1024),
            (0, 32 * 1024),
            (256 * 1024 - 100, 200),
            (2 * MIB as u64 - 7, 300 * 1024),
            (data.len() as u64 - 10, 32 * 1024),
            (data.len() as u64, 32 * 1024),
        ] {
            let raw = raw.clone();
            let handle = handle.clone();
            reads.push(tokio::spawn(
                async move { (offset, len, raw.read(handle, offset, len).await) },
            ));
        }
        for read in reads {
            let (offset, len, result) = read.await.expect("task");
            let start = offset as usize;
            if start >= data.len() {
                assert_eq!(status_code(result), StatusCode::Eof);
                continue;
            }
            let got = result.expect("read").data;
            assert!(!got.is_empty() && got.len() <= len as usize, "{offset}: {} bytes", got.len());
            assert!(got == data[start..start + got.len()], "bytes at {offset} differ");
        }
        raw.close(handle).await.expect("close");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_past_the_largest_file_position_are_refused_not_wrapped() {
    const MAX_OFFSET: u64 = i64::MAX as u64;
    bounded(async {
        let server = Server::start(USERS).await;
        server.share.put("alice/small.bin", b"0123456789");
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let read = raw
            .open("small.bin", OpenFlags::READ, FileAttributes::empty())
            .await
            .expect("open")
            .handle;
        for offset in [MAX_OFFSET + 1, u64::MAX - 4, u64::MAX] {
            let refused = raw.read(read.clone(), offset, 32 * 1024).await;
            assert_eq!(status_code(refused), StatusCode::BadMessage, "READ at {offset}");
        }
        // At the largest position itself there is simply nothing to read.
        assert_eq!(status_code(raw.read(read.clone(), MAX_OFFSET, 10).await), StatusCode::Eof);
        assert_eq!(raw.read(read.clone(), 2, 3).await.expect("still served").data, b"234");
        raw.close(read).await.expect("close");

        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let write = raw.open("up.bin", flags, FileAttributes::empty()).await.expect("open").handle;
        // Ends one past the largest position, and ends past 2^64 (would wrap to 5).
        for offset in [MAX_OFFSET - 9, u64::MAX - 4] {
            let refused = raw.write(write.clone(), offset, b"0123456789".to_vec()).await;
            assert_eq!(status_code(refused), StatusCode::BadMessage, "WRITE at {offset}");
        }
        // A refused write loses nothing: the upload goes on and is published whole.
        raw.write(write.clone(), 0, b"kept".to_vec()).await.expect("write at 0");
        raw.close(write).await.expect("close publishes");
        let uploaded = std::fs::read(server.share.root.join("alice/up.bin")).expect("published");
        assert_eq!(uploaded, b"kept");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_user_is_refused_every_write() {
    bounded(async {
        let server = Server::start(USERS).await;
        server.share.put("alice/keep.txt", b"keep me");
        server.share.put("alice/dir/inner.txt", b"inner");
        std::fs::create_dir_all(server.share.root.join("alice/empty")).expect("mkdir");
        let before = tree_digest(&server.share.root);
        let ssh = login_password(server.addr, "reader").await;
        let raw = raw_sftp(&ssh).await;
        let write_flags = [
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE,
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::APPEND,
            OpenFlags::WRITE | OpenFlags::CREATE,
        ];
        for flags in write_flags {
            for path in ["keep.txt", "new.txt", "dir/inner.txt"] {
                let result = raw.open(path, flags, FileAttributes::empty()).await;
                assert_eq!(status_code(result), StatusCode::PermissionDenied, "{path} {flags:?}");
            }
        }
        for flags in [OpenFlags::WRITE | OpenFlags::APPEND, OpenFlags::WRITE] {
            let result = raw.open("keep.txt", flags, FileAttributes::empty()).await;
            assert_eq!(status_code(result), StatusCode::PermissionDenied, "{flags:?}");
        }
        let mode = FileAttributes { permissions: Some(0o600), ..FileAttributes::empty() };
        assert_eq!(status_code(raw.setstat("keep.txt", mode).await), StatusCode::PermissionDenied);
        assert_eq!(status_code(raw.remove("keep.txt").await), StatusCode::PermissionDenied);
        assert_eq!(
            status_code(raw.rename("keep.txt", "moved.txt").await),
            StatusCode::PermissionDenied
        );
        assert_eq!(
            status_code(raw.mkdir("newdir", FileAttributes::empty()).await),
            StatusCode::PermissionDenied
        );
        assert_eq!(status_code(raw.rmdir("empty").await), StatusCode::PermissionDenied);
        assert_eq!(
            status_code(raw.symlink("link", "keep.txt").await),
            StatusCode::OpUnsupported,
            "symbolic links are never created"
        );
        // Reading still works.
        let handle =
            raw.open("keep.txt", OpenFlags::READ, FileAttributes::empty()).await.expect("open");
        assert_eq!(raw.read(handle.handle.as_str(), 0, 100).await.expect("read").data, b"keep me");
        assert_eq!(tree_digest(&server.share.root), before, "a refused write changed the tree");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_stay_inside_the_users_root() {
    bounded(async {
        let server = Server::start(USERS).await;
        server.share.put("alice/mine.txt", b"mine");
        server.share.put("other/secret.txt", b"secret");
        let ssh = login_password(server.addr, "alice").await;
        let sftp = sftp(&ssh).await;
        for path in [".", "..", "../..", "/", "/../../..", ""] {
            assert_eq!(sftp.canonicalize(path).await.expect("realpath"), "/", "{path:?}");
        }
        assert_eq!(sftp.read("../../alice/../mine.txt").await.expect("read"), b"mine");
        let sentinel = server.share.outside.join("sentinel.txt");
        let escapes = [
            "../other/secret.txt".to_owned(),
            "../../outside/sentinel.txt".to_owned(),
            sentinel.display().to_string(),
            "/etc/passwd".to_owned(),
        ];
        for path in &escapes {
            assert_eq!(
                status_code(sftp.read(path.as_str()).await),
                StatusCode::NoSuchFile,
                "{path}"
            );
        }
        // Writes through `..` land inside the user's root.
        let mut file = sftp.create("../../escaped.txt").await.expect("create");
        file.write_all(b"x").await.expect("write");
        file.shutdown().await.expect("close");
        assert!(server.share.root.join("alice/escaped.txt").exists());
        // An absolute host path is a path inside the user's root, where it does not exist.
        let host_path = sentinel.display().to_string();
        let created = sftp.create(host_path.as_str()).await.map(|_| ());
        assert_eq!(status_code(created), StatusCode::NoSuchFile);
        server.share.assert_outside_untouched();
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setattr_needs_its_permission() {
    bounded(async {
        let server = Server::start(USERS).await;
        let file = server.share.put("alice/f.txt", b"data");
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let attrs = FileAttributes {
            permissions: Some(0o600),
            atime: Some(1_000_000_000),
            mtime: Some(1_000_000_000),
            ..FileAttributes::empty()
        };
        raw.setstat("f.txt", attrs.clone()).await.expect("setstat");
        let meta = std::fs::metadata(&file).expect("meta");
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.mtime(), 1_000_000_000);
        let stat = raw.stat("f.txt").await.expect("stat").attrs;
        assert_eq!(stat.permissions.map(|p| p & 0o777), Some(0o600));
        assert_eq!(stat.size, Some(4));
        let size_change = FileAttributes { size: Some(1), ..FileAttributes::empty() };
        assert_eq!(status_code(raw.setstat("f.txt", size_change).await), StatusCode::OpUnsupported);

        let ssh = login_password(server.addr, "nosetattr").await;
        let raw = raw_sftp(&ssh).await;
        let chmod = FileAttributes { permissions: Some(0o644), ..FileAttributes::empty() };
        assert_eq!(status_code(raw.setstat("f.txt", chmod).await), StatusCode::PermissionDenied);
        assert_eq!(std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777, 0o600);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_flags_map_to_uploads_and_resumes() {
    bounded(async {
        let server = Server::start(USERS).await;
        let path = server.share.put("alice/log.txt", b"one\n");
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let none = FileAttributes::empty;

        // APPEND: written at the end whatever the offset.
        let h =
            raw.open("log.txt", OpenFlags::WRITE | OpenFlags::APPEND, none()).await.expect("open");
        raw.write(h.handle.as_str(), 0, b"two\n".to_vec()).await.expect("write");
        raw.close(h.handle).await.expect("close");
        assert_eq!(std::fs::read(&path).expect("read"), b"one\ntwo\n");

        // WRITE alone: in place at the client's offset (a resume).
        let h = raw.open("log.txt", OpenFlags::WRITE, none()).await.expect("open");
        raw.write(h.handle.as_str(), 8, b"three\n".to_vec()).await.expect("write");
        raw.close(h.handle).await.expect("close");
        assert_eq!(std::fs::read(&path).expect("read"), b"one\ntwo\nthree\n");

        // CREAT|TRUNC: atomic; the old content stays until close.
        let h = raw
            .open("log.txt", OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, none())
            .await
            .expect("open");
        raw.write(h.handle.as_str(), 0, b"new".to_vec()).await.expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"one\ntwo\nthree\n", "published early");
        let fstat = raw.fstat(h.handle.as_str()).await.expect("fstat").attrs;
        assert_eq!(fstat.size, Some(3));
        raw.close(h.handle).await.expect("close");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");

        // CREAT|EXCL on an existing file fails; on a new one it creates.
        let exclusive = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
        assert_eq!(status_code(raw.open("log.txt", exclusive, none()).await), StatusCode::Failure);
        let h = raw.open("fresh.txt", exclusive, none()).await.expect("open");
        raw.close(h.handle).await.expect("close");
        assert!(server.share.root.join("alice/fresh.txt").exists());

        // Without CREAT a missing file is not created.
        let result = raw.open("missing.txt", OpenFlags::WRITE | OpenFlags::TRUNCATE, none()).await;
        assert_eq!(status_code(result), StatusCode::NoSuchFile);
        assert!(!server.share.root.join("alice/missing.txt").exists());
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_list_in_batches_with_long_names() {
    bounded(async {
        let server = Server::start(USERS).await;
        for i in 0..250 {
            server.share.put(&format!("alice/many/f{i:03}.txt"), b"12345");
        }
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let dir = raw.opendir("many").await.expect("opendir").handle;
        let mut names = Vec::new();
        loop {
            match raw.readdir(dir.as_str()).await {
                Ok(batch) => {
                    assert!(batch.files.len() <= 100, "batch of {}", batch.files.len());
                    for file in batch.files {
                        assert!(file.longname.starts_with("-rw"), "{}", file.longname);
                        let fields: Vec<&str> = file.longname.split_whitespace().collect();
                        assert_eq!(fields.get(4), Some(&"5"), "size in {}", file.longname);
                        assert!(file.longname.ends_with(&file.filename), "{}", file.longname);
                        assert_eq!(file.attrs.size, Some(5));
                        names.push(file.filename);
                    }
                }
                Err(err) => {
                    assert_eq!(status_code::<()>(Err(err)), StatusCode::Eof);
                    break;
                }
            }
        }
        names.sort();
        assert_eq!(names.len(), 250);
        assert_eq!(names[0], "f000.txt");
        raw.close(dir).await.expect("close");
        // mkdir, rename, rmdir, remove.
        raw.mkdir("sub", FileAttributes::empty()).await.expect("mkdir");
        raw.rename("sub", "sub2").await.expect("rename");
        assert!(server.share.root.join("alice/sub2").is_dir());
        assert_eq!(status_code(raw.rmdir("many").await), StatusCode::Failure, "not empty");
        raw.remove("many/f000.txt").await.expect("remove");
        raw.rmdir("sub2").await.expect("rmdir");
        assert!(!server.share.root.join("alice/sub2").exists());
        assert_eq!(status_code(raw.stat("nope").await), StatusCode::NoSuchFile);
        server.stop().await;
    })
    .await;
}

/// SFTP strings (`uint32 length, bytes`), as extension requests carry their arguments.
fn sftp_strings(parts: &[&str]) -> Vec<u8> {
    let mut data = Vec::new();
    for part in parts {
        data.extend_from_slice(&(part.len() as u32).to_be_bytes());
        data.extend_from_slice(part.as_bytes());
    }
    data
}

fn packet_status(packet: russh_sftp::protocol::Packet) -> StatusCode {
    match packet {
        russh_sftp::protocol::Packet::Status(status) => status.status_code,
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_extensions_work() {
    bounded(async {
        let server = Server::start(USERS).await;
        server.share.put("alice/a.txt", b"A");
        server.share.put("alice/b.txt", b"B");
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;

        // statvfs reports the storage's real free space.
        let vfs = raw.statvfs("/").await.expect("statvfs");
        let host = rustix::fs::statvfs(&server.share.root).expect("host statvfs");
        let reported = vfs.blocks_avail * vfs.fragment_size;
        let real = host.f_bavail * host.f_frsize;
        assert!(reported.abs_diff(real) < 256 * MIB as u64, "free {reported} vs {real}");
        assert!(vfs.blocks * vfs.fragment_size >= reported);
        assert_eq!(vfs.flags & 1, 0, "alice may write: not read-only");
        let ssh_reader = login_password(server.addr, "reader").await;
        let reader = raw_sftp(&ssh_reader).await;
        assert_eq!(reader.statvfs("/").await.expect("statvfs").flags & 1, 1, "read-only user");

        let limits = raw.limits().await.expect("limits");
        assert_eq!(limits.max_packet_len, 256 * 1024);
        assert!(limits.max_read_len + 13 <= limits.max_packet_len, "a full read must fit");
        assert!(limits.max_open_handles >= 64, "OpenSSH would lower its parallelism");

        // rename refuses to replace; posix-rename replaces.
        assert_eq!(status_code(raw.rename("a.txt", "b.txt").await), StatusCode::Failure);
        let renamed = raw
            .extended("posix-rename@openssh.com", sftp_strings(&["a.txt", "b.txt"]))
            .await
            .expect("posix-rename");
        assert_eq!(packet_status(renamed), StatusCode::Ok);
        assert_eq!(std::fs::read(server.share.root.join("alice/b.txt")).expect("b"), b"A");

        let expanded = raw.expand_path("~/docs/../b.txt").await.expect("expand-path");
        assert_eq!(expanded.files[0].filename, "/b.txt");
        assert_eq!(status_code(raw.expand_path("~bob/x").await), StatusCode::NoSuchFile);

        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let handle = raw.open("synced.txt", flags, FileAttributes::empty()).await.expect("open");
        raw.write(handle.handle.as_str(), 0, b"durable".to_vec()).await.expect("write");
        raw.fsync(handle.handle.as_str()).await.expect("fsync");
        let fstatvfs = raw
            .extended("fstatvfs@openssh.com", sftp_strings(&[handle.handle.as_str()]))
            .await
            .expect("fstatvfs");
        assert!(matches!(fstatvfs, russh_sftp::protocol::Packet::ExtendedReply(_)));
        raw.close(handle.handle).await.expect("close");
        assert_eq!(
            std::fs::read(server.share.root.join("alice/synced.txt")).expect("f"),
            b"durable"
        );

        assert_eq!(status_code(raw.hardlink("b.txt", "c.txt").await), StatusCode::OpUnsupported);
        assert!(!server.share.root.join("alice/c.txt").exists());
        let unknown = raw.extended("copy-data", Vec::new()).await.expect("reply");
        assert_eq!(packet_status(unknown), StatusCode::OpUnsupported);
        server.stop().await;
    })
    .await;
}

/// Reads one SFTP packet (type and payload) from a raw channel stream.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_answered_or_end_the_session() {
    bounded(async {
        let server = Server::start(USERS).await;
        let ssh = login_password(server.addr, "alice").await;
        let mut stream = sftp_stream(&ssh).await;
        // INIT, version 6 asked: the answer is version 3.
        stream.write_all(&framed(&[1, 0, 0, 0, 6])).await.expect("init");
        let version = read_packet(&mut stream).await;
        assert_eq!(version[..5], [2, 0, 0, 0, 3]);
        // An unknown request type: OP_UNSUPPORTED for its id.
        stream.write_all(&framed(&[99, 0, 0, 0, 42])).await.expect("unknown");
        let status = read_packet(&mut stream).await;
        assert_eq!(status[..9], [101, 0, 0, 0, 42, 0, 0, 0, 8], "{status:?}");
        // A WRITE cut short: BAD_MESSAGE for its id.
        stream.write_all(&framed(&[6, 0, 0, 0, 43, 0, 0, 0, 1, b'1', 0])).await.expect("write");
        let status = read_packet(&mut stream).await;
        assert_eq!(status[..9], [101, 0, 0, 0, 43, 0, 0, 0, 5], "{status:?}");
        // A READ of a handle that was never opened: FAILURE.
        let mut read = vec![5, 0, 0, 0, 44, 0, 0, 0, 2, b'7', b'7'];
        read.extend_from_slice(&[0; 8]);
        read.extend_from_slice(&32768u32.to_be_bytes());
        stream.write_all(&framed(&read)).await.expect("read");
        let status = read_packet(&mut stream).await;
        assert_eq!(status[..9], [101, 0, 0, 0, 44, 0, 0, 0, 4], "{status:?}");
        // A packet longer than the limit ends the session: the channel closes.
        stream.write_all(&(10u32 << 20).to_be_bytes()).await.expect("length");
        let mut rest = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the session did not end")
            .ok();
        assert!(rest.is_empty(), "{rest:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_abandons_a_whole_file_upload() {
    bounded(async {
        let server = Server::start(USERS).await;
        let target = server.share.put("alice/report.csv", b"the good old version");
        let ssh = login_password(server.addr, "alice").await;
        let raw = raw_sftp(&ssh).await;
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let handle = raw.open("report.csv", flags, FileAttributes::empty()).await.expect("open");
        raw.write(handle.handle.as_str(), 0, pattern(200 * 1024)).await.expect("write");
        // The client vanishes without closing the file.
        drop(raw);
        drop(ssh);
        let home = server.share.root.join("alice");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let temporary = std::fs::read_dir(&home)
                .expect("list")
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with(".wharf-tmp"));
            if !temporary {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "temporary file left behind");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(std::fs::read(&target).expect("target"), b"the good old version");
        server.stop().await;
    })
    .await;
}
