//! The files the bench transfers, and the check that a transferred copy is byte-exact.
//!
//! Contents are pseudo-random (a seeded xorshift stream), so a block delivered twice, out of
//! order or zero-filled changes the fingerprint. The fingerprint is the size plus a hash of
//! 17 windows of 64 KiB spread over the file (the whole file when it is smaller): checking a
//! 1 GiB copy reads about 1 MiB of it.

use std::fs::File;
use std::hash::Hasher as _;
use std::io::{self, BufWriter, Read, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

const WINDOW: u64 = 64 * 1024;
const WINDOWS: u64 = 17;

/// Size and sampled hash of a file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Length in bytes.
    pub size: u64,
    /// Hash of the sampled windows.
    pub sample_hash: u64,
}

/// Offsets of the sampled windows of a file of `size` bytes (one window when it is small).
fn window_offsets(size: u64) -> Vec<u64> {
    if size <= WINDOW * WINDOWS {
        return vec![0];
    }
    let last = size - WINDOW;
    (0..WINDOWS).map(|i| last * i / (WINDOWS - 1)).collect()
}

/// Computes the fingerprint of the file at `path`.
pub fn fingerprint(path: &Path) -> anyhow::Result<Fingerprint> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut hasher = std::hash::DefaultHasher::new();
    // A small file is read whole: its one window is the file.
    let want = if size <= WINDOW * WINDOWS { size } else { WINDOW } as usize;
    let mut window = vec![0u8; want];
    for offset in window_offsets(size) {
        file.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while filled < want {
            let n = file.read(&mut window[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        hasher.write(&window[..filled]);
    }
    Ok(Fingerprint { size, sample_hash: hasher.finish() })
}

/// Computes the fingerprint of a stream expected to hold `expected_size` bytes (windows are
/// placed for that size; a stream of another length fails [`check`] on its size anyway).
/// Reads to the end, keeping only the sampled windows.
pub fn fingerprint_stream(mut stream: impl Read, expected_size: u64) -> io::Result<Fingerprint> {
    let whole_file = expected_size <= WINDOW * WINDOWS;
    let windows: Vec<(u64, u64)> = window_offsets(expected_size)
        .into_iter()
        .map(|start| (start, start + if whole_file { expected_size } else { WINDOW }))
        .collect();
    let mut hasher = std::hash::DefaultHasher::new();
    let mut current = Vec::new();
    let mut next_window = 0;
    let mut position = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        let (chunk_start, chunk_end) = (position, position + read as u64);
        while let Some(&(start, end)) = windows.get(next_window) {
            if start >= chunk_end {
                break;
            }
            let from = start.max(chunk_start) - chunk_start;
            let to = end.min(chunk_end) - chunk_start;
            current.extend_from_slice(&buffer[from as usize..to as usize]);
            if end > chunk_end {
                break;
            }
            // Each window is hashed in one write, exactly as `fingerprint` does.
            hasher.write(&current);
            current.clear();
            next_window += 1;
        }
        position = chunk_end;
    }
    if !current.is_empty() {
        hasher.write(&current);
    }
    Ok(Fingerprint { size: position, sample_hash: hasher.finish() })
}

/// Fails unless `actual` (of the copy described by `what`) equals `expected`.
pub fn check(what: &str, actual: Fingerprint, expected: Fingerprint) -> anyhow::Result<()> {
    if actual.size != expected.size {
        bail!("{what} has {} bytes, expected {}", actual.size, expected.size);
    }
    ensure!(actual == expected, "{what} differs from the original (sampled hash)");
    Ok(())
}

/// Fails unless the file at `path` has the expected fingerprint.
pub fn verify(path: &Path, expected: Fingerprint) -> anyhow::Result<()> {
    check(&path.display().to_string(), fingerprint(path)?, expected)
}

/// A deterministic pseudo-random byte stream (xorshift64*).
struct Pattern(u64);

impl Pattern {
    fn new(seed: u64) -> Pattern {
        Pattern(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Writes `size` bytes of the pattern for `seed` to `path`; returns the fingerprint.
pub fn create_file(path: &Path, size: u64, seed: u64) -> anyhow::Result<Fingerprint> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut pattern = Pattern::new(seed);
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        pattern.fill(&mut block[..n]);
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    fingerprint(path)
}

/// A directory of many small files.
#[derive(Debug, Clone)]
pub struct SmallFiles {
    /// Name of the directory inside the share.
    pub name: String,
    /// File names with their fingerprints, sorted by name.
    pub files: Vec<(String, Fingerprint)>,
}

impl SmallFiles {
    /// Creates `count` files of `size` bytes in `parent/name`.
    pub fn create(parent: &Path, name: &str, count: usize, size: u64) -> anyhow::Result<Self> {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir)?;
        let mut files = Vec::with_capacity(count);
        for index in 0..count {
            let file_name = format!("f{index:05}.bin");
            let print = create_file(&dir.join(&file_name), size, 1_000 + index as u64)?;
            files.push((file_name, print));
        }
        Ok(SmallFiles { name: name.to_owned(), files })
    }

    /// Fails unless `dir` holds exactly these files, each byte-exact.
    pub fn verify_copy(&self, dir: &Path) -> anyhow::Result<()> {
        self.verify_first(dir, self.files.len())
    }

    /// Fails unless `dir` holds exactly the first `count` of these files, each byte-exact.
    pub fn verify_first(&self, dir: &Path, count: usize) -> anyhow::Result<()> {
        let expected = &self.files[..count.min(self.files.len())];
        let mut present: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        present.sort();
        ensure!(
            present.len() == expected.len(),
            "{} holds {} files, expected {}",
            dir.display(),
            present.len(),
            expected.len()
        );
        for ((name, print), found) in expected.iter().zip(&present) {
            ensure!(name == found, "{} holds {found}, expected {name}", dir.display());
            verify(&dir.join(name), *print)?;
        }
        Ok(())
    }
}

/// One file of the data set, as it lies in the share.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name inside the share (at its root).
    pub name: String,
    /// Host path, used as the source of uploads.
    pub path: PathBuf,
    /// Expected fingerprint of every copy.
    pub print: Fingerprint,
}

impl SourceFile {
    /// Creates `name` with `size` bytes in `share`.
    pub fn create(share: &Path, name: &str, size: u64, seed: u64) -> anyhow::Result<Self> {
        let path = share.join(name);
        let print = create_file(&path, size, seed)?;
        Ok(SourceFile { name: name.to_owned(), path, print })
    }
}

/// Reads a file once so it is in the page cache before it is served.
pub fn warm_page_cache(path: &Path) -> anyhow::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while file.read(&mut buf)? > 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_verifies_and_a_changed_byte_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = 3 * 1024 * 1024 + 5;
        let original = create_file(&dir.path().join("a"), size, 7).expect("create");
        assert_eq!(original.size, size);
        std::fs::copy(dir.path().join("a"), dir.path().join("b")).expect("copy");
        verify(&dir.path().join("b"), original).expect("byte-exact copy");

        let mut bytes = std::fs::read(dir.path().join("b")).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(dir.path().join("b"), &bytes).expect("write");
        assert!(verify(&dir.path().join("b"), original).is_err(), "last byte changed");
        bytes.pop();
        std::fs::write(dir.path().join("b"), &bytes).expect("write");
        assert!(verify(&dir.path().join("b"), original).is_err(), "one byte short");
    }

    #[test]
    fn a_stream_has_the_fingerprint_of_the_same_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        for size in [0, 4096, 17 * 64 * 1024, 17 * 64 * 1024 + 1, 5 * 1024 * 1024 + 3] {
            let path = dir.path().join(format!("f{size}"));
            let original = create_file(&path, size, 9).expect("create");
            let file = File::open(&path).expect("open");
            // A reader that returns odd-sized pieces, as a pipe does.
            let streamed =
                fingerprint_stream(io::BufReader::with_capacity(7919, file), size).expect("stream");
            assert_eq!(streamed, original, "size {size}");
        }
        let bytes = vec![1u8; 100_000];
        let short = fingerprint_stream(&bytes[..99_999], 100_000).expect("stream");
        assert!(
            check("short copy", short, fingerprint_stream(&bytes[..], 100_000).expect("s"))
                .is_err()
        );
    }

    #[test]
    fn small_files_are_hashed_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = SmallFiles::create(dir.path(), "s", 3, 4096).expect("create");
        set.verify_copy(&dir.path().join("s")).expect("the originals verify");
        let victim = dir.path().join("s").join(&set.files[1].0);
        let mut bytes = std::fs::read(&victim).expect("read");
        bytes[2000] ^= 0xff;
        std::fs::write(&victim, bytes).expect("write");
        assert!(set.verify_copy(&dir.path().join("s")).is_err());
    }

    #[test]
    fn the_first_files_verify_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = SmallFiles::create(dir.path(), "s", 4, 512).expect("create");
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&copy).expect("mkdir");
        for (name, _) in &set.files[..3] {
            std::fs::copy(dir.path().join("s").join(name), copy.join(name)).expect("copy");
        }
        set.verify_first(&copy, 3).expect("the first three");
        assert!(set.verify_first(&copy, 2).is_err(), "one file too many");
        assert!(set.verify_copy(&copy).is_err(), "one file missing");
    }
}
