//! Answers from the kernel's caches, on the calling task, without waiting for a disk.
//!
//! A storage call handed to tokio's blocking pool costs two thread switches (there and back),
//! tens of microseconds on a loaded or virtual machine. For a small request (a `stat`, opening
//! a file, reading 4 KiB of it) that is most of the time the request takes, and a client
//! fetching many small files waits for it once per request. When everything a call needs is
//! already in memory it is answered here instead:
//!
//! - `openat2` with `RESOLVE_CACHED` resolves a path only through the dentry cache, with the
//!   same `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` confinement cap-std applies;
//! - `preadv2` with `RWF_NOWAIT` copies only pages already in the page cache.
//!
//! Both fail with `EAGAIN` rather than start I/O. On that, on any other failure, and on a
//! kernel or file system without the flags, the caller does the work on the blocking pool as
//! before; that path gives the authoritative answer, so a client sees the same errors either
//! way, and a runtime worker never waits for a disk. A failed attempt costs one system call,
//! so nothing remembers which file systems lack the flags.

use std::fs::File;
use std::io::IoSliceMut;

use bytes::Bytes;
use cap_std::fs::Dir;
use rustix::fs::{Access, AtFlags, Mode, OFlags, ResolveFlags, accessat, openat2};
use rustix::io::{Errno, ReadWriteFlags, preadv2};

use super::convert_metadata;
use super::read::fill_block;
use crate::metadata::Metadata;

/// Opens `rel` beneath `root` if the lookup needs no I/O; `EAGAIN` when it would.
fn open_cached(root: &Dir, rel: &str, flags: OFlags) -> rustix::io::Result<File> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::CACHED;
    let fd = openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), resolve)?;
    Ok(File::from(fd))
}

/// Opens `rel` beneath `root` if the lookup needs no I/O; `None` when it would, or failed.
pub(super) fn open(root: &Dir, rel: &str, flags: OFlags) -> Option<File> {
    open_cached(root, rel, flags).ok()
}

/// What a lookup from the caches found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lookup {
    /// The path names this.
    Found(Metadata),
    /// The path names nothing (a negative dentry is as authoritative as a positive one).
    Missing,
    /// The caches cannot tell.
    Unknown,
}

/// Looks `rel` up beneath `root` (a final symbolic link itself unless `follow`).
pub(super) fn lookup(root: &Dir, rel: &str, follow: bool) -> Lookup {
    let flags = if follow { OFlags::PATH } else { OFlags::PATH | OFlags::NOFOLLOW };
    match open_cached(root, rel, flags) {
        Ok(file) => match cap_std::fs::Metadata::from_file(&file) {
            Ok(meta) => Lookup::Found(convert_metadata(&meta)),
            Err(_) => Lookup::Unknown,
        },
        Err(Errno::NOENT) => Lookup::Missing,
        Err(_) => Lookup::Unknown,
    }
}

/// Attributes of `rel` beneath `root` (of a final symbolic link itself unless `follow`) if
/// they are in memory.
pub(super) fn metadata(root: &Dir, rel: &str, follow: bool) -> Option<Metadata> {
    match lookup(root, rel, follow) {
        Lookup::Found(meta) => Some(meta),
        Lookup::Missing | Lookup::Unknown => None,
    }
}

