//! The local backend cannot be escaped: every way out of the root is refused or contained, and
//! a sentinel file outside the root is never read or changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use wharf_vfs::{
    Error, ErrorKind, LocalOptions, LocalStorage, PathError, Storage, VPath, WriteMode,
};

const SECRET: &[u8] = b"outside secret: must never be read or changed";

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    storage: LocalStorage,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("inside")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), SECRET).expect("write");
        std::fs::write(root.join("inside/ok.txt"), b"inside").expect("write");
        let storage = LocalStorage::open(&root, false, LocalOptions::default()).expect("open root");
        Fixture { _tmp: tmp, root, outside, storage }
    }

    fn link(&self, target: &Path, link: &str) {
        std::os::unix::fs::symlink(target, self.root.join(link)).expect("symlink");
    }

    fn assert_outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .expect("read outside")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")], "nothing new outside");
        assert_eq!(std::fs::read(self.outside.join("secret")).expect("read"), SECRET);
    }
}

fn p(s: &str) -> VPath {
    VPath::resolve(&VPath::root(), s).expect("valid path")
}

fn refused<T>(result: wharf_vfs::Result<T>) -> ErrorKind {
    match result {
        Ok(_) => panic!("operation escaped the root"),
        Err(err) => err.kind(),
    }
}

async fn read_all(storage: &LocalStorage, path: &VPath) -> wharf_vfs::Result<Vec<u8>> {
    let file = storage.open_read(path).await?;
    Ok(file.read_at(0, 1 << 20).await?.to_vec())
}

