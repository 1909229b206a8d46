//! Uploads: atomic whole-file publishing, interrupted uploads, resumes and positional writes.

use std::path::PathBuf;

use bytes::Bytes;
use wharf_vfs::{ErrorKind, LocalOptions, LocalStorage, Storage, TRANSFER_CHUNK, VPath, WriteMode};

fn p(s: &str) -> VPath {
    VPath::resolve(&VPath::root(), s).expect("valid path")
}

fn setup() -> (tempfile::TempDir, PathBuf, LocalStorage) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let storage = LocalStorage::open(&root, false, LocalOptions::default()).expect("open");
    (tmp, root, storage)
}

/// Every name on disk in `dir`, including hidden temporary files.
fn raw_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A deterministic, non-repeating byte pattern, so misplaced blocks are caught.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[1]).collect()
}

async fn read_all(storage: &LocalStorage, path: &VPath) -> Vec<u8> {
    let file = storage.open_read(path).await.expect("open");
    let mut stream = file.stream(0);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.expect("chunk") {
        out.extend_from_slice(&chunk);
    }
    out
}

#[tokio::test]
async fn replace_publishes_only_on_commit() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("report.csv"), b"old version").expect("write");
    let new = pattern(3 * TRANSFER_CHUNK + 1234);

    let mut writer = storage.open_write(&p("report.csv"), WriteMode::Replace).await.expect("open");
    for piece in new.chunks(32 * 1024 + 7) {
        writer.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    writer.sync().await.expect("sync");
    // Before the commit readers still see the whole old file.
    assert_eq!(std::fs::read(root.join("report.csv")).expect("read"), b"old version");
    assert_eq!(writer.bytes_written(), new.len() as u64);
    let written = writer.commit().await.expect("commit");
    assert_eq!(written, new.len() as u64);
    assert_eq!(read_all(&storage, &p("report.csv")).await, new);
    assert_eq!(raw_names(&root), vec!["report.csv"], "no temporary file left behind");
}

#[tokio::test]
async fn dropped_upload_leaves_old_file_and_no_temporary() {
    let (_tmp, root, storage) = setup();
    let old = pattern(100_000);
    std::fs::write(root.join("firmware.bin"), &old).expect("write");

    let mut writer =
        storage.open_write(&p("firmware.bin"), WriteMode::Replace).await.expect("open");
    writer.write(Bytes::from(pattern(2 * TRANSFER_CHUNK))).await.expect("write");
    writer.write(Bytes::from_static(b"half of a new image")).await.expect("write");
    writer.sync().await.expect("sync");
    assert_eq!(
        raw_names(&root).len(),
        2,
        "the upload writes to a temporary file beside the target"
    );
    drop(writer);

    assert_eq!(
        std::fs::read(root.join("firmware.bin")).expect("read"),
        old,
        "old file byte-identical"
    );
    assert_eq!(raw_names(&root), vec!["firmware.bin"], "temporary file removed");
}

#[tokio::test]
async fn upload_dropped_while_its_first_block_is_written_leaves_nothing() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("image.bin"), b"old").expect("write");
    for _ in 0..20 {
        let mut writer =
            storage.open_write(&p("image.bin"), WriteMode::Replace).await.expect("open");
        // The first block may be creating the temporary file as the upload is dropped.
        writer.write(Bytes::from(pattern(TRANSFER_CHUNK))).await.expect("write");
        drop(writer);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while raw_names(&root).len() > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(raw_names(&root), vec!["image.bin"], "every temporary file removed");
    assert_eq!(std::fs::read(root.join("image.bin")).expect("read"), b"old");
}

