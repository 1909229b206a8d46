//! Reading an object: a positional read is one ranged `GET` of that range; a sequential read
//! is one streaming `GET` from the offset to the end, cut into chunks of [`TRANSFER_CHUNK`]
//! bytes, at most [`crate::storage::READ_AHEAD_CHUNKS`] of them ahead of the consumer. The
//! object is never held whole.

use std::os::fd::BorrowedFd;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use opendal::Operator;

use super::errors::from_store;
use crate::error::Result;
use crate::metadata::Metadata;
use crate::storage::{ReadFile, ReadStream, ReadStreamSender, TRANSFER_CHUNK};

/// An object open for reading, as it was when opened.
pub(super) struct ObjectReader {
    operator: Operator,
    key: String,
    metadata: Metadata,
}

impl ObjectReader {
    pub(super) fn new(operator: Operator, key: String, metadata: Metadata) -> Self {
        ObjectReader { operator, key, metadata }
    }
}

#[async_trait]
impl ReadFile for ObjectReader {
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let size = self.metadata.size;
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset.saturating_add(len as u64).min(size);
        let buffer =
            self.operator.read_with(&self.key).range(offset..end).await.map_err(from_store)?;
        Ok(buffer.to_bytes())
    }

    fn stream(self: Box<Self>, offset: u64) -> ReadStream {
        let (sender, stream) = ReadStream::channel();
        tokio::spawn(async move {
            if let Err(err) = self.send_from(offset, &sender).await {
                sender.send(Err(err)).await;
            }
        });
        stream
    }

    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl ObjectReader {
    /// Streams the object from `offset` into `sender` until the end or until the reader goes.
    async fn send_from(&self, offset: u64, sender: &ReadStreamSender) -> Result<()> {
        let size = self.metadata.size;
        if offset >= size {
            return Ok(());
        }
        let reader = self.operator.reader(&self.key).await.map_err(from_store)?;
        let mut body = reader.into_bytes_stream(offset..size).await.map_err(from_store)?;
        let mut chunk = BytesMut::with_capacity(TRANSFER_CHUNK);
        while let Some(piece) = body.next().await {
            let mut piece = piece.map_err(crate::error::Error::Io)?;
            while !piece.is_empty() {
                let take = piece.len().min(TRANSFER_CHUNK - chunk.len());
                chunk.extend_from_slice(&piece.split_to(take));
                if chunk.len() == TRANSFER_CHUNK {
                    let full =
                        std::mem::replace(&mut chunk, BytesMut::with_capacity(TRANSFER_CHUNK));
                    if !sender.send(Ok(full.freeze())).await {
                        return Ok(());
                    }
                }
            }
        }
        if !chunk.is_empty() {
            sender.send(Ok(chunk.freeze())).await;
        }
        Ok(())
    }
}