#[tokio::test]
async fn absolute_symlink_to_outside_is_refused() {
    let fx = Fixture::new();
    fx.link(&fx.outside.join("secret"), "abs-file");
    fx.link(&fx.outside, "abs-dir");

    assert_eq!(refused(read_all(&fx.storage, &p("abs-file")).await), ErrorKind::PermissionDenied);
    assert_eq!(refused(fx.storage.stat(&p("abs-file")).await), ErrorKind::PermissionDenied);
    assert_eq!(
        refused(read_all(&fx.storage, &p("abs-dir/secret")).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(refused(fx.storage.list(&p("abs-dir")).await), ErrorKind::PermissionDenied);
    assert_eq!(
        refused(fx.storage.open_write(&p("abs-dir/new"), WriteMode::Replace).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        refused(fx.storage.open_write(&p("abs-file"), WriteMode::At(0)).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        refused(fx.storage.open_write(&p("abs-file"), WriteMode::Append).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(refused(fx.storage.make_dir(&p("abs-dir/sub")).await), ErrorKind::PermissionDenied);
    assert_eq!(
        refused(fx.storage.set_mode(&p("abs-file"), 0o777).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        refused(fx.storage.remove_file(&p("abs-dir/secret")).await),
        ErrorKind::PermissionDenied
    );
    assert!(fx.storage.rename(&p("abs-dir/secret"), &p("stolen")).await.is_err());
    fx.assert_outside_untouched();
}

#[tokio::test]
async fn relative_symlink_climbing_out_is_refused() {
    let fx = Fixture::new();
    fx.link(Path::new("../outside/secret"), "rel-file");
    fx.link(Path::new("inside/../../outside"), "rel-dir");

    assert_eq!(refused(read_all(&fx.storage, &p("rel-file")).await), ErrorKind::PermissionDenied);
    assert_eq!(
        refused(read_all(&fx.storage, &p("rel-dir/secret")).await),
        ErrorKind::PermissionDenied
    );
    assert!(fx.storage.open_write(&p("rel-dir/planted"), WriteMode::Replace).await.is_err());
    fx.assert_outside_untouched();
}

#[tokio::test]
async fn replacing_an_escaping_symlink_replaces_the_link_not_its_target() {
    let fx = Fixture::new();
    fx.link(&fx.outside.join("secret"), "evil");
    let mut writer = fx.storage.open_write(&p("evil"), WriteMode::Replace).await.expect("open");
    writer.write(Bytes::from_static(b"new content")).await.expect("write");
    writer.commit().await.expect("commit");
    assert_eq!(std::fs::read(fx.root.join("evil")).expect("read"), b"new content");
    assert!(!std::fs::symlink_metadata(fx.root.join("evil")).expect("lstat").is_symlink());
    fx.assert_outside_untouched();
}

#[tokio::test]
async fn symlink_inside_the_root_is_followed() {
    let fx = Fixture::new();
    fx.link(Path::new("inside/ok.txt"), "alias");
    fx.link(Path::new("inside"), "alias-dir");
    assert_eq!(read_all(&fx.storage, &p("alias")).await.expect("read"), b"inside");
    assert_eq!(read_all(&fx.storage, &p("alias-dir/ok.txt")).await.expect("read"), b"inside");
}

#[tokio::test]
async fn symlink_loop_is_an_error_not_a_hang() {
    let fx = Fixture::new();
    fx.link(Path::new("loop-b"), "loop-a");
    fx.link(Path::new("loop-a"), "loop-b");
    let result = tokio::time::timeout(Duration::from_secs(10), read_all(&fx.storage, &p("loop-a")))
        .await
        .expect("a loop must not hang");
    assert!(result.is_err());
    let result = tokio::time::timeout(Duration::from_secs(10), fx.storage.stat(&p("loop-a/x")))
        .await
        .expect("a loop must not hang");
    assert!(result.is_err());
}

#[tokio::test]
async fn dot_dot_chains_and_absolute_paths_stay_inside() {
    let fx = Fixture::new();
    let cwd = p("/inside");
    for hostile in ["../../../../outside/secret", "/../../outside/secret", "../outside/secret"] {
        let path = VPath::resolve(&cwd, hostile).expect("normalizes");
        assert_eq!(path.as_str(), "/outside/secret", "{hostile}");
        assert_eq!(refused(read_all(&fx.storage, &path).await), ErrorKind::NotFound);
    }
    // An absolute host path is just a path inside the root.
    let host =
        VPath::resolve(&cwd, &fx.outside.join("secret").to_string_lossy()).expect("normalizes");
    assert_eq!(refused(read_all(&fx.storage, &host).await), ErrorKind::NotFound);
    let passwd = VPath::resolve(&cwd, "/etc/passwd").expect("normalizes");
    assert_eq!(refused(read_all(&fx.storage, &passwd).await), ErrorKind::NotFound);
    // Writes through such paths land inside the root, if anywhere.
    let mut writer = fx
        .storage
        .open_write(
            &VPath::resolve(&cwd, "../../escape.txt").expect("normalizes"),
            WriteMode::Replace,
        )
        .await
        .expect("open");
    writer.write(Bytes::from_static(b"contained")).await.expect("write");
    writer.commit().await.expect("commit");
    assert_eq!(std::fs::read(fx.root.join("escape.txt")).expect("inside"), b"contained");
    fx.assert_outside_untouched();
}

#[tokio::test]
async fn backslash_is_a_name_not_a_separator() {
    let fx = Fixture::new();
    let path = VPath::resolve(&p("/inside"), "..\\..\\outside\\secret").expect("normalizes");
    assert_eq!(path.as_str(), "/inside/..\\..\\outside\\secret");
    assert_eq!(refused(read_all(&fx.storage, &path).await), ErrorKind::NotFound);
    let mut writer = fx.storage.open_write(&path, WriteMode::Replace).await.expect("open");
    writer.write(Bytes::from_static(b"literal")).await.expect("write");
    writer.commit().await.expect("commit");
    assert_eq!(
        std::fs::read(fx.root.join("inside/..\\..\\outside\\secret")).expect("read"),
        b"literal"
    );
    fx.assert_outside_untouched();
}

#[test]
fn nul_control_and_overlong_input_is_refused() {
    let root = VPath::root();
    assert_eq!(VPath::resolve(&root, "secret\0.txt"), Err(PathError::ControlCharacter { byte: 0 }));
    assert_eq!(
        VPath::resolve_bytes(&root, b"a\r\nDELE b"),
        Err(PathError::ControlCharacter { byte: b'\r' })
    );
    assert_eq!(VPath::resolve(&root, &"a".repeat(10_000)), Err(PathError::PathTooLong));
    assert_eq!(VPath::resolve(&root, &"a".repeat(256)), Err(PathError::ComponentTooLong));
    assert_eq!(VPath::resolve(&root, &"../".repeat(2_000)), Err(PathError::PathTooLong));
}

#[tokio::test]
async fn subtree_cannot_reach_its_siblings() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.root.join("partners/acme")).expect("mkdir");
    std::fs::create_dir_all(fx.root.join("partners/globex")).expect("mkdir");
    std::fs::write(fx.root.join("partners/globex/plans.txt"), b"globex only").expect("write");
    std::os::unix::fs::symlink("../globex", fx.root.join("partners/acme/peek")).expect("symlink");

    let acme = fx.storage.subtree(&p("partners/acme"), false).await.expect("subtree");
    assert_eq!(refused(read_all(&acme, &p("peek/plans.txt")).await), ErrorKind::PermissionDenied);
    assert_eq!(refused(read_all(&acme, &p("../globex/plans.txt")).await), ErrorKind::NotFound);
    assert_eq!(refused(acme.list(&p("peek")).await), ErrorKind::PermissionDenied);
}

#[tokio::test]
async fn reserved_temporary_names_cannot_be_named() {
    let fx = Fixture::new();
    std::fs::write(fx.root.join(".wharf-tmp-0000000000000001"), b"someone's upload")
        .expect("write");
    assert_eq!(
        refused(read_all(&fx.storage, &p(".wharf-tmp-0000000000000001")).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        refused(fx.storage.rename(&p(".wharf-tmp-0000000000000001"), &p("published")).await),
        ErrorKind::NotFound
    );
}

/// A directory is swapped for a symlink to the outside while lookups run through it. Whatever
/// the interleaving, a lookup either finds the inside file or fails; it never reads the secret.
#[test]
fn rename_race_never_reaches_outside() {
    let fx = Fixture::new();
    let inside_dir = fx.root.join("swap");
    let parked = fx.root.join("parked");
    let evil_link = fx.root.join("evil-link");
    std::fs::create_dir(&inside_dir).expect("mkdir");
    std::fs::write(inside_dir.join("secret"), b"inside copy").expect("write");
    std::os::unix::fs::symlink(&fx.outside, &evil_link).expect("symlink");

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (inside_dir, parked, evil_link) =
            (inside_dir.clone(), parked.clone(), evil_link.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) && swaps < 200_000 {
                // swap -> parked, evil-link -> swap, then back again.
                let _ = std::fs::rename(&inside_dir, &parked);
                let _ = std::fs::rename(&evil_link, &inside_dir);
                let _ = std::fs::rename(&inside_dir, &evil_link);
                let _ = std::fs::rename(&parked, &inside_dir);
                swaps += 1;
            }
        })
    };

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (mut inside_reads, mut refusals) = (0u32, 0u32);
    runtime.block_on(async {
        for _ in 0..3_000 {
            match read_all(&fx.storage, &p("swap/secret")).await {
                Ok(bytes) => {
                    assert_eq!(bytes, b"inside copy", "read something other than the inside file");
                    inside_reads += 1;
                }
                Err(Error::NotFound | Error::PermissionDenied | Error::NotADirectory) => {
                    refusals += 1
                }
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    assert!(inside_reads + refusals == 3_000);
    fx.assert_outside_untouched();
}
