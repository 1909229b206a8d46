//! Reading an object: a sequential read is one streaming `GET` from the offset to the end,
//! cut into chunks of [`TRANSFER_CHUNK`] bytes, at most [`crate::storage::READ_AHEAD_CHUNKS`]
//! of them ahead of the consumer. Positional reads (SFTP's read-ahead asks for one block after
//! the other) continue an open streaming `GET` when they start where the previous one ended,
//! and open one from their offset otherwise: a `GET` per block made the store answer 4,096
//! requests for a gibibyte and halved the SFTP download. The object is never held whole:
//! what an open `GET` holds is the piece of its body being cut.

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
    /// The streaming `GET` positional reads continue; a fair lock, so reads started one after
    /// the other take it in that order.
    open_get: tokio::sync::Mutex<Option<OpenGet>>,
}

/// A streaming `GET` of the object from some offset to its end.
struct OpenGet {
    /// Where the next byte of `body` is in the object.
    next: u64,
    body: std::pin::Pin<Box<opendal::FuturesBytesStream>>,
    /// What is left of the last piece of the body.
    pending: Bytes,
}

impl ObjectReader {
    /// Opens `key` with a `GET` of the whole object, whose answer gives the object's size and
    /// time: no `HEAD` first (a small file costs the store one request, as a direct client's
    /// download does), and the first reads continue that `GET`. `Ok(None)` when there is no
    /// object under `key`.
    pub(super) async fn open(
        operator: Operator,
        key: String,
        attributes: impl FnOnce(&opendal::Metadata) -> Metadata,
    ) -> Result<Option<Self>> {
        let reader = operator.reader(&key).await.map_err(from_store)?;
        // An unbounded range without a chunk size is one `GET` with no `Range` header.
        let mut body = reader.into_bytes_stream(..).await.map_err(from_store)?;
        let metadata = match body.metadata().await {
            Ok(stored) => attributes(&stored),
            Err(err) => match from_store(err) {
                crate::error::Error::NotFound => return Ok(None),
                other => return Err(other),
            },
        };
        let get = OpenGet { next: 0, body: Box::pin(body), pending: Bytes::new() };
        let open_get = tokio::sync::Mutex::new((metadata.size > 0).then_some(get));
        Ok(Some(ObjectReader { operator, key, metadata, open_get }))
    }

    /// A streaming `GET` from `offset` to the end of the object.
    async fn get_from(&self, offset: u64) -> Result<OpenGet> {
        let reader = self.operator.reader(&self.key).await.map_err(from_store)?;
        let body =
            reader.into_bytes_stream(offset..self.metadata.size).await.map_err(from_store)?;
        Ok(OpenGet { next: offset, body: Box::pin(body), pending: Bytes::new() })
    }
}

impl OpenGet {
    /// The next `len` bytes of the body.
    async fn take(&mut self, len: usize) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity(len);
        while out.len() < len {
            if self.pending.is_empty() {
                self.pending = match self.body.next().await {
                    Some(piece) => piece.map_err(crate::error::Error::Io)?,
                    None => {
                        return Err(crate::error::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the object ended before the size it had when opened",
                        )));
                    }
                };
            }
            let take = (len - out.len()).min(self.pending.len());
            out.extend_from_slice(&self.pending.split_to(take));
        }
        self.next += len as u64;
        Ok(out.freeze())
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
        let mut open_get = self.open_get.lock().await;
        let len = (end - offset) as usize;
        let (mut get, continued) = match open_get.take() {
            Some(get) if get.next == offset => (get, true),
            // Another place (or nothing open): a new `GET` from here; the old one is dropped.
            _ => (self.get_from(offset).await?, false),
        };
        // A `GET` left waiting may have been closed by the store meanwhile: a failed
        // continuation is tried once on a fresh one. A failed `GET` is never kept.
        let bytes = match get.take(len).await {
            Ok(bytes) => bytes,
            Err(_) if continued => {
                get = self.get_from(offset).await?;
                get.take(len).await?
            }
            Err(err) => return Err(err),
        };
        if get.next < size {
            *open_get = Some(get);
        } else {
            // Read to the body's end, so the connection goes back to the pool: a response
            // dropped before its end closes it, and the next file pays for a new one.
            let _ = get.body.next().await;
        }
        Ok(bytes)
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
        // The `GET` the open made, if it is still where this stream starts.
        let opened = self.open_get.lock().await.take().filter(|get| get.next == offset);
        let mut get = match opened {
            Some(get) => get,
            None => self.get_from(offset).await?,
        };
        let mut chunk = BytesMut::with_capacity(TRANSFER_CHUNK);
        let mut piece = std::mem::take(&mut get.pending);
        loop {
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
            piece = match get.body.next().await {
                Some(next) => next.map_err(crate::error::Error::Io)?,
                None => break,
            };
        }
        if !chunk.is_empty() {
            sender.send(Ok(chunk.freeze())).await;
        }
        Ok(())
    }
}
