//! Listings in batches, mounts (virtual folders) and the remaining tree operations.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use wharf_vfs::{
    ErrorKind, FileKind, LocalOptions, LocalStorage, Mount, MountError, Storage, Tree, VPath,
    WriteMode,
};

fn p(s: &str) -> VPath {
    VPath::resolve(&VPath::root(), s).expect("valid path")
}

fn local(root: &std::path::Path) -> LocalStorage {
    LocalStorage::open(root, true, LocalOptions::default()).expect("open")
}

async fn names(storage: &dyn Storage, dir: &VPath, batch: usize) -> Vec<String> {
    let mut lister = storage.list(dir).await.expect("list");
    let mut out = Vec::new();
    loop {
        let entries = lister.next_batch(batch).await.expect("batch");
        if entries.is_empty() {
            break;
        }
        assert!(entries.len() <= batch, "a batch never exceeds the requested size");
        out.extend(entries.into_iter().map(|e| e.name));
    }
    out.sort();
    out
}

#[tokio::test]
async fn large_directory_is_listed_in_batches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for i in 0..2_500 {
        std::fs::write(tmp.path().join(format!("f{i:05}")), b"").expect("write");
    }
    std::fs::write(tmp.path().join(".wharf-tmp-00000000deadbeef"), b"upload").expect("write");
    let storage = local(tmp.path());
    let listed = names(&storage, &VPath::root(), 100).await;
    assert_eq!(listed.len(), 2_500);
    assert!(!listed.iter().any(|n| n.starts_with(".wharf-tmp-")));
}

#[tokio::test]
async fn names_that_are_not_utf8_are_not_listed() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"").expect("write");
    std::fs::write(tmp.path().join("good"), b"").expect("write");
    assert_eq!(names(&local(tmp.path()), &VPath::root(), 10).await, vec!["good"]);
}

#[tokio::test]
async fn directory_operations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let storage = local(tmp.path());
    storage.make_dir(&p("a")).await.expect("mkdir");
    assert_eq!(
        storage.make_dir(&p("a")).await.err().map(|e| e.kind()),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        storage.make_dir(&p("x/y")).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
    let mut w = storage.open_write(&p("a/f"), WriteMode::Replace).await.expect("open");
    w.write(Bytes::from_static(b"12345")).await.expect("write");
    w.commit().await.expect("commit");
    assert_eq!(
        storage.remove_dir(&p("a")).await.err().map(|e| e.kind()),
        Some(ErrorKind::DirectoryNotEmpty)
    );
    assert_eq!(
        storage.remove_dir(&p("a/f")).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotADirectory)
    );
    assert_eq!(
        storage.remove_file(&p("a")).await.err().map(|e| e.kind()),
        Some(ErrorKind::IsADirectory)
    );
    assert_eq!(
        storage.remove_dir(&VPath::root()).await.err().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );

    storage.rename(&p("a/f"), &p("a/g")).await.expect("rename");
    assert_eq!(storage.stat(&p("a/g")).await.expect("stat").size, 5);
    assert_eq!(storage.stat(&p("a/f")).await.err().map(|e| e.kind()), Some(ErrorKind::NotFound));
    assert!(
        storage.rename(&p("a"), &p("a/inside")).await.is_err(),
        "a directory cannot move into itself"
    );

    let when = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    storage.set_times(&p("a/g"), when, None).await.expect("set_times");
    assert_eq!(storage.stat(&p("a/g")).await.expect("stat").modified, Some(when));
    storage.set_mode(&p("a/g"), 0o4755).await.expect("set_mode");
    assert_eq!(
        storage.stat(&p("a/g")).await.expect("stat").mode,
        0o755,
        "set-id bits are never set"
    );

    storage.remove_file(&p("a/g")).await.expect("rm");
    storage.remove_dir(&p("a")).await.expect("rmdir");
    let space = storage.space(&VPath::root()).await.expect("space");
    assert!(space.total_bytes > 0 && space.free_bytes <= space.total_bytes);
}