#[tokio::test]
async fn upload_dropped_while_waiting_for_its_first_block_leaves_nothing() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("image.bin"), b"old").expect("write");
    for _ in 0..100 {
        let mut writer =
            storage.open_write(&p("image.bin"), WriteMode::Replace).await.expect("open");
        writer.write(Bytes::from(pattern(TRANSFER_CHUNK))).await.expect("write");
        // The second block waits for the first, which may still be creating the temporary
        // file; the upload is dropped in that wait (as a session drops a transfer).
        {
            let mut second = std::pin::pin!(writer.write(Bytes::from(pattern(TRANSFER_CHUNK))));
            let polled =
                std::future::poll_fn(|cx| std::task::Poll::Ready(second.as_mut().poll(cx)));
            let _ = polled.await;
        }
        drop(writer);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while raw_names(&root).len() > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(raw_names(&root), vec!["image.bin"], "every temporary file removed");
    assert_eq!(std::fs::read(root.join("image.bin")).expect("read"), b"old");
}

#[tokio::test]
async fn a_directory_removed_after_the_open_fails_the_commit() {
    let (_tmp, root, storage) = setup();
    std::fs::create_dir(root.join("inbox")).expect("mkdir");
    // As the session does before opening: the lookup leaves the kernel knowing the name is
    // free, so the open needs no disk and the temporary file waits for the first block.
    let missing = storage.lstat(&p("inbox/order.xml")).await.expect_err("not there yet");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let mut writer =
        storage.open_write(&p("inbox/order.xml"), WriteMode::Replace).await.expect("open");
    writer.write(Bytes::from_static(b"<order/>")).await.expect("write");
    std::fs::remove_dir(root.join("inbox")).expect("rmdir");
    let err = writer.commit().await.expect_err("nowhere to publish");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(raw_names(&root).is_empty());
}

#[tokio::test]
async fn an_empty_upload_publishes_an_empty_file() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("flag"), b"old").expect("write");
    let writer = storage.open_write(&p("flag"), WriteMode::Replace).await.expect("open");
    assert_eq!(writer.commit().await.expect("commit"), 0);
    let created = storage.open_write(&p("new-flag"), WriteMode::CreateNew).await.expect("open");
    assert_eq!(created.commit().await.expect("commit"), 0);
    assert_eq!(std::fs::read(root.join("flag")).expect("read"), b"");
    assert_eq!(std::fs::read(root.join("new-flag")).expect("read"), b"");
    assert_eq!(raw_names(&root), vec!["flag", "new-flag"]);
}

#[tokio::test]
async fn temporary_files_are_hidden_from_listings() {
    let (_tmp, root, storage) = setup();
    let mut writer = storage.open_write(&p("pending.dat"), WriteMode::Replace).await.expect("open");
    writer.write(Bytes::from_static(b"x")).await.expect("write");
    writer.sync().await.expect("sync");
    assert_eq!(raw_names(&root).len(), 1);
    let mut lister = storage.list(&VPath::root()).await.expect("list");
    assert!(
        lister.next_batch(100).await.expect("batch").is_empty(),
        "temporary upload is invisible"
    );
    writer.commit().await.expect("commit");
}

#[tokio::test]
async fn create_new_refuses_to_replace() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("taken"), b"first").expect("write");
    let err = storage.open_write(&p("taken"), WriteMode::CreateNew).await.err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);

    // A file appearing while the upload runs wins; the upload is refused at commit.
    let mut writer = storage.open_write(&p("race"), WriteMode::CreateNew).await.expect("open");
    writer.write(Bytes::from_static(b"second")).await.expect("write");
    std::fs::write(root.join("race"), b"first").expect("write");
    let err = writer.commit().await.expect_err("refused at commit");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(root.join("race")).expect("read"), b"first");
    assert_eq!(raw_names(&root), vec!["race", "taken"]);
}

