//! The scratch directory: the one share every server serves, the clients' side, and each
//! server's own configuration. Removed when dropped (and on interrupt).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::Sizes;
use crate::dataset::{SmallFiles, SourceFile, warm_page_cache};

/// Folder of the share that uploads go to; writable by the peers' unprivileged users.
pub const UPLOAD_DIR: &str = "up";

/// The scratch directory and the data set in its share.
pub struct Scratch {
    dir: tempfile::TempDir,
    /// The share served by every server.
    pub share: PathBuf,
    /// Where downloads land.
    pub client: PathBuf,
    /// The large file (FTP, FTPS, SFTP).
    pub big: SourceFile,
    /// The TFTP file.
    pub tftp: SourceFile,
    /// The file of the parallel downloads.
    pub parallel: SourceFile,
    /// The small files.
    pub small: SmallFiles,
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

impl Scratch {
    /// Creates the directories and the data set, and reads it into the page cache.
    pub fn create(parent: Option<&Path>, sizes: &Sizes) -> anyhow::Result<Scratch> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("wharf-bench-");
        let dir = match parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("creating the scratch directory")?;
        crate::interrupt::remove_on_interrupt(Some(dir.path().to_owned()));
        // vsftpd's anonymous sessions and tftpd-hpa run as unprivileged users (ftp, tftp):
        // they must be able to reach the share and write into its upload folder.
        set_mode(dir.path(), 0o755)?;
        let share = dir.path().join("share");
        let client = dir.path().join("client");
        std::fs::create_dir_all(share.join(UPLOAD_DIR))?;
        std::fs::create_dir_all(&client)?;
        set_mode(&share, 0o755)?;
        set_mode(&share.join(UPLOAD_DIR), 0o777)?;

        eprintln!("preparing the data set in {}", share.display());
        let big = SourceFile::create(&share, "big.bin", sizes.big_file, 1)?;
        let tftp = SourceFile::create(&share, "tftp.bin", sizes.tftp_file, 2)?;
        let parallel = SourceFile::create(&share, "parallel.bin", sizes.parallel_file, 3)?;
        let small = SmallFiles::create(&share, "small", sizes.small_count, sizes.small_size)?;
        for file in [&big, &tftp, &parallel] {
            set_mode(&file.path, 0o644)?;
            warm_page_cache(&file.path)?;
        }
        Ok(Scratch { dir, share, client, big, tftp, parallel, small })
    }

    /// A directory for one server's configuration and state, created on first use.
    pub fn server_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("servers").join(name);
        std::fs::create_dir_all(&path)?;
        Ok(path)
    }

    /// A fresh client-side path for one download (removed by the caller after checking).
    pub fn download_path(&self, label: &str) -> PathBuf {
        self.client.join(label)
    }

    /// Writes `bytes` to a file and deletes it unsynced (no disk write), so that the memory
    /// the next transfer's page cache is given has just been used. On a virtual machine whose
    /// balloon reports freed memory back to its host, memory idle for a few seconds must be
    /// faulted in again by the host on first touch: measured on the benchmark machine, 1 GiB
    /// written after 15 s idle went at 500-700 MB/s, right after this at 2.4-4.9 GB/s. Done
    /// before every measured transfer, for Wharf and the peer alike, so the figure compares
    /// the servers rather than the hypervisor's memory.
    pub fn touch_free_memory(&self, bytes: u64) -> anyhow::Result<()> {
        use std::io::Write as _;
        const BLOCK: usize = 1024 * 1024;
        let path = self.dir.path().join("touch-free-memory");
        let zeros = vec![0u8; BLOCK];
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut left = bytes;
        while left > 0 {
            let now = usize::try_from(left).unwrap_or(BLOCK).min(BLOCK);
            file.write_all(&zeros[..now]).with_context(|| format!("writing {}", path.display()))?;
            left -= now as u64;
        }
        drop(file);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    /// Host path of an upload named `name` in the share's upload folder.
    pub fn uploaded(&self, name: &str) -> PathBuf {
        self.share.join(UPLOAD_DIR).join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        crate::interrupt::remove_on_interrupt(None);
    }
}

/// Removes a file or directory tree left by a transfer, and flushes dirty pages so the
/// next measurement does not pay for this one's writeback.
pub fn discard(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
    rustix::fs::sync();
}
