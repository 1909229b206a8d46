//! The object-storage backend against a real S3-compatible server (SeaweedFS, started by the
//! test on loopback; see `tests/testkit/src/seaweed.rs`).

use bytes::Bytes;
use wharf_testkit::Seaweed;
use wharf_vfs::object::{PART_SIZE, REORDER_WINDOW, Secret};
use wharf_vfs::{
    Addressing, ErrorKind, LocalOptions, LocalStorage, Mount, ObjectStorage, ObjectStoreConfig,
    ObjectStoreCredentials, Storage, Tree, VPath, WriteMode,
};

fn p(path: &str) -> VPath {
    VPath::resolve(&VPath::root(), path).expect("path")
}

/// Deterministic, not repeating within a part, so a misplaced range shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn config_of(server: &Seaweed, bucket: &str, prefix: &str) -> ObjectStoreConfig {
    ObjectStoreConfig {
        endpoint: server.endpoint.clone(),
        region: server.region.clone(),
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        addressing: Addressing::Path,
        credentials_file: None,
    }
}

fn credentials_of(server: &Seaweed) -> ObjectStoreCredentials {
    ObjectStoreCredentials {
        access_key_id: server.access_key.clone(),
        secret_access_key: Secret::new(server.secret_key.clone()),
    }
}

fn storage_on(server: &Seaweed, bucket: &str, prefix: &str) -> ObjectStorage {
    ObjectStorage::open(&config_of(server, bucket, prefix), &credentials_of(server))
        .expect("storage")
}

