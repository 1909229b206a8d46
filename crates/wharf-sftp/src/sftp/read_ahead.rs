//! Reads of an open file, served from large blocks fetched ahead of the client.
//!
//! Clients ask for 32 KiB at a time (OpenSSH asks for up to 255 KiB when the server allows it)
//! and keep dozens of requests in flight. Each `Download::read_at` is one trip to the blocking
//! thread pool, so the file is read in blocks of [`BLOCK`] bytes instead: a request starts the
//! fetch of the blocks it needs, and when the client reads sequentially, of the next
//! [`READ_AHEAD_BLOCKS`] blocks too. Requests wait only for their own blocks and complete in
//! any order. Blocks a sequential reader has passed are forgotten; at most
//! [`MAX_CACHED_BLOCKS`] are kept for readers that jump around.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{self, BoxFuture, Shared};
use russh_sftp::protocol::StatusCode;
use tokio_util::task::TaskTracker;
use wharf_access::Download;
use wharf_vfs::{Error, TRANSFER_CHUNK};

use crate::errors::status_of;

/// Size of one block read from storage.
pub(crate) const BLOCK: u64 = TRANSFER_CHUNK as u64;

/// Largest read served in one reply; larger requests get a short read (which SFTP allows and
/// clients continue from). A reply must fit in the 256 KiB packets clients accept, header
/// included, so this is OpenSSH's figure: 255 KiB.
pub(crate) const MAX_READ_LEN: u32 = 255 * 1024;

/// Blocks fetched beyond the last request of a sequential reader.
const READ_AHEAD_BLOCKS: u64 = 4;

/// Blocks kept at most per open file.
const MAX_CACHED_BLOCKS: usize = 48;

/// A failed block read, as the client will be told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadFailure {
    /// SFTP status.
    pub(crate) code: StatusCode,
    /// Reason.
    pub(crate) message: String,
}

type BlockResult = Result<Bytes, ReadFailure>;
type Block = Shared<BoxFuture<'static, BlockResult>>;

/// What a read request gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReadOutcome {
    /// Bytes from the file: `head` then `tail` (a request may straddle two blocks).
    Data {
        /// First part.
        head: Bytes,
        /// Second part, possibly empty.
        tail: Bytes,
    },
    /// The offset is at or past the end of the file.
    Eof,
    /// Storage failed.
    Failed(ReadFailure),
}

/// Reads block `index` of `download`; the first storage error is kept in `failure`.
async fn fetch_block(
    download: Arc<Download>,
    failure: Arc<Mutex<Option<Error>>>,
    index: u64,
) -> BlockResult {
    match download.read_at(index * BLOCK, BLOCK as usize).await {
        Ok(bytes) => Ok(bytes),
        Err(err) => {
            if let Ok(mut first) = failure.lock() {
                first.get_or_insert_with(|| err.replicate());
            }
            let (code, message) = status_of(&err);
            Err(ReadFailure { code, message })
        }
    }
}

/// The blocks of one open file.
pub(crate) struct ReadAhead {
    download: Arc<Download>,
    blocks: BTreeMap<u64, Block>,
    /// Where a sequential reader's next request starts.
    next_offset: u64,
    /// Size of the file when opened; nothing is read ahead beyond it.
    size_hint: u64,
    fetches: TaskTracker,
    /// The first storage error, for the audit record when the file is closed.
    failure: Arc<Mutex<Option<Error>>>,
}

impl ReadAhead {
    /// Starts serving reads of `download`.
    pub(crate) fn new(download: Download) -> Self {
        let size_hint = download.metadata().size;
        ReadAhead {
            download: Arc::new(download),
            blocks: BTreeMap::new(),
            next_offset: 0,
            size_hint,
            fetches: TaskTracker::new(),
            failure: Arc::default(),
        }
    }

    /// The open file.
    pub(crate) fn download(&self) -> &Download {
        &self.download
    }