#[tokio::test]
async fn append_and_resume_write_in_place() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("log.txt"), b"line 1\n").expect("write");
    let mut writer = storage.open_write(&p("log.txt"), WriteMode::Append).await.expect("open");
    writer.write(Bytes::from_static(b"line 2\n")).await.expect("write");
    writer.commit().await.expect("commit");
    assert_eq!(std::fs::read(root.join("log.txt")).expect("read"), b"line 1\nline 2\n");

    // A resumed upload: the first 5 bytes arrived earlier, the rest now.
    let full = pattern(TRANSFER_CHUNK + 99);
    std::fs::write(root.join("big.iso"), &full[..5]).expect("write");
    let mut writer = storage.open_write(&p("big.iso"), WriteMode::At(5)).await.expect("open");
    writer.write(Bytes::copy_from_slice(&full[5..])).await.expect("write");
    writer.commit().await.expect("commit");
    assert_eq!(std::fs::read(root.join("big.iso")).expect("read"), full);

    // In-place writes stay even when the connection drops: that is what makes them resumable.
    let mut writer = storage.open_write(&p("partial.bin"), WriteMode::At(0)).await.expect("open");
    writer.write(Bytes::from_static(b"first half")).await.expect("write");
    writer.sync().await.expect("sync");
    drop(writer);
    assert_eq!(std::fs::read(root.join("partial.bin")).expect("read"), b"first half");
}

#[tokio::test]
async fn positional_writes_in_any_order() {
    let (_tmp, _root, storage) = setup();
    let data = pattern(10 * 32 * 1024);
    let mut writer = storage.open_write(&p("sftp.bin"), WriteMode::Replace).await.expect("open");
    let blocks: Vec<(usize, &[u8])> = data.chunks(32 * 1024).enumerate().collect();
    // Even blocks first, then odd ones, as a pipelining client might.
    for (i, block) in
        blocks.iter().filter(|(i, _)| i % 2 == 0).chain(blocks.iter().filter(|(i, _)| i % 2 == 1))
    {
        writer
            .write_at((*i * 32 * 1024) as u64, Bytes::copy_from_slice(block))
            .await
            .expect("write");
    }
    writer.commit().await.expect("commit");
    assert_eq!(read_all(&storage, &p("sftp.bin")).await, data);
}

#[tokio::test]
async fn writing_over_a_directory_is_refused() {
    let (_tmp, root, storage) = setup();
    std::fs::create_dir(root.join("dir")).expect("mkdir");
    let err = storage.open_write(&p("dir"), WriteMode::Replace).await.err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::IsADirectory);
    let err =
        storage.open_write(&p("missing/file"), WriteMode::Replace).await.err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// A whole-file upload may open without looking at its name (when the caches cannot tell),
/// so the commit is what refuses a directory there: the directory and its contents stay, and
/// no temporary file is left.
#[tokio::test]
async fn a_directory_in_the_way_at_commit_is_refused_and_kept() {
    let (_tmp, root, storage) = setup();
    let mut writer = storage.open_write(&p("late"), WriteMode::Replace).await.expect("open");
    writer.write_at(0, Bytes::from_static(b"data")).await.expect("write");
    std::fs::create_dir(root.join("late")).expect("mkdir");
    std::fs::write(root.join("late/inside"), b"kept").expect("write inside");
    let err = writer.commit().await.expect_err("a directory is in the way");
    assert_eq!(err.kind(), ErrorKind::IsADirectory);
    assert_eq!(std::fs::read(root.join("late/inside")).expect("still there"), b"kept");
    assert_eq!(raw_names(&root), vec!["late"], "no temporary file left");
}