async fn upload(storage: &ObjectStorage, path: &str, data: &[u8], mode: WriteMode) -> u64 {
    let mut writer = storage.open_write(&p(path), mode).await.expect("open");
    for piece in data.chunks(256 * 1024) {
        writer.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    writer.commit().await.expect("commit")
}

async fn read_all(storage: &ObjectStorage, path: &str) -> Vec<u8> {
    let file = storage.open_read(&p(path)).await.expect("open");
    let mut stream = file.stream(0);
    let mut all = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.expect("chunk") {
        all.extend_from_slice(&chunk);
    }
    all
}

#[tokio::test]
async fn files_folders_and_ranges_on_a_real_store() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "tree");

    // Folders: created, seen, refused twice, kept while empty.
    storage.make_dir(&p("/in")).await.expect("mkdir");
    assert!(storage.stat(&p("/in")).await.expect("stat").is_dir());
    assert_eq!(
        storage.make_dir(&p("/in")).await.expect_err("twice").kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        storage.make_dir(&p("/missing/sub")).await.expect_err("no parent").kind(),
        ErrorKind::NotFound
    );
    assert!(
        storage
            .list(&p("/in"))
            .await
            .expect("list")
            .next_batch(10)
            .await
            .expect("batch")
            .is_empty()
    );

    // A small file (one PUT) and one of three parts (multipart), byte-exact, with ranges.
    let small = pattern(1000);
    let large = pattern(2 * wharf_vfs::object::PART_SIZE + 12_345);
    assert_eq!(upload(&storage, "/in/small.bin", &small, WriteMode::Replace).await, 1000);
    assert_eq!(
        upload(&storage, "/in/large.bin", &large, WriteMode::Replace).await,
        large.len() as u64
    );
    assert_eq!(read_all(&storage, "/in/small.bin").await, small);
    assert_eq!(read_all(&storage, "/in/large.bin").await, large);
    let file = storage.open_read(&p("/in/large.bin")).await.expect("open");
    assert_eq!(file.metadata().size, large.len() as u64);
    assert!(file.metadata().modified.is_some(), "mtime from the object");
    let offset = wharf_vfs::object::PART_SIZE as u64 - 7;
    assert_eq!(
        &file.read_at(offset, 100).await.expect("range")[..],
        &large[offset as usize..][..100]
    );
    assert!(file.read_at(large.len() as u64, 10).await.expect("past the end").is_empty());
    let mut from_offset = file.stream(offset);
    let mut rest = Vec::new();
    while let Some(chunk) = from_offset.next_chunk().await.expect("chunk") {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, &large[offset as usize..]);

    // Listing: names, kinds and sizes; the folder's marker is not an entry.
    let mut lister = storage.list(&p("/in")).await.expect("list");
    let mut names: Vec<(String, u64)> = Vec::new();
    loop {
        let batch = lister.next_batch(1).await.expect("batch");
        if batch.is_empty() {
            break;
        }
        names.extend(batch.into_iter().map(|e| (e.name, e.metadata.size)));
    }
    names.sort();
    assert_eq!(
        names,
        vec![("large.bin".to_owned(), large.len() as u64), ("small.bin".to_owned(), 1000)]
    );

    // Create-only: refused over an existing object, which stays as it was.
    let mut writer =
        storage.open_write(&p("/in/small.bin"), WriteMode::CreateNew).await.expect("open");
    writer.write(Bytes::from_static(b"other")).await.expect("write");
    assert_eq!(writer.commit().await.expect_err("exists").kind(), ErrorKind::AlreadyExists);
    assert_eq!(read_all(&storage, "/in/small.bin").await, small);

    // Rename (copy, delete), removal, folders that are not empty.
    assert_eq!(
        storage.rename(&p("/in/small.bin"), &p("/in/moved.bin")).await.expect("rename"),
        None
    );
    assert_eq!(
        storage.stat(&p("/in/small.bin")).await.expect_err("moved").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(read_all(&storage, "/in/moved.bin").await, small);
    assert_eq!(
        storage.remove_dir(&p("/in")).await.expect_err("not empty").kind(),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(
        storage.rename(&p("/in"), &p("/out")).await.expect_err("a folder").kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(storage.remove_file(&p("/in/moved.bin")).await.expect("rm"), Some(1000));
    assert_eq!(
        storage.remove_file(&p("/in/large.bin")).await.expect("rm"),
        Some(large.len() as u64)
    );
    storage.remove_dir(&p("/in")).await.expect("rmdir");
    assert_eq!(storage.stat(&p("/in")).await.expect_err("gone").kind(), ErrorKind::NotFound);
    assert!(server.open_multipart_uploads().is_empty());
}

#[tokio::test]
async fn an_unfinished_upload_leaves_nothing_and_the_old_object_intact() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "");
    let old = pattern(5000);
    upload(&storage, "/firmware.bin", &old, WriteMode::Replace).await;

    // Two parts sent (a multipart upload is open), then the upload is dropped.
    let mut writer =
        storage.open_write(&p("/firmware.bin"), WriteMode::Replace).await.expect("open");
    for piece in pattern(3 * wharf_vfs::object::PART_SIZE).chunks(1 << 20) {
        writer.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    assert_eq!(read_all(&storage, "/firmware.bin").await, old, "nothing visible before the commit");
    // Parts have gone to the store: the multipart upload is open there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.open_multipart_uploads().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no multipart upload open at the store");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(writer);

    // The abort runs on its own task: wait for its positive outcome, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.open_multipart_uploads().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the multipart upload was not aborted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(read_all(&storage, "/firmware.bin").await, old);
}

#[tokio::test]
async fn writes_out_of_order_within_the_window_and_nothing_else() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "");
    let data = pattern(64 * 32 * 1024);
    let mut writer = storage.open_write(&p("/sftp.bin"), WriteMode::Replace).await.expect("open");
    // Pairs swapped, as a pipelining client's writes may be taken.
    let blocks: Vec<(usize, &[u8])> = data.chunks(32 * 1024).enumerate().collect();
    for pair in blocks.chunks(2) {
        for (i, block) in pair.iter().rev() {
            writer
                .write_at((*i * 32 * 1024) as u64, Bytes::copy_from_slice(block))
                .await
                .expect("write");
        }
    }
    writer.commit().await.expect("commit");
    assert_eq!(read_all(&storage, "/sftp.bin").await, data);

    // Rewriting what was sent, or writing beyond the window, is refused, not stored.
    let mut writer = storage.open_write(&p("/sftp.bin"), WriteMode::Replace).await.expect("open");
    writer.write_at(0, Bytes::from_static(b"0123456789")).await.expect("write");
    assert_eq!(
        writer.write_at(2, Bytes::from_static(b"xx")).await.expect_err("rewrite").kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        writer
            .write_at(REORDER_WINDOW + 10, Bytes::from_static(b"far"))
            .await
            .expect_err("far")
            .kind(),
        ErrorKind::Unsupported
    );
    drop(writer);
    assert_eq!(read_all(&storage, "/sftp.bin").await, data, "the object is unchanged");
}

