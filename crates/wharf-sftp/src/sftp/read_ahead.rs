//! Reads of an open file, served from large blocks fetched ahead of the client.
//!
//! Clients ask for 32 KiB at a time (OpenSSH asks for up to 255 KiB when the server allows it)
//! and keep dozens of requests in flight. Each `Download::read_at` is one trip to the blocking
//! thread pool, so the file is read in blocks of [`BLOCK`] bytes instead: a request starts the
//! fetch of the blocks it needs, and when the client reads sequentially, of the next
//! [`READ_AHEAD_BLOCKS`] blocks too. Requests wait only for their own blocks and complete in
//! any order.
//!
//! Blocks are paid for in bytes from the session's memory budget
//! ([`wharf_access::SessionBudget`]): a block is fetched into the cache only once
//! [`BLOCK`] bytes are reserved, and the reservation lives as long as the block's memory does
//! (in the cache or in a reply still waiting to be sent; see [`Budgeted`]). When the budget is
//! spent, a request is served on its own: exactly the bytes it asks for are read, and nothing
//! is kept. Reads stay correct and are never refused or held back for memory; they only lose
//! the read-ahead. What the cache keeps: blocks a sequential reader has passed are forgotten,
//! and when a reader jumps elsewhere the blocks of where it was are released and the jump is
//! read on its own (blocks start again with the next request if it continues from there), so
//! one file holds at most the blocks of its last request and its read-ahead, and reads that
//! hop around the file cost no more than what they ask for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use russh_sftp::protocol::StatusCode;
use tokio_util::task::TaskTracker;
use wharf_access::{Download, Reservation, SessionBudget};
use wharf_vfs::offset::{MAX_OFFSET, check_offset};
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