#[tokio::test]
async fn reads_from_an_offset() {
    let (_tmp, root, storage) = setup();
    let data = pattern(2 * TRANSFER_CHUNK + 17);
    std::fs::write(root.join("movie.mp4"), &data).expect("write");
    let file = storage.open_read(&p("movie.mp4")).await.expect("open");
    assert_eq!(file.metadata().size, data.len() as u64);
    assert_eq!(&file.read_at(1000, 10).await.expect("read")[..], &data[1000..1010]);
    assert!(file.read_at(data.len() as u64 + 5, 10).await.expect("read").is_empty());
    let mut stream = file.stream(TRANSFER_CHUNK as u64 + 3);
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.expect("chunk") {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, &data[TRANSFER_CHUNK + 3..]);
    let err = storage.open_read(&VPath::root()).await.err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::IsADirectory);
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[tokio::test]
async fn an_overwrite_keeps_the_files_mode_and_a_new_file_gets_the_default() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("private.key"), b"old secret").expect("write");
    std::fs::set_permissions(root.join("private.key"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    for mode in [WriteMode::Replace, WriteMode::Replace] {
        let mut writer = storage.open_write(&p("private.key"), mode).await.expect("open");
        writer.write(Bytes::from_static(b"new secret")).await.expect("write");
        writer.commit().await.expect("commit");
        assert_eq!(mode_of(&root.join("private.key")), 0o600, "the overwrite kept 0600");
    }
    assert_eq!(std::fs::read(root.join("private.key")).expect("read"), b"new secret");

    // A new file gets what a file created with 0644 gets under this process's umask.
    std::fs::write(root.join("reference"), b"").expect("write");
    let writer = storage.open_write(&p("fresh.txt"), WriteMode::Replace).await.expect("open");
    writer.commit().await.expect("commit");
    assert_eq!(mode_of(&root.join("fresh.txt")), mode_of(&root.join("reference")));
}

#[tokio::test]
async fn publishing_reports_what_it_replaced_and_a_check_can_refuse() {
    let (_tmp, root, storage) = setup();
    let upload = |content: &'static [u8]| {
        let storage = storage.clone();
        async move {
            let mut writer =
                storage.open_write(&p("doc.txt"), WriteMode::Replace).await.expect("open");
            writer.write(Bytes::from_static(content)).await.expect("write");
            writer
        }
    };
    let first = upload(b"first version").await;
    let second = upload(b"second").await;
    // Both opened while the name was free; the second to publish replaces the first.
    let done = first.publish(None).await.expect("publish");
    assert_eq!((done.written, done.size, done.replaced), (13, 13, None));
    let done = second.publish(None).await.expect("publish");
    assert_eq!((done.written, done.size, done.replaced), (6, 6, Some(13)));

    let third = upload(b"refused").await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    let check: wharf_vfs::PublishCheck = Box::new(move |replaced, size| {
        *record.lock().expect("lock") = Some((replaced, size));
        Box::pin(std::future::ready(Err(wharf_vfs::Error::QuotaExceeded)))
    });
    let err = third.publish(Some(check)).await.expect_err("refused by the check");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(*seen.lock().expect("lock"), Some((Some(6), 7)));
    assert_eq!(std::fs::read(root.join("doc.txt")).expect("read"), b"second");
    assert_eq!(raw_names(&root), vec!["doc.txt"], "the refused upload left nothing");
}

#[tokio::test]
async fn in_place_writes_say_whether_they_created_the_file() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("old.log"), b"x").expect("write");
    for (name, mode, created) in [
        ("old.log", WriteMode::Append, false),
        ("new.log", WriteMode::Append, true),
        ("old.log", WriteMode::At(1), false),
        ("new.bin", WriteMode::At(0), true),
        ("old.log", WriteMode::Replace, false),
        ("other.bin", WriteMode::Replace, false),
    ] {
        let writer = storage.open_write(&p(name), mode).await.expect("open");
        assert_eq!(writer.created(), created, "{name} {mode:?}");
        let done = writer.publish(None).await.expect("commit");
        assert_eq!(done.replaced.is_some(), name == "old.log" && mode.is_atomic());
    }
}

#[tokio::test]
async fn renames_and_removals_report_the_file_they_took_away() {
    let (_tmp, root, storage) = setup();
    std::fs::write(root.join("a"), b"12345").expect("write");
    std::fs::write(root.join("b"), b"123").expect("write");
    std::fs::create_dir(root.join("dir")).expect("mkdir");
    std::os::unix::fs::symlink("a", root.join("link")).expect("symlink");
    assert_eq!(storage.rename(&p("a"), &p("b")).await.expect("rename over"), Some(3));
    assert_eq!(storage.rename(&p("b"), &p("c")).await.expect("rename"), None);
    assert_eq!(storage.rename(&p("c"), &p("link")).await.expect("over a link"), None);
    std::fs::hard_link(root.join("link"), root.join("twin")).expect("hard link");
    assert_eq!(storage.rename(&p("link"), &p("twin")).await.expect("same file"), None);
    assert_eq!(raw_names(&root), vec!["dir", "link", "twin"], "a rename onto itself does nothing");
    assert_eq!(storage.remove_file(&p("twin")).await.expect("rm"), Some(5));
    std::os::unix::fs::symlink("dir", root.join("dirlink")).expect("symlink");
    assert_eq!(storage.remove_file(&p("dirlink")).await.expect("rm link"), None);
    let err = storage.remove_file(&p("dir")).await.expect_err("a directory");
    assert_eq!(err.kind(), ErrorKind::IsADirectory);
}

