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
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
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

/// A block of the file, read or being read.
///
/// A block read on the spot is kept as it is rather than as a finished [`Shared`] future:
/// polling a `Shared` to its end wakes every task that polled it, the polling one included,
/// and a task that wakes itself is treated by tokio as yielding and handed to another worker
/// thread. For a client fetching many small files that was a thread switch per file.
#[derive(Clone)]
enum Block {
    /// Read.
    Ready(BlockResult),
    /// Being read by a task of its own.
    Fetching(Shared<BoxFuture<'static, BlockResult>>),
}

impl Block {
    /// The block, once read.
    async fn get(self) -> BlockResult {
        match self {
            Block::Ready(result) => result,
            Block::Fetching(fetch) => fetch.await,
        }
    }

    /// The block if it has been read.
    fn peek(&self) -> Option<&BlockResult> {
        match self {
            Block::Ready(result) => Some(result),
            Block::Fetching(fetch) => fetch.peek(),
        }
    }
}

/// A read request, answered now or once its blocks are read.
pub(crate) enum Read {
    /// Everything it needs was there.
    Done(ReadOutcome),
    /// Resolves when the blocks it needs are there; owns everything it uses.
    Waiting(BoxFuture<'static, ReadOutcome>),
}

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

impl ReadOutcome {
    /// Bytes of the file this outcome answers with.
    fn data_len(&self) -> u64 {
        match self {
            ReadOutcome::Data { head, tail } => (head.len() + tail.len()) as u64,
            ReadOutcome::Eof | ReadOutcome::Failed(_) => 0,
        }
    }
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

/// The part of its blocks a read wants.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    /// Where the read starts in its first block.
    start_in_block: usize,
    /// How many bytes it wants.
    len: usize,
}

impl Wanted {
    /// Whether the read goes on into a second block, given its first: it does when the first
    /// is whole (a short block ends the file) and does not hold everything.
    fn needs_tail(&self, head: &BlockResult) -> bool {
        head.as_ref().is_ok_and(|head| {
            head.len() as u64 == BLOCK
                && head.len() - self.start_in_block.min(head.len()) < self.len
        })
    }

    /// The answer, from the first block and (when [`Wanted::needs_tail`]) the second.
    fn assemble(
        &self,
        head: BlockResult,
        tail: impl FnOnce() -> Option<BlockResult>,
    ) -> ReadOutcome {
        let needs_tail = self.needs_tail(&head);
        let head = match head {
            Ok(block) => block,
            Err(failure) => return ReadOutcome::Failed(failure),
        };
        if head.len() <= self.start_in_block {
            return ReadOutcome::Eof;
        }
        let head_end = head.len().min(self.start_in_block + self.len);
        let wanted_from_tail = self.len - (head_end - self.start_in_block);
        let tail = match if needs_tail { tail() } else { None } {
            Some(Ok(block)) => block.slice(..block.len().min(wanted_from_tail)),
            // Part of the request could be read: answer with that part.
            Some(Err(_)) | None => Bytes::new(),
        };
        ReadOutcome::Data { head: head.slice(self.start_in_block..head_end), tail }
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

    /// Serves a read of up to `len` bytes at `offset`, at once when its blocks are there.
    pub(crate) fn read(&mut self, offset: u64, len: u32) -> Read {
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
        let wanted =
            Wanted { start_in_block: (offset - first * BLOCK) as usize, len: len as usize };
        let read = match (head_block, tail_block) {
            (Block::Ready(head), None) => Read::Done(wanted.assemble(head, || None)),
            (Block::Ready(head), Some(Block::Ready(tail))) => {
                Read::Done(wanted.assemble(head, || Some(tail)))
            }
            (head_block, tail_block) => Read::Waiting(
                async move {
                    let head = head_block.get().await;
                    let tail = match tail_block {
                        Some(tail_block) if wanted.needs_tail(&head) => {
                            Some(tail_block.get().await)
                        }
                        _ => None,
                    };
                    wanted.assemble(head, || tail)
                }
                .boxed(),
            ),
        };
        self.delivered(read)
    }

    /// Counts the bytes a read answers with as delivered (blocks read ahead count only
    /// when a request is answered from them), after the user's bandwidth allows them.
    fn delivered(&self, read: Read) -> Read {
        let download = self.download.clone();
        match read {
            Read::Done(outcome) if !download.is_rate_limited() => {
                download.add_sent(outcome.data_len());
                Read::Done(outcome)
            }
            Read::Done(outcome) => Read::Waiting(
                async move {
                    download.pace(outcome.data_len()).await;
                    download.add_sent(outcome.data_len());
                    outcome
                }
                .boxed(),
            ),
            Read::Waiting(pending) => Read::Waiting(
                async move {
                    let outcome = pending.await;
                    download.pace(outcome.data_len()).await;
                    download.add_sent(outcome.data_len());
                    outcome
                }
                .boxed(),
            ),
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
            Poll::Ready(result) => Block::Ready(result),
            Poll::Pending => {
                let task = self.fetches.spawn(fetch);
                let fetching = async move {
                    task.await.unwrap_or_else(|_| {
                        Err(ReadFailure {
                            code: StatusCode::Failure,
                            message: "the read was interrupted".to_owned(),
                        })
                    })
                }
                .boxed()
                .shared();
                Block::Fetching(fetching)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn block(len: usize, fill: u8) -> BlockResult {
        Ok(Bytes::from(vec![fill; len]))
    }

    fn failure() -> BlockResult {
        Err(ReadFailure { code: StatusCode::Failure, message: "disk".to_owned() })
    }

    fn data(outcome: ReadOutcome) -> (usize, usize) {
        match outcome {
            ReadOutcome::Data { head, tail } => (head.len(), tail.len()),
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn a_read_inside_one_block_takes_no_tail() {
        let wanted = Wanted { start_in_block: 100, len: 4096 };
        let whole = block(BLOCK as usize, 1);
        assert!(!wanted.needs_tail(&whole));
        assert_eq!(data(wanted.assemble(whole, || panic!("no tail needed"))), (4096, 0));
    }

    #[test]
    fn a_read_across_two_blocks_takes_the_rest_from_the_second() {
        let start = BLOCK as usize - 1000;
        let wanted = Wanted { start_in_block: start, len: 32 * 1024 };
        let whole = block(BLOCK as usize, 1);
        assert!(wanted.needs_tail(&whole));
        assert_eq!(
            data(wanted.assemble(whole.clone(), || Some(block(BLOCK as usize, 2)))),
            (1000, 32 * 1024 - 1000)
        );
        // The second block ends the file early: what there is.
        assert_eq!(data(wanted.assemble(whole.clone(), || Some(block(10, 2)))), (1000, 10));
        // The second block failed: the part that could be read.
        assert_eq!(data(wanted.assemble(whole, || Some(failure()))), (1000, 0));
    }

    #[test]
    fn a_short_first_block_is_the_end_of_the_file() {
        let wanted = Wanted { start_in_block: 0, len: 32 * 1024 };
        let short = block(4096, 1);
        assert!(!wanted.needs_tail(&short));
        assert_eq!(data(wanted.assemble(short.clone(), || Some(block(5, 2)))), (4096, 0));
        let past_end = Wanted { start_in_block: 4096, len: 32 * 1024 };
        assert_eq!(past_end.assemble(short, || None), ReadOutcome::Eof);
    }

    #[test]
    fn a_failed_first_block_fails_the_read() {
        let wanted = Wanted { start_in_block: 0, len: 10 };
        assert!(!wanted.needs_tail(&failure()));
        assert!(matches!(wanted.assemble(failure(), || None), ReadOutcome::Failed(_)));
    }
}