/// Bytes read from storage together with the budget they are paid from: the reservation is
/// given back when the last slice of the bytes is dropped, wherever it went (the cache, a
/// reply waiting for the client), so the budget counts what is really held.
struct Budgeted {
    bytes: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads `len` bytes at `start` of `download`, paid from `reservation` if there is one
/// (shrunk to what was read); the first storage error is kept in `failure`.
async fn fetch(
    download: Arc<Download>,
    failure: Arc<Mutex<Option<Error>>>,
    start: u64,
    len: usize,
    reservation: Option<Reservation>,
) -> BlockResult {
    match download.read_at(start, len).await {
        Ok(bytes) => Ok(match reservation {
            Some(mut reservation) => {
                reservation.shrink_to(bytes.len());
                Bytes::from_owner(Budgeted { bytes, _reservation: reservation })
            }
            None => bytes,
        }),
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

/// The read of `wanted` from `head` (and `tail`): answered now when they are read, else once
/// they are.
fn answer(wanted: Wanted, head: Block, tail: Option<Block>) -> Read {
    match (head, tail) {
        (Block::Ready(head), None) => Read::Done(wanted.assemble(head, || None)),
        (Block::Ready(head), Some(Block::Ready(tail))) => {
            Read::Done(wanted.assemble(head, || Some(tail)))
        }
        (head, tail) => Read::Waiting(
            async move {
                let head = head.get().await;
                let tail = match tail {
                    Some(tail) if wanted.needs_tail(&head) => Some(tail.get().await),
                    _ => None,
                };
                wanted.assemble(head, || tail)
            }
            .boxed(),
        ),
    }
}

/// The blocks of one open file.
pub(crate) struct ReadAhead {
    download: Arc<Download>,
    /// What cached blocks are paid from.
    budget: SessionBudget,
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
    /// Starts serving reads of `download`, caching blocks paid from `budget`.
    pub(crate) fn new(download: Download, budget: SessionBudget) -> Self {
        let size_hint = download.metadata().size;
        ReadAhead {
            download: Arc::new(download),
            budget,
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

    /// Serves a read of up to `len` bytes at `offset`, at once when its blocks are there. An
    /// offset past the largest file position is refused ([`Error::InvalidOffset`]); a read
    /// reaching past it is short.
    pub(crate) fn read(&mut self, offset: u64, len: u32) -> Result<Read, Error> {
        let offset = check_offset(offset)?;
        let len = u64::from(len.min(MAX_READ_LEN)).min(MAX_OFFSET - offset);
        if len == 0 {
            // Nothing to read: no storage, no memory, and no change to where a sequential
            // reader is.
            let outcome = if offset < self.size_hint {
                ReadOutcome::Data { head: Bytes::new(), tail: Bytes::new() }
            } else {
                ReadOutcome::Eof
            };
            return Ok(Read::Done(outcome));
        }
        let first = offset / BLOCK;
        // No overflow: `offset + len` is at most `MAX_OFFSET`.
        let last = (offset + len - 1) / BLOCK;
        let sequential = offset == self.next_offset || self.blocks.contains_key(&first);
        self.next_offset = offset + len;
        if self.ends_before(first, offset) {
            // The block held the end of the file, and this read starts past it (a client
            // checking for the end, or reading a file that has grown since): it is read on
            // its own from where it starts, instead of the block again from its start. A
            // store whose files cannot grow in place answers that without a request.
            self.blocks.remove(&first);
            let exact = self.start(offset, len as usize, None);
            let read = answer(Wanted { start_in_block: 0, len: len as usize }, exact, None);
            return Ok(self.delivered(read));
        }
        let blocks = if sequential {
            // Everything before this request has been asked for already.
            self.blocks = self.blocks.split_off(&first);
            self.forget_stale(first);
            self.cached_or_reserved(first, last)
        } else {
            // The reader jumped away: what was cached for where it was is released, and this
            // read is served on its own. Fetching whole blocks for a read nothing may follow
            // would cost a block of memory and disk for a few bytes; if the next request
            // continues from here, that one starts the blocks and the read-ahead.
            self.blocks.clear();
            None
        };
        let read = match blocks {
            Some((head, tail)) => {
                self.read_ahead(last);
                let start_in_block = (offset - first * BLOCK) as usize;
                answer(Wanted { start_in_block, len: len as usize }, head, tail)
            }
            None => {
                // Exactly what was asked for, kept nowhere (also when the budget is spent).
                let exact = self.start(offset, len as usize, None);
                answer(Wanted { start_in_block: 0, len: len as usize }, exact, None)
            }
        };
        Ok(self.delivered(read))
    }

    /// Blocks `first` and (if another) `last` from the cache, the missing ones started with
    /// a reservation each; `None`, with nothing started, when the budget cannot pay for them.
    fn cached_or_reserved(&mut self, first: u64, last: u64) -> Option<(Block, Option<Block>)> {
        let wanted = if last > first { vec![first, last] } else { vec![first] };
        let missing: Vec<u64> =
            wanted.into_iter().filter(|index| !self.blocks.contains_key(index)).collect();
        let reservations = missing
            .iter()
            .map(|_| self.budget.try_reserve(BLOCK as usize))
            .collect::<Option<Vec<_>>>()?;
        for (index, reservation) in missing.into_iter().zip(reservations) {
            let block = self.start(index * BLOCK, BLOCK as usize, Some(reservation));
            self.blocks.insert(index, block);
        }
        let head = self.blocks.get(&first)?.clone();
        let tail = if last > first { Some(self.blocks.get(&last)?.clone()) } else { None };
        Some((head, tail))
    }

    /// Starts the blocks after `last` that a sequential reader will ask for next, as far as
    /// the file (as opened) goes and the budget pays.
    fn read_ahead(&mut self, last: u64) {
        for index in last + 1..=last + READ_AHEAD_BLOCKS {
            let start = index * BLOCK;
            if start >= self.size_hint {
                break;
            }
            if self.blocks.contains_key(&index) {
                continue;
            }
            let Some(reservation) = self.budget.try_reserve(BLOCK as usize) else { break };
            let block = self.start(start, BLOCK as usize, Some(reservation));
            self.blocks.insert(index, block);
        }
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

    /// Whether the cached block `index` is read, short (it ended the file) and ends before
    /// `offset`.
    fn ends_before(&self, index: u64, offset: u64) -> bool {
        match self.blocks.get(&index).and_then(|block| block.peek()) {
            Some(Ok(block)) => {
                (block.len() as u64) < BLOCK && offset >= index * BLOCK + block.len() as u64
            }
            _ => false,
        }
    }

    /// Drops a cached block that failed, so the read is tried again.
    fn forget_stale(&mut self, index: u64) {
        if let Some(Err(_)) = self.blocks.get(&index).and_then(|block| block.peek()) {
            self.blocks.remove(&index);
        }
    }

    /// Starts reading `len` bytes at `start`, paid from `reservation` if there is one.
    ///
    /// The read is polled once here: bytes in the page cache are read on the spot (see
    /// `wharf_vfs`'s local backend), and spawning a task for them would cost a trip through
    /// the scheduler per small file. A read that has to wait for the disk goes on in its own
    /// task, so read-ahead proceeds whether or not a request is waiting for it.
    fn start(&self, start: u64, len: usize, reservation: Option<Reservation>) -> Block {
        let mut fetch =
            fetch(self.download.clone(), self.failure.clone(), start, len, reservation).boxed();
        match fetch.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
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
        }
    }

    /// Blocks in the cache now.
    #[cfg(test)]
    fn cached_blocks(&self) -> usize {
        self.blocks.len()
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

    mod with_storage {
        use wharf_access::{Credential, LoginRequest, Password, Protocol, Session, SessionBudget};
        use wharf_testkit::{TEST_PASSWORD, TestShare, pattern};
        use wharf_vfs::VPath;

        use super::super::super::memory::test_budget;
        use super::super::*;

        const MIB: usize = 1024 * 1024;

        const USERS: &str = "users:\n  - name: alice\n    password: \"$HASH\"\n    home: alice\n";

        /// A share holding `alice/file.bin` (`len` bytes of pattern), a session of alice's
        /// and a memory budget of `per_session` bytes for her (and in total).
        async fn setup(
            len: usize,
            per_session: usize,
        ) -> (TestShare, Session, SessionBudget, Vec<u8>) {
            let share = TestShare::new(USERS);
            let data = pattern(len);
            share.put("alice/file.bin", &data);
            let session = share
                .gateway
                .authenticator
                .login(LoginRequest {
                    protocol: Protocol::Sftp,
                    peer: "127.0.0.1:40000".parse().expect("addr"),
                    user: "alice".to_owned(),
                    credential: Credential::Password(Password::new(TEST_PASSWORD)),
                })
                .await
                .expect("login");
            (share, session, test_budget(per_session), data)
        }

        async fn open(session: &Session, budget: &SessionBudget) -> ReadAhead {
            let path = VPath::resolve(&VPath::root(), "/file.bin").expect("path");
            ReadAhead::new(session.open_read(&path).await.expect("open"), budget.clone())
        }

        /// What a read answers with.
        async fn bytes_outcome(read: Read) -> ReadOutcome {
            match read {
                Read::Done(outcome) => outcome,
                Read::Waiting(pending) => pending.await,
            }
        }

        /// The bytes a read answers with (none at the end of the file).
        async fn bytes(read: Read) -> Vec<u8> {
            match bytes_outcome(read).await {
                ReadOutcome::Data { head, tail } => [head, tail].concat(),
                ReadOutcome::Eof => Vec::new(),
                ReadOutcome::Failed(failure) => panic!("read failed: {failure:?}"),
            }
        }

        async fn read(reader: &mut ReadAhead, offset: u64, len: u32) -> Vec<u8> {
            bytes(reader.read(offset, len).expect("valid offset")).await
        }

        fn expected(data: &[u8], offset: u64, len: u32) -> &[u8] {
            let start = (offset as usize).min(data.len());
            &data[start..(start + len as usize).min(data.len())]
        }

        /// Opens 16 files of 16 MiB at once on a budget of 1 MiB and reads each at 48
        /// descending places: one byte, and with `follow`, 100 more right after it. Checks
        /// every byte, and calls `after_step` with the files and the budget after each place.
        async fn hop_around(
            follow: bool,
            after_step: impl Fn(&[ReadAhead], &SessionBudget),
        ) -> (Vec<ReadAhead>, SessionBudget) {
            let (_share, session, budget, data) = setup(16 * MIB, MIB).await;
            let mut readers = Vec::new();
            for _ in 0..16 {
                readers.push(open(&session, &budget).await);
            }
            for step in 0..48u64 {
                let offset = (47 - step) * BLOCK + 7 * step;
                for reader in &mut readers {
                    assert_eq!(read(reader, offset, 1).await, expected(&data, offset, 1));
                    if follow {
                        let next = offset + 1;
                        assert_eq!(read(reader, next, 100).await, expected(&data, next, 100));
                    }
                }
                after_step(&readers, &budget);
            }
            (readers, budget)
        }

        fn cached_bytes(readers: &[ReadAhead]) -> usize {
            readers.iter().map(ReadAhead::cached_blocks).sum::<usize>() * BLOCK as usize
        }

        #[tokio::test]
        async fn reads_that_hop_around_are_answered_exactly_and_cache_nothing() {
            let (readers, _budget) = hop_around(false, |readers, budget| {
                assert_eq!(cached_bytes(readers), 0, "a jump is read on its own");
                assert_eq!(budget.in_use(), 0);
            })
            .await;
            for reader in readers {
                reader.close().await;
            }
        }

        #[tokio::test]
        async fn a_spent_budget_still_answers_every_read_and_caps_the_cache() {
            // The second read continues the first, so every file wants its blocks and their
            // read-ahead: far more than the budget.
            let (readers, budget) = hop_around(true, |readers, budget| {
                let cached = cached_bytes(readers);
                assert!(cached <= MIB, "{cached} bytes cached on a 1 MiB budget");
                assert!(budget.in_use() <= MIB);
            })
            .await;
            assert!(cached_bytes(&readers) > 0, "the budget was used");
            for reader in readers {
                reader.close().await;
            }
            assert_eq!(budget.in_use(), 0, "closing gives every byte back");
        }

        #[tokio::test]
        async fn sequential_reads_are_read_ahead_while_the_budget_allows() {
            let (_share, session, budget, data) = setup(3 * MIB + 1234, 16 * MIB).await;
            let mut reader = open(&session, &budget).await;
            assert_eq!(read(&mut reader, 0, 32 * 1024).await, expected(&data, 0, 32 * 1024));
            assert_eq!(
                reader.cached_blocks(),
                1 + READ_AHEAD_BLOCKS as usize,
                "the block read and the next ones"
            );
            let mut offset = 32 * 1024;
            while offset < data.len() as u64 {
                let got = read(&mut reader, offset, 255 * 1024).await;
                assert!(got == expected(&data, offset, 255 * 1024), "bytes at {offset}");
                assert!(reader.cached_blocks() <= 2 + READ_AHEAD_BLOCKS as usize);
                offset += got.len() as u64;
            }
            assert!(read(&mut reader, offset, 1000).await.is_empty(), "end of file");
            reader.close().await;
            assert_eq!(budget.in_use(), 0);
        }

        #[tokio::test]
        async fn a_reader_that_jumps_away_releases_the_blocks_it_left() {
            let (_share, session, budget, data) = setup(4 * MIB, 16 * MIB).await;
            let mut reader = open(&session, &budget).await;
            read(&mut reader, 0, 32 * 1024).await;
            assert_eq!(reader.cached_blocks(), 1 + READ_AHEAD_BLOCKS as usize);
            let far = 3 * MIB as u64 + 5;
            assert_eq!(read(&mut reader, far, 100).await, expected(&data, far, 100));
            assert_eq!(reader.cached_blocks(), 0, "the blocks left behind are released");
            // Read-ahead fetches still running hold their reservations until they end.
            reader.fetches.close();
            reader.fetches.wait().await;
            reader.fetches.reopen();
            assert_eq!(budget.in_use(), 0, "{} bytes still held", budget.in_use());
            // Going on from the new place starts blocks and read-ahead there.
            let next = far + 100;
            assert_eq!(read(&mut reader, next, 100).await, expected(&data, next, 100));
            assert!(reader.cached_blocks() > 1);
            reader.close().await;
        }

        #[tokio::test]
        async fn reads_go_uncached_while_the_budget_is_spent_and_cached_again_after() {
            let (_share, session, budget, data) = setup(2 * MIB, MIB).await;
            let hog = budget.try_reserve(MIB).expect("the whole budget");
            let mut reader = open(&session, &budget).await;
            let mut offset = 0;
            for _ in 0..8 {
                let got = read(&mut reader, offset, 32 * 1024).await;
                assert!(got == expected(&data, offset, 32 * 1024), "bytes at {offset}");
                assert_eq!(reader.cached_blocks(), 0, "nothing kept without budget");
                offset += got.len() as u64;
            }
            drop(hog);
            assert_eq!(read(&mut reader, offset, 10).await, expected(&data, offset, 10));
            assert!(reader.cached_blocks() > 0, "cached again once the budget allows");
            reader.close().await;
            assert_eq!(budget.in_use(), 0);
        }

        #[tokio::test]
        async fn offsets_past_the_largest_file_position_are_refused() {
            let (_share, session, budget, _data) = setup(1000, MIB).await;
            let mut reader = open(&session, &budget).await;
            for offset in [MAX_OFFSET + 1, u64::MAX] {
                let refused = reader.read(offset, 10).err().map(|err| err.kind());
                assert_eq!(refused, Some(wharf_vfs::ErrorKind::InvalidOffset), "{offset}");
            }
            // At the largest position itself: nothing to read there, and nothing wraps.
            assert!(read(&mut reader, MAX_OFFSET, 32 * 1024).await.is_empty());
            assert!(matches!(reader.read(MAX_OFFSET, 32 * 1024), Ok(Read::Done(ReadOutcome::Eof))));
            // Reading nothing inside the file is not the end of it.
            let nothing = ReadOutcome::Data { head: Bytes::new(), tail: Bytes::new() };
            assert_eq!(bytes_outcome(reader.read(10, 0).expect("valid")).await, nothing);
            assert!(read(&mut reader, MAX_OFFSET - 5, 32 * 1024).await.is_empty());
            reader.close().await;
        }
    }
}