/// Plants a temporary upload file as a crash would leave it, last written `age` ago.
fn plant_leftover(dir: &std::path::Path, age: std::time::Duration) -> PathBuf {
    let path = dir.join(".wharf-tmp-00000000deadbeef");
    let file = std::fs::File::create(&path).expect("leftover");
    file.set_modified(std::time::SystemTime::now() - age).expect("mtime");
    path
}

#[tokio::test]
async fn removing_a_folder_that_lists_empty_removes_its_stale_temporary_files() {
    let (_tmp, root, storage) = setup();
    let hour = std::time::Duration::from_secs(3600);
    std::fs::create_dir(root.join("crashed")).expect("mkdir");
    plant_leftover(&root.join("crashed"), 2 * hour);
    storage.remove_dir(&p("crashed")).await.expect("a stale leftover does not keep it");
    assert!(!root.join("crashed").exists());

    // A leftover younger than the age may be another process's upload: the folder stays.
    std::fs::create_dir(root.join("recent")).expect("mkdir");
    let recent = plant_leftover(&root.join("recent"), std::time::Duration::from_secs(60));
    let err = storage.remove_dir(&p("recent")).await.expect_err("not stale yet");
    assert_eq!(err.kind(), ErrorKind::DirectoryNotEmpty);
    assert!(recent.exists());

    // Beside a real file nothing is removed.
    std::fs::create_dir(root.join("full")).expect("mkdir");
    let leftover = plant_leftover(&root.join("full"), 2 * hour);
    std::fs::write(root.join("full/kept.txt"), b"x").expect("write");
    let err = storage.remove_dir(&p("full")).await.expect_err("not empty");
    assert_eq!(err.kind(), ErrorKind::DirectoryNotEmpty);
    assert!(leftover.exists());
}

#[tokio::test]
async fn an_upload_in_progress_is_never_swept_whatever_its_age() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let options =
        LocalOptions { stale_temporary_age: std::time::Duration::ZERO, ..LocalOptions::default() };
    let storage = LocalStorage::open(tmp.path(), false, options).expect("open");
    std::fs::create_dir(tmp.path().join("inbox")).expect("mkdir");
    let mut writer = storage.open_write(&p("inbox/slow.bin"), WriteMode::Replace).await.expect("o");
    writer.write(Bytes::from_static(b"first part")).await.expect("write");
    writer.sync().await.expect("sync");
    let err = storage.remove_dir(&p("inbox")).await.expect_err("an upload is in progress");
    assert_eq!(err.kind(), ErrorKind::DirectoryNotEmpty);
    let mut sweeper = storage.temporary_sweeper();
    let run = sweeper.run_once().await;
    assert!(run.pass_complete);
    assert_eq!(run.removed, 0);
    writer.write(Bytes::from_static(b", second part")).await.expect("write");
    writer.commit().await.expect("the upload still publishes");
    assert_eq!(
        std::fs::read(tmp.path().join("inbox/slow.bin")).expect("read"),
        b"first part, second part"
    );

    // Once it is over, a leftover of the same age is swept.
    let leftover = plant_leftover(&tmp.path().join("inbox"), std::time::Duration::from_secs(1));
    let run = sweeper.run_once().await;
    assert_eq!((run.removed, run.pass_complete), (1, true));
    assert!(!leftover.exists());
}