    /// Starts serving a read of up to `len` bytes at `offset`; the returned future resolves
    /// when the blocks it needs are there and owns everything it uses.
    pub(crate) fn read(
        &mut self,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = ReadOutcome> + Send + 'static {
        let len = u64::from(len.min(MAX_READ_LEN));
        let first = offset / BLOCK;
        let last = if len == 0 { first } else { offset.saturating_add(len - 1) / BLOCK };
        let sequential = offset == self.next_offset || self.blocks.contains_key(&first);
        self.next_offset = offset.saturating_add(len);
        if sequential {
            // Everything before this request has been asked for already.
            self.blocks = self.blocks.split_off(&first);
        }
        self.forget_stale(first, offset);
        let head_block = self.block(first);
        let tail_block = (last > first).then(|| self.block(last));
        if sequential {
            for index in last + 1..=last + READ_AHEAD_BLOCKS {
                if index.saturating_mul(BLOCK) >= self.size_hint {
                    break;
                }
                // Started now, kept in the cache for the requests to come.
                drop(self.block(index));
            }
        }
        while self.blocks.len() > MAX_CACHED_BLOCKS {
            self.blocks.pop_first();
        }
        let start_in_block = (offset - first * BLOCK) as usize;
        let len = len as usize;
        async move {
            let head_block = match head_block.await {
                Ok(block) => block,
                Err(failure) => return ReadOutcome::Failed(failure),
            };
            if head_block.len() <= start_in_block {
                return ReadOutcome::Eof;
            }
            let head_end = head_block.len().min(start_in_block + len);
            let head = head_block.slice(start_in_block..head_end);
            let wanted_from_tail = len - head.len();
            let tail = match tail_block {
                // A short first block is the end of the file.
                Some(tail_block) if head_block.len() as u64 == BLOCK && wanted_from_tail > 0 => {
                    match tail_block.await {
                        Ok(block) => block.slice(..block.len().min(wanted_from_tail)),
                        // Part of the request could be read: answer with that part.
                        Err(_) => Bytes::new(),
                    }
                }
                _ => Bytes::new(),
            };
            ReadOutcome::Data { head, tail }
        }
    }

    /// Drops a cached block that can no longer answer `offset`: one that failed, or one that
    /// ended the file before `offset` (the file may have grown since).
    fn forget_stale(&mut self, index: u64, offset: u64) {
        let stale = match self.blocks.get(&index).and_then(|block| block.peek()) {
            Some(Err(_)) => true,
            Some(Ok(block)) => {
                (block.len() as u64) < BLOCK && offset >= index * BLOCK + block.len() as u64
            }
            None => false,
        };
        if stale {
            self.blocks.remove(&index);
        }
    }

    /// The block `index`, fetching it if it is not cached.
    ///
    /// The fetch is polled once here: a block in the page cache is read on the spot (see
    /// `wharf_vfs`'s local backend), and spawning a task for it would cost a trip through the
    /// scheduler per small file. A fetch that has to wait for the disk goes on in its own
    /// task, so read-ahead proceeds whether or not a request is waiting for it.
    fn block(&mut self, index: u64) -> Block {
        if let Some(block) = self.blocks.get(&index) {
            return block.clone();
        }
        let mut fetch = fetch_block(self.download.clone(), self.failure.clone(), index).boxed();
        let block = match fetch.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => future::ready(result).boxed().shared(),
            Poll::Pending => {
                let task = self.fetches.spawn(fetch);
                async move {
                    task.await.unwrap_or_else(|_| {
                        Err(ReadFailure {
                            code: StatusCode::Failure,
                            message: "the read was interrupted".to_owned(),
                        })
                    })
                }
                .boxed()
                .shared()
            }
        };
        self.blocks.insert(index, block.clone());
        block
    }

    /// Closes the file: waits for fetches still running, then records the download as
    /// finished (or failed, if storage failed).
    pub(crate) async fn close(self) {
        let ReadAhead { download, blocks, fetches, failure, .. } = self;
        drop(blocks);
        fetches.close();
        fetches.wait().await;
        let failure = failure.lock().ok().and_then(|mut slot| slot.take());
        match Arc::try_unwrap(download) {
            Ok(download) => match failure {
                Some(err) => download.fail(&err),
                None => download.finish(),
            },
            // Unreachable once every fetch ended; dropping records the download as aborted.
            Err(_) => tracing::debug!("a download was still shared when closed"),
        }
    }
}