#[tokio::test]
async fn listings_are_not_capped_at_a_page() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "many");
    storage.make_dir(&p("/d")).await.expect("mkdir");
    // More than one page of ListObjectsV2 (1,000 keys).
    let count = 1_005;
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..count {
        let storage = storage.clone();
        uploads.spawn(async move {
            let name = format!("/d/f{i:04}");
            upload(&storage, &name, name.as_bytes(), WriteMode::Replace).await;
        });
        while uploads.len() >= 16 {
            uploads.join_next().await.expect("task").expect("upload");
        }
    }
    while let Some(done) = uploads.join_next().await {
        done.expect("upload");
    }
    let mut lister = storage.list(&p("/d")).await.expect("list");
    let mut seen = 0;
    loop {
        let batch = lister.next_batch(300).await.expect("batch");
        if batch.is_empty() {
            break;
        }
        seen += batch.len();
    }
    assert_eq!(seen, count);
}

#[tokio::test]
async fn a_store_that_goes_away_is_an_error_not_a_hang() {
    let Some(mut server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "");
    upload(&storage, "/a", b"abc", WriteMode::Replace).await;
    server.stop();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(120), storage.stat(&p("/a")))
        .await
        .expect("an answer within the retries' time");
    assert_eq!(outcome.expect_err("the store is gone").kind(), ErrorKind::Io);
}

/// A budget of exactly one upload's memory, counting what is reserved.
#[derive(Debug, Default)]
struct OneUpload(std::sync::Arc<std::sync::atomic::AtomicUsize>);

struct Held(std::sync::Arc<std::sync::atomic::AtomicUsize>, usize);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl wharf_vfs::UploadMemory for OneUpload {
    fn try_reserve(&self, bytes: usize) -> Option<Box<dyn Send + Sync>> {
        let limit = wharf_vfs::object::UPLOAD_MEMORY;
        let taken = self.0.fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
        if taken + bytes > limit {
            self.0.fetch_sub(bytes, std::sync::atomic::Ordering::SeqCst);
            return None;
        }
        Some(Box::new(Held(self.0.clone(), bytes)))
    }
}

#[tokio::test]
async fn uploads_take_their_buffers_from_the_budget() {
    let Some(server) = Seaweed::start() else { return };
    let budget = std::sync::Arc::new(OneUpload::default());
    let in_use = budget.0.clone();
    let storage = storage_on(&server, &server.bucket, "").with_upload_memory(budget);
    let first = storage.open_write(&p("/one"), WriteMode::Replace).await.expect("first");
    assert_eq!(in_use.load(std::sync::atomic::Ordering::SeqCst), wharf_vfs::object::UPLOAD_MEMORY);
    let refused = storage.open_write(&p("/two"), WriteMode::Replace).await.err().expect("no room");
    assert_eq!(refused.kind(), ErrorKind::Io);
    assert!(refused.to_string().contains("memory budget"), "{refused}");
    first.commit().await.expect("commit");
    assert_eq!(in_use.load(std::sync::atomic::Ordering::SeqCst), 0, "given back at the end");
    let second = storage.open_write(&p("/two"), WriteMode::Replace).await.expect("room again");
    second.commit().await.expect("commit");
}

