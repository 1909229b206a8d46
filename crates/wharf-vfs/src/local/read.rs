//! Reading local files: positional reads on the blocking pool in large blocks, and a
//! sequential stream that keeps a couple of blocks read ahead of the network.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::convert_metadata;
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

/// Fills up to `len` bytes from `offset`, stopping early only at the end of the file.
fn read_block(file: &File, offset: u64, len: usize) -> Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

#[async_trait]
impl ReadFile for LocalReader {
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let len = len.min(MAX_READ_AT);
        let file = self.file.clone();
        blocking(move || read_block(&file, offset, len)).await
    }

    fn stream(self: Box<Self>, offset: u64) -> ReadStream {
        let (sender, stream) = ReadStream::channel();
        let file = self.file;
        tokio::spawn(async move {
            let mut offset = offset;
            loop {
                let file = file.clone();
                let chunk = blocking(move || read_block(&file, offset, TRANSFER_CHUNK)).await;
                match chunk {
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
