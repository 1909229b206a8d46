//! Reading local files: positional reads in large blocks, and a sequential stream that keeps
//! a couple of blocks read ahead of the network. Blocks already in the page cache are copied
//! on the calling task ([`super::cached`]); the rest are read on the blocking pool.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{cached, convert_metadata};
use crate::error::{Error, Result};
use crate::metadata::{FileKind, Metadata};
use crate::storage::{ReadFile, ReadStream, TRANSFER_CHUNK, blocking};

/// Largest single positional read; protects against a client asking for gigabytes at once.
pub const MAX_READ_AT: usize = 4 * 1024 * 1024;

pub(super) struct LocalReader {
    file: Arc<File>,
    metadata: Metadata,
}

impl LocalReader {
    /// Wraps a freshly opened file after checking that it is a regular file.
    pub(super) fn new(file: File) -> Result<Self> {
        let meta = cap_std::fs::Metadata::from_file(&file)?;
        let metadata = convert_metadata(&meta);
        match metadata.kind {
            FileKind::File => Ok(LocalReader { file: Arc::new(file), metadata }),
            FileKind::Dir => Err(Error::IsADirectory),
            FileKind::Symlink | FileKind::Other => Err(Error::PermissionDenied),
        }
    }
}

/// How many bytes to allocate for a read of `len` bytes at `offset` in a file that was
/// `size` bytes long when opened: enough for the rest of the file and one byte more, so a
/// 4 KiB file does not cost a zeroed 256 KiB buffer. A read that fills it (the file grew)
/// goes on in a buffer of `len`.
pub(super) fn first_buffer_len(size: u64, offset: u64, len: usize) -> usize {
    let rest = size.saturating_sub(offset).saturating_add(1);
    usize::try_from(rest).unwrap_or(usize::MAX).min(len)
}

/// Fills up to `len` bytes, starting in a buffer of `buffer_len`, with `read(buf, filled)`
/// calls (`filled`: bytes already in), stopping early only when one returns 0: the end of
/// the file.
pub(super) fn fill_block(
    len: usize,
    buffer_len: usize,
    mut read: impl FnMut(&mut [u8], usize) -> std::io::Result<usize>,
) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(buffer_len.min(len));
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if filled == len {
                break;
            }
            buf.resize(len, 0);
        }
        match read(&mut buf[filled..], filled) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

/// Reads up to `len` bytes from `offset`, stopping early only at the end of the file.
fn read_block(file: &File, offset: u64, len: usize, buffer_len: usize) -> Result<Bytes> {
    Ok(fill_block(len, buffer_len, |buf, filled| file.read_at(buf, offset + filled as u64))?)
}

#[async_trait]
impl ReadFile for LocalReader {
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        read_block_at(&self.file, offset, len.min(MAX_READ_AT), self.metadata.size).await
    }

    fn stream(self: Box<Self>, offset: u64) -> ReadStream {
        let (sender, stream) = ReadStream::channel();
        let (file, size) = (self.file, self.metadata.size);
        tokio::spawn(async move {
            let mut offset = offset;
            loop {
                match read_block_at(&file, offset, TRANSFER_CHUNK, size).await {
                    Ok(chunk) if chunk.is_empty() => break,
                    Ok(chunk) => {
                        offset += chunk.len() as u64;
                        if !sender.send(Ok(chunk)).await {
                            break;
                        }
                    }
                    Err(err) => {
                        sender.send(Err(err)).await;
                        break;
                    }
                }
            }
        });
        stream
    }

    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.file.as_fd())
    }
}

/// Reads up to `len` bytes at `offset` of a file `size` bytes long when opened: from the page
/// cache on this task when it holds them all, else on the blocking pool.
async fn read_block_at(file: &Arc<File>, offset: u64, len: usize, size: u64) -> Result<Bytes> {
    let buffer_len = first_buffer_len(size, offset, len);
    if let Some(block) = cached::read(file, offset, len, buffer_len) {
        return Ok(block);
    }
    let file = file.clone();
    blocking(move || read_block(&file, offset, len, buffer_len)).await
}