/// Starts a multipart upload of `key` and sends it one small part, as a process killed
/// mid-upload leaves it; returns its upload id.
fn orphan_upload(server: &Seaweed, key: &str) -> String {
    let path = format!("/{}/{key}", server.bucket);
    let reply = server.s3_request("POST", &path, &[("uploads", "")], b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let id = text
        .split_once("<UploadId>")
        .and_then(|(_, rest)| rest.split_once("</UploadId>"))
        .map(|(id, _)| id.to_owned())
        .expect("an upload id");
    let part = server.s3_request("PUT", &path, &[("partNumber", "1"), ("uploadId", &id)], b"part");
    assert_eq!(part.status, 200, "{}", part.text());
    id
}

#[tokio::test]
async fn the_sweep_aborts_what_was_left_and_spares_what_is_alive() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "tree");
    orphan_upload(&server, "tree/orphan.bin");
    orphan_upload(&server, "elsewhere.bin");
    // An upload of this process, with parts at the store.
    let mut live = storage.open_write(&p("/live.bin"), WriteMode::Replace).await.expect("open");
    let data = pattern(3 * wharf_vfs::object::PART_SIZE);
    for piece in data.chunks(1 << 20) {
        live.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.open_multipart_uploads().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the live upload never opened at the store");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let sweeper = |age| {
        storage
            .multipart_sweeper(
                &config_of(&server, &server.bucket, "tree"),
                &credentials_of(&server),
                age,
            )
            .expect("sweeper")
    };
    // Nothing is old enough yet: nothing is aborted.
    let report = sweeper(std::time::Duration::from_secs(3600)).sweep().await.expect("sweep");
    assert_eq!((report.found, report.aborted), (2, 0), "only the prefix's uploads are looked at");
    // Everything is old enough: the orphan goes, the live upload of this process stays.
    let report = sweeper(std::time::Duration::ZERO).sweep().await.expect("sweep");
    assert_eq!((report.found, report.aborted), (2, 1));
    assert_eq!(
        server.open_multipart_uploads(),
        vec!["elsewhere.bin".to_owned(), "tree/live.bin".to_owned()]
    );
    live.commit().await.expect("the live upload completes");
    assert_eq!(read_all(&storage, "/live.bin").await, data);
    assert_eq!(server.open_multipart_uploads(), vec!["elsewhere.bin".to_owned()]);
}

#[tokio::test]
async fn a_resume_continues_the_stored_object_without_sending_it_again() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "");
    let whole = pattern(wharf_vfs::object::COPY_MIN as usize + 3 * 1024 * 1024 + 17);

    // Large enough to be copied inside the store: only the rest is written.
    let cut = wharf_vfs::object::COPY_MIN as usize + 1000;
    upload(&storage, "/big.bin", &whole[..cut], WriteMode::Replace).await;
    let mut resumed =
        storage.open_write(&p("/big.bin"), WriteMode::At(cut as u64)).await.expect("resume");
    resumed.write(Bytes::copy_from_slice(&whole[cut..])).await.expect("write");
    assert_eq!(
        resumed.commit().await.expect("commit"),
        (whole.len() - cut) as u64,
        "only the rest"
    );
    assert_eq!(read_all(&storage, "/big.bin").await, whole);

    // Small: read and sent again inside the server; the same result.
    upload(&storage, "/small.bin", &whole[..1000], WriteMode::Replace).await;
    let mut appended =
        storage.open_write(&p("/small.bin"), WriteMode::Append).await.expect("append");
    appended.write(Bytes::copy_from_slice(&whole[1000..5000])).await.expect("write");
    appended.commit().await.expect("commit");
    assert_eq!(read_all(&storage, "/small.bin").await, &whole[..5000]);

    // Anywhere but the end is refused; an unfinished append leaves the object as it was.
    let err = storage.open_write(&p("/small.bin"), WriteMode::At(10)).await.err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let mut unfinished =
        storage.open_write(&p("/small.bin"), WriteMode::Append).await.expect("append");
    unfinished.write(Bytes::from_static(b"lost")).await.expect("write");
    drop(unfinished);
    assert_eq!(read_all(&storage, "/small.bin").await, &whole[..5000]);

    // Appending to nothing creates the object.
    let mut created = storage.open_write(&p("/new.bin"), WriteMode::Append).await.expect("append");
    assert!(created.created(), "an append to no object adds a file");
    created.write(Bytes::from_static(b"first")).await.expect("write");
    created.commit().await.expect("commit");
    assert_eq!(read_all(&storage, "/new.bin").await, b"first");
}