/// The directory `rel` beneath `root`, if it is in memory and this process may create files
/// in it (its permission bits, and a read-only mount, say so without I/O).
pub(super) fn writable_dir(root: &Dir, rel: &str) -> Option<Dir> {
    let dir = open(root, rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let access = Access::WRITE_OK | Access::EXEC_OK;
    accessat(&dir, ".", access, AtFlags::EACCESS).ok()?;
    Some(Dir::from_std_file(dir))
}

/// Up to `len` bytes of `file` from `offset` if they are all in the page cache (or the file
/// ends first); `None` when reading them would wait for the disk. `buffer_len` is how much
/// to allocate at first (see [`super::read::first_buffer_len`]).
pub(super) fn read(file: &File, offset: u64, len: usize, buffer_len: usize) -> Option<Bytes> {
    fill_block(len, buffer_len, |buf, filled| {
        let at = offset + filled as u64;
        Ok(preadv2(file, &mut [IoSliceMut::new(buf)], at, ReadWriteFlags::NOWAIT)?)
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::symlink;

    use cap_std::ambient_authority;

    use super::*;
    use crate::local::read::first_buffer_len;
    use crate::local::stat_in;
    use crate::metadata::FileKind;

    fn root_with_file(contents: &[u8]) -> (tempfile::TempDir, Dir) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/file"), contents).expect("write");
        let root = Dir::open_ambient_dir(dir.path(), ambient_authority()).expect("open root");
        (dir, root)
    }

    #[test]
    fn cached_metadata_is_what_the_blocking_path_reports() {
        let (dir, root) = root_with_file(b"hello");
        symlink("sub/file", dir.path().join("link")).expect("symlink");
        for rel in [".", "sub", "sub/file"] {
            let fast = metadata(&root, rel, true).expect("in the dentry cache");
            assert_eq!(fast, stat_in(&root, rel).expect("stat"), "{rel}");
        }
        let link = metadata(&root, "link", false).expect("in the dentry cache");
        assert_eq!(link.kind, FileKind::Symlink);
        // Following a link is left to the blocking path when the link's access time is due an
        // update (that is a write); otherwise it lands on the file.
        if let Some(followed) = metadata(&root, "link", true) {
            assert_eq!(followed, stat_in(&root, "link").expect("stat"));
            assert_eq!((followed.kind, followed.size), (FileKind::File, 5));
        }
    }

    #[test]
    fn nothing_outside_the_root_is_reached() {
        let (dir, root) = root_with_file(b"secret");
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("target"), b"x").expect("write");
        symlink(outside.path().join("target"), dir.path().join("absolute")).expect("symlink");
        symlink("../../etc", dir.path().join("sub/up")).expect("symlink");
        for rel in ["absolute", "sub/up", "../x", "sub/../../x", "/etc/passwd"] {
            assert!(metadata(&root, rel, true).is_none(), "{rel}");
            assert!(open(&root, rel, OFlags::RDONLY).is_none(), "{rel}");
        }
        // Without following, a link is itself inside the root.
        assert_eq!(metadata(&root, "absolute", false).map(|m| m.kind), Some(FileKind::Symlink));
    }

    #[test]
    fn a_name_known_to_be_free_is_missing_and_directories_are_writable() {
        let (dir, root) = root_with_file(b"");
        let probe = std::fs::symlink_metadata(dir.path().join("sub/new"));
        assert!(probe.is_err(), "the lookup leaves a negative entry in the dentry cache");
        assert_eq!(lookup(&root, "sub/new", false), Lookup::Missing);
        assert!(matches!(lookup(&root, "sub/file", true), Lookup::Found(_)));
        assert!(writable_dir(&root, "sub").is_some());
        assert!(writable_dir(&root, ".").is_some());
        assert!(writable_dir(&root, "sub/file").is_none(), "a file is no directory");
    }

    #[test]
    fn missing_paths_are_left_to_the_blocking_path() {
        let (_dir, root) = root_with_file(b"");
        assert!(metadata(&root, "sub/missing", false).is_none());
        assert!(open(&root, "missing/file", OFlags::RDONLY).is_none());
    }

    /// Whether the file system of `file` takes `RWF_NOWAIT` reads (tmpfs, for one, does not:
    /// every read there goes to the blocking pool).
    fn takes_nowait_reads(file: &File) -> bool {
        let probe = preadv2(file, &mut [IoSliceMut::new(&mut [0u8; 1])], 0, ReadWriteFlags::NOWAIT);
        probe != Err(rustix::io::Errno::OPNOTSUPP)
    }

    #[test]
    fn reads_stop_at_the_end_and_follow_a_file_that_grew() {
        let (dir, root) = root_with_file(b"0123456789");
        let file = open(&root, "sub/file", OFlags::RDONLY).expect("cached");
        if !takes_nowait_reads(&file) {
            assert!(read(&file, 0, 64, 11).is_none());
            return;
        }
        let size = 10;
        let block = read(&file, 0, 64, first_buffer_len(size, 0, 64)).expect("cached");
        assert_eq!(&block[..], b"0123456789");
        let tail = read(&file, 4, 3, first_buffer_len(size, 4, 3)).expect("cached");
        assert_eq!(&tail[..], b"456");
        let past_end = read(&file, 10, 64, first_buffer_len(size, 10, 64)).expect("cached");
        assert!(past_end.is_empty());
        let mut appender = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("sub/file"))
            .expect("open");
        appender.write_all(b"abcdef").expect("append");
        // Opened at 10 bytes; the buffer sized for that grows to take the rest.
        let grown = read(&file, 0, 64, first_buffer_len(size, 0, 64)).expect("cached");
        assert_eq!(&grown[..], b"0123456789abcdef");
    }

    #[test]
    fn pages_not_in_memory_are_not_waited_for() {
        let (dir, root) = root_with_file(&vec![7u8; 1 << 20]);
        let path = dir.path().join("sub/file");
        let written = std::fs::File::open(&path).expect("open");
        written.sync_all().expect("sync");
        let file = open(&root, "sub/file", OFlags::RDONLY).expect("cached");
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        // Where the flag is unknown nothing is read here either.
        assert!(
            read(&file, 0, 1 << 20, 1 << 20).is_none(),
            "a read from disk was answered on the calling thread"
        );
    }

    #[test]
    fn buffers_fit_small_files() {
        assert_eq!(first_buffer_len(4096, 0, 256 * 1024), 4097);
        assert_eq!(first_buffer_len(4096, 4096, 256 * 1024), 1);
        assert_eq!(first_buffer_len(4096, 10_000, 256 * 1024), 1);
        assert_eq!(first_buffer_len(1 << 30, 0, 256 * 1024), 256 * 1024);
        assert_eq!(first_buffer_len(u64::MAX, 0, 256 * 1024), 256 * 1024);
    }
}