#[tokio::test]
async fn mounts_longest_prefix_and_virtual_parents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let share = local(&tmp.path().join("share"));
    let home = Arc::new(share.subtree(&p("partners/acme"), true).await.expect("home"));
    let firmware = Arc::new(share.subtree(&p("firmware"), true).await.expect("fw"));
    let deep = Arc::new(share.subtree(&p("archive/2024"), true).await.expect("deep"));
    std::fs::write(tmp.path().join("share/firmware/phone.bin"), b"fw").expect("write");
    std::fs::write(tmp.path().join("share/partners/acme/invoice.pdf"), b"inv").expect("write");
    std::fs::write(tmp.path().join("share/partners/acme/firmware"), b"shadowed by the mount")
        .expect("write");

    let tree = Tree::new(vec![
        Mount { at: VPath::root(), storage: home },
        Mount { at: p("/firmware"), storage: firmware },
        Mount { at: p("/old/2024"), storage: deep },
    ])
    .expect("tree");

    assert_eq!(names(&tree, &VPath::root(), 1).await, vec!["firmware", "invoice.pdf", "old"]);
    assert_eq!(tree.stat(&p("/firmware")).await.expect("stat").kind, FileKind::Dir);
    assert_eq!(tree.stat(&p("/old")).await.expect("stat").kind, FileKind::Dir, "virtual parent");
    assert_eq!(names(&tree, &p("/old"), 10).await, vec!["2024"]);
    assert_eq!(names(&tree, &p("/firmware"), 10).await, vec!["phone.bin"]);
    let file = tree.open_read(&p("/firmware/phone.bin")).await.expect("open");
    assert_eq!(&file.read_at(0, 10).await.expect("read")[..], b"fw");

    // The mount table is not writable as such.
    assert_eq!(
        tree.remove_dir(&p("/firmware")).await.err().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );
    assert_eq!(
        tree.rename(&p("/firmware"), &p("/fw")).await.err().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );
    assert_eq!(
        tree.rename(&p("/invoice.pdf"), &p("/firmware/invoice.pdf")).await.err().map(|e| e.kind()),
        Some(ErrorKind::Unsupported)
    );
    assert_eq!(
        tree.open_write(&p("/old"), WriteMode::Replace).await.err().map(|e| e.kind()),
        Some(ErrorKind::IsADirectory)
    );
    assert_eq!(
        tree.open_write(&p("/old/new.txt"), WriteMode::Replace).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound),
        "the home has no /old, and the virtual parent holds no files"
    );
    tree.rename(&p("/invoice.pdf"), &p("/invoice-2.pdf")).await.expect("rename inside one mount");
}

#[tokio::test]
async fn view_without_a_root_mount() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let share = local(tmp.path());
    let fw = Arc::new(share.subtree(&p("firmware"), true).await.expect("fw"));
    let up = Arc::new(share.subtree(&p("uploads"), true).await.expect("up"));
    let tree = Tree::new(vec![
        Mount { at: p("/firmware"), storage: fw },
        Mount { at: p("/uploads"), storage: up },
    ])
    .expect("tree");
    assert_eq!(names(&tree, &VPath::root(), 10).await, vec!["firmware", "uploads"]);
    assert_eq!(tree.stat(&p("/etc")).await.err().map(|e| e.kind()), Some(ErrorKind::NotFound));
    assert_eq!(
        tree.open_write(&p("/top.txt"), WriteMode::Replace).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        tree.make_dir(&p("/uploads")).await.err().map(|e| e.kind()),
        Some(ErrorKind::AlreadyExists)
    );
}

#[test]
fn mount_table_is_validated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let storage: Arc<dyn Storage> = Arc::new(local(tmp.path()));
    assert_eq!(Tree::new(vec![]).err(), Some(MountError::Empty));
    let dup = Tree::new(vec![
        Mount { at: p("/a"), storage: storage.clone() },
        Mount { at: p("/a"), storage },
    ]);
    assert_eq!(dup.err(), Some(MountError::Duplicate(p("/a"))));
}

#[tokio::test]
async fn usage_counts_files_once_even_through_link_loops() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("a/b")).expect("mkdir");
    std::fs::write(tmp.path().join("a/one"), vec![0u8; 100]).expect("write");
    std::fs::write(tmp.path().join("a/b/two"), vec![0u8; 50]).expect("write");
    std::fs::write(tmp.path().join("top"), vec![0u8; 7]).expect("write");
    std::os::unix::fs::symlink("..", tmp.path().join("a/b/up")).expect("symlink");
    std::os::unix::fs::symlink("../..", tmp.path().join("a/b/root")).expect("symlink");
    std::fs::write(tmp.path().join(".wharf-tmp-0000000000000009"), vec![0u8; 1000]).expect("write");
    let storage = local(tmp.path());
    let usage =
        tokio::time::timeout(std::time::Duration::from_secs(10), storage.usage(&VPath::root()))
            .await
            .expect("a loop must not make the walk endless")
            .expect("usage");
    assert_eq!(usage, wharf_vfs::DiskUsage { bytes: 157, files: 3 });
}