/// An SFTP client that resumes opens the file in place (no truncate, no append) and writes
/// from the stored size, as OpenSSH's `reput` does; its first write decides.
#[tokio::test]
async fn an_in_place_open_is_decided_by_its_first_write() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "");
    let whole = pattern(wharf_vfs::object::COPY_MIN as usize + 2 * 1024 * 1024);
    let cut = wharf_vfs::object::COPY_MIN as usize + 100;

    // The first write at the stored size: a resume.
    upload(&storage, "/reput.bin", &whole[..cut], WriteMode::Replace).await;
    let mut reput = storage.open_write(&p("/reput.bin"), WriteMode::At(0)).await.expect("open");
    for (index, piece) in whole[cut..].chunks(32 * 1024).enumerate() {
        let offset = (cut + index * 32 * 1024) as u64;
        reput.write_at(offset, Bytes::copy_from_slice(piece)).await.expect("write");
    }
    assert_eq!(reput.commit().await.expect("commit"), (whole.len() - cut) as u64);
    assert_eq!(read_all(&storage, "/reput.bin").await, whole);

    // Opened and closed without a write: nothing changes.
    let untouched = storage.open_write(&p("/reput.bin"), WriteMode::At(0)).await.expect("open");
    untouched.commit().await.expect("commit");
    assert_eq!(read_all(&storage, "/reput.bin").await, whole);

    // A rewrite from 0 shorter than the object cannot keep its end: refused, object kept.
    let mut short = storage.open_write(&p("/reput.bin"), WriteMode::At(0)).await.expect("open");
    short.write_at(0, Bytes::from_static(b"short")).await.expect("write");
    assert_eq!(short.commit().await.expect_err("refused").kind(), ErrorKind::Unsupported);
    // A first write elsewhere is refused.
    let mut elsewhere = storage.open_write(&p("/reput.bin"), WriteMode::At(0)).await.expect("open");
    let err = elsewhere.write_at(7, Bytes::from_static(b"x")).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    drop(elsewhere);
    assert_eq!(read_all(&storage, "/reput.bin").await, whole);

    // A rewrite from 0 at least as long replaces it.
    let replacement = pattern(whole.len() + 5).into_iter().map(|b| !b).collect::<Vec<u8>>();
    let mut rewrite = storage.open_write(&p("/reput.bin"), WriteMode::At(0)).await.expect("open");
    rewrite.write(Bytes::copy_from_slice(&replacement)).await.expect("write");
    rewrite.commit().await.expect("commit");
    assert_eq!(read_all(&storage, "/reput.bin").await, replacement);
}

