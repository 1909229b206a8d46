//! Blocks of a download: the file arrives in large chunks (read ahead on the blocking pool,
//! never a thread hop per block), is converted to netascii if asked, and is cut into blocks.
//! A block is a slice of a chunk, or slices of two when it straddles a chunk boundary: the
//! bytes are never copied on their way to the socket. Blocks not yet acknowledged are kept for
//! retransmission; there are never more than a window of them.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::runtime::Handle;
use wharf_access::DownloadStream;
use wharf_vfs::{Error, Result};

use crate::netascii;

/// One block's bytes, as slices of the file's chunks.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    /// Inside one chunk (the common case).
    Whole(Bytes),
    /// Across chunk boundaries, in order.
    Pieces(Vec<Bytes>),
}

impl Block {
    /// The slices, in order.
    pub(crate) fn parts(&self) -> &[Bytes] {
        match self {
            Block::Whole(bytes) => std::slice::from_ref(bytes),
            Block::Pieces(pieces) => pieces,
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.parts().iter().map(Bytes::len).sum()
    }
}

/// The file as a sequence of numbered blocks.
pub(crate) struct BlockStore {
    stream: DownloadStream,
    netascii: bool,
    block_size: usize,
    /// Bytes of the current chunk not yet cut into blocks.
    pending: Bytes,
    end_of_file: bool,
    /// Number of the first retained block.
    first: u64,
    /// Blocks `first..` kept until acknowledged.
    retained: VecDeque<Block>,
}

impl BlockStore {
    /// Blocks of `block_size` bytes from `stream`, converted to netascii when `netascii`.
    pub(crate) fn new(stream: DownloadStream, netascii: bool, block_size: u16) -> Self {
        BlockStore {
            stream,
            netascii,
            block_size: usize::from(block_size),
            pending: Bytes::new(),
            end_of_file: false,
            first: 1,
            retained: VecDeque::new(),
        }
    }

    /// Block `n`: a retained one, or the next one cut from the file. A block shorter than the
    /// block size (possibly empty) is the last. Called from the transfer's own thread: the
    /// file is read on `runtime` only when the chunk at hand is used up, since entering the
    /// runtime for every block (tens of thousands a file at 512 bytes) costs more than
    /// cutting the block does.
    pub(crate) fn block_on_thread(&mut self, n: u64, runtime: &Handle) -> Result<Block> {
        match self.block_at_hand(n) {
            Some(block) => block,
            None => runtime.block_on(self.read_block()),
        }
    }

    /// Block `n` without reading the file, or `None` when it must be read: `n` is the next
    /// block and the chunk at hand does not hold a whole block.
    fn block_at_hand(&mut self, n: u64) -> Option<Result<Block>> {
        let produced = self.first + self.retained.len() as u64;
        if n < produced {
            let index = usize::try_from(n.saturating_sub(self.first)).unwrap_or(usize::MAX);
            return Some(
                self.retained
                    .get(index)
                    .cloned()
                    .ok_or(Error::Unsupported("a block before the window was requested")),
            );
        }
        if n > produced {
            return Some(Err(Error::Unsupported("a block beyond the next was requested")));
        }
        if self.pending.len() < self.block_size {
            return None;
        }
        let block = Block::Whole(self.pending.split_to(self.block_size));
        self.retained.push_back(block.clone());
        Some(Ok(block))
    }

    /// The next block, reading the file as far as it needs.
    async fn read_block(&mut self) -> Result<Block> {
        let block = self.cut().await?;
        self.retained.push_back(block.clone());
        Ok(block)
    }

    /// Forgets blocks before `n`: they are acknowledged, so they count as delivered.
    pub(crate) fn release_before(&mut self, n: u64) {
        while self.first < n {
            let Some(block) = self.retained.pop_front() else { break };
            self.stream.add_sent(block.len() as u64);
            self.first += 1;
        }
    }

    /// Marks the download complete (for the audit event): every block was acknowledged.
    pub(crate) fn finish(mut self) {
        let end = self.first + self.retained.len() as u64;
        self.release_before(end);
        self.stream.finish();
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.end_of_file {
            return Ok(None);
        }
        let chunk = self.stream.next_chunk().await?;
        if let Some(chunk) = &chunk {
            // Blocks go out as soon as they are cut, so a user's bandwidth limit is applied
            // as the file is read; what counts as delivered waits for the acknowledgements.
            self.stream.pace(chunk.len() as u64).await;
        }
        match chunk {
            Some(chunk) if self.netascii => Ok(Some(netascii::encode(&chunk))),
            Some(chunk) => Ok(Some(chunk)),
            None => {
                self.end_of_file = true;
                Ok(None)
            }
        }
    }

    /// The next block, from the chunk at hand and as many more as it needs.
    async fn cut(&mut self) -> Result<Block> {
        if self.pending.len() >= self.block_size {
            return Ok(Block::Whole(self.pending.split_to(self.block_size)));
        }
        // The block straddles chunks (or ends the file): gather its pieces.
        let mut pieces = Vec::with_capacity(2);
        let mut len = self.pending.len();
        if len > 0 {
            pieces.push(std::mem::take(&mut self.pending));
        }
        while len < self.block_size {
            let Some(mut chunk) = self.next_chunk().await? else { break };
            let needed = self.block_size - len;
            if chunk.len() > needed {
                pieces.push(chunk.split_to(needed));
                self.pending = chunk;
                break;
            }
            len += chunk.len();
            pieces.push(chunk);
        }
        Ok(match pieces.len() {
            0 => Block::Whole(Bytes::new()),
            1 => Block::Whole(pieces.swap_remove(0)),
            _ => Block::Pieces(pieces),
        })
    }
}