/// One user's tree mixing a local home and a bucket mounted inside it: each path gets what
/// its own storage can do. Random writes keep working in the local home; the bucket refuses
/// them (unsupported, nothing stored) instead of the whole tree losing them.
#[tokio::test]
async fn a_local_home_keeps_random_writes_beside_a_bucket_mount() {
    const MIB: u64 = 1024 * 1024;
    let Some(server) = Seaweed::start() else { return };
    let home = tempfile::tempdir().expect("home");
    let local = LocalStorage::open(home.path(), true, LocalOptions::default()).expect("local");
    let bucket = storage_on(&server, &server.bucket, "archive");
    let tree = Tree::new(vec![
        Mount { at: VPath::root(), storage: std::sync::Arc::new(local) },
        Mount { at: p("/archive"), storage: std::sync::Arc::new(bucket) },
    ])
    .expect("tree");
    assert!(tree.capabilities_at(&p("/notes.bin")).random_write);
    assert!(!tree.capabilities_at(&p("/archive/notes.bin")).random_write);

    // Local: the end of the file first, then its start (a client writing out of order).
    let piece = pattern(64 * 1024);
    let mut file = tree.open_write(&p("/notes.bin"), WriteMode::At(0)).await.expect("open");
    file.write_at(8 * MIB, Bytes::from(piece.clone())).await.expect("write far ahead");
    file.write_at(0, Bytes::from(piece.clone())).await.expect("write at the start");
    file.commit().await.expect("commit");
    let stored = std::fs::read(home.path().join("notes.bin")).expect("local file");
    assert_eq!(stored.len() as u64, 8 * MIB + piece.len() as u64);
    assert_eq!(&stored[..piece.len()], &piece[..]);
    assert_eq!(&stored[8 * MIB as usize..], &piece[..]);

    // The bucket: the same write far ahead of the upload's end is refused, nothing stored.
    let mut object =
        tree.open_write(&p("/archive/notes.bin"), WriteMode::Replace).await.expect("open");
    let refused = object.write_at(8 * MIB, Bytes::from(piece.clone())).await;
    assert_eq!(refused.expect_err("random write on a bucket").kind(), ErrorKind::Unsupported);
    drop(object);
    let missing = tree.stat(&p("/archive/notes.bin")).await.expect_err("nothing stored");
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    // And a whole upload into the bucket beside it works as ever.
    let whole = pattern(3 * MIB as usize);
    let mut object =
        tree.open_write(&p("/archive/notes.bin"), WriteMode::Replace).await.expect("open");
    object.write(Bytes::from(whole.clone())).await.expect("write");
    object.commit().await.expect("commit");
    let read = tree.open_read(&p("/archive/notes.bin")).await.expect("open read");
    let mut stream = read.stream(0);
    let mut all = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.expect("chunk") {
        all.extend_from_slice(&chunk);
    }
    assert!(all == whole, "the object read back differs");
}

/// An upload into a folder that is not there is refused with `NotFound` (at the commit for a
/// file smaller than a part, at the first part for a larger one) and stores nothing: no
/// object, and no multipart upload was ever started.
#[tokio::test]
async fn an_upload_into_a_missing_folder_is_refused_and_stores_nothing() {
    let Some(server) = Seaweed::start() else { return };
    let storage = storage_on(&server, &server.bucket, "");

    let small = storage.open_write(&p("/missing/small.bin"), WriteMode::Replace).await;
    let mut small = small.expect("open");
    small.write(Bytes::from(pattern(1000))).await.expect("held until the commit");
    assert_eq!(small.commit().await.expect_err("no folder").kind(), ErrorKind::NotFound);

    let large = storage.open_write(&p("/missing/large.bin"), WriteMode::Replace).await;
    let mut large = large.expect("open");
    let block = pattern(256 * 1024);
    let mut refused = None;
    for _ in 0..=PART_SIZE / block.len() {
        if let Err(err) = large.write(Bytes::from(block.clone())).await {
            refused = Some(err);
            break;
        }
    }
    let refused = refused.expect("refused by the time a whole part was written");
    assert_eq!(refused.kind(), ErrorKind::NotFound);
    drop(large);

    assert_eq!(server.listed_keys(&[("list-type", "2")]), Vec::<String>::new());
    assert_eq!(server.open_multipart_uploads(), Vec::<String>::new());
}
