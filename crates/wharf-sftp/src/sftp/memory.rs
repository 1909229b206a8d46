//! What one SSH connection's SFTP sessions may hold in memory, and how it is paid for.
//!
//! Every buffer a client can make grow is reserved in bytes before it is spent, from the
//! connection's budget ([`wharf_access::SessionBudget`], taken from the process-wide one when
//! the connection is opened and shared by all its channels):
//!
//! - read-ahead blocks ([`super::read_ahead`]): from the budget only; without it a read is
//!   served exactly and nothing is kept;
//! - replies, from the moment their request is taken until the channel has them
//!   ([`super::request_loop`], [`super::output`]): first from a fixed floor of
//!   [`REPLY_FLOOR`] per channel, then from the budget; without either, the channel takes no
//!   new request until its own replies have gone out. The floor is per channel so that a
//!   channel whose replies have all gone out can always serve its next request;
//! - open files and directories ([`super::handles`]): [`handle_cost`] each, first from a
//!   fixed floor of [`HANDLE_FLOOR`] per connection, then from the budget; without either,
//!   the open is refused with a failure that says why.
//!
//! A reply's bytes are counted even when they are slices of a read-ahead block that is counted
//! too: the budget may over-count what is held, never under-count it.

use wharf_access::{Reservation, SessionBudget};
use wharf_vfs::{TRANSFER_CHUNK, VPath};

use super::codec::MAX_PACKET_LEN;

/// Reply bytes each channel may hold without drawing on the budget: room for the largest
/// reply and then some.
pub(crate) const REPLY_FLOOR: usize = 2 * MAX_PACKET_LEN;

/// What any open handle holds besides its buffers: the handle, the open file and its audit
/// record (about 1 KiB; the path comes on top, see [`handle_cost`]).
const HANDLE_STATE: usize = 1024;

/// What an open directory holds: the C library's buffer of directory entries (32 KiB).
const DIR_BUFFERS: usize = 32 * 1024;

/// What an open upload may hold: storage gathers writes into a block of [`TRANSFER_CHUNK`]
/// bytes (one write can overshoot it by a packet) while the previous block is being written.
const UPLOAD_BUFFERS: usize = 2 * (TRANSFER_CHUNK + MAX_PACKET_LEN);

/// Handle bytes each connection may hold without drawing on the budget: one upload, with a
/// directory and a few dozen files beside it, so that a client doing one thing at a time is
/// never refused, whatever the budgets have left.
pub(crate) const HANDLE_FLOOR: usize = UPLOAD_BUFFERS + 128 * 1024;

/// What an open handle is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandleKind {
    /// A file opened for reading (its read-ahead blocks are paid for on their own).
    Read,
    /// A file opened for writing.
    Write,
    /// A directory being listed.
    Dir,
}

/// The bytes an open handle of `kind` on `path` may hold: its state, the path twice (the
/// handle's and the audit record's copies) and its buffers.
pub(crate) fn handle_cost(kind: HandleKind, path: &VPath) -> usize {
    let buffers = match kind {
        HandleKind::Read => 0,
        HandleKind::Write => UPLOAD_BUFFERS,
        HandleKind::Dir => DIR_BUFFERS,
    };
    HANDLE_STATE + 2 * path.as_str().len() + buffers
}

/// A fixed floor, then the connection's budget.
#[derive(Debug, Clone)]
pub(crate) struct Allowance {
    floor: SessionBudget,
    budget: SessionBudget,
}

impl Allowance {
    /// `floor` bytes of its own, then `budget`.
    fn new(floor: usize, budget: SessionBudget) -> Self {
        Allowance { floor: SessionBudget::fixed(floor), budget }
    }

    /// Reserves `bytes` from the floor, or else from the budget; `None` if neither has room.
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        self.floor.try_reserve(bytes).or_else(|| self.budget.try_reserve(bytes))
    }
}

/// The memory of one SSH connection's SFTP sessions.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionMemory {
    /// The connection's budget (read-ahead blocks draw on it directly).
    pub(crate) budget: SessionBudget,
    /// For open uploads and directories.
    pub(crate) handles: Allowance,
}

impl ConnectionMemory {
    /// The memory of a connection whose budget is `budget`.
    pub(crate) fn new(budget: SessionBudget) -> Self {
        ConnectionMemory { handles: Allowance::new(HANDLE_FLOOR, budget.clone()), budget }
    }

    /// What one more channel's replies are paid from: a floor of its own, then the budget.
    pub(crate) fn replies(&self) -> Allowance {
        Allowance::new(REPLY_FLOOR, self.budget.clone())
    }
}

/// A session's budget of `bytes`, alone in a process budget of as many, for tests.
#[cfg(test)]
pub(crate) fn test_budget(bytes: usize) -> SessionBudget {
    use wharf_access::{ByteSize, MemoryBudget, MemoryConfig};
    let size = ByteSize(bytes as u64);
    MemoryBudget::new(&MemoryConfig { per_session: size, total: size })
        .expect("a valid budget")
        .session()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_comes_first_then_the_budget() {
        let budget = test_budget(1024 * 1024);
        let memory = ConnectionMemory::new(budget.clone());
        let replies = memory.replies();
        let on_floor = replies.try_reserve(REPLY_FLOOR).expect("the floor");
        assert_eq!(budget.in_use(), 0, "the floor costs the budget nothing");
        let on_budget = replies.try_reserve(1000).expect("the budget");
        assert_eq!(budget.in_use(), 1000);
        // Another channel has a floor of its own.
        assert!(memory.replies().try_reserve(REPLY_FLOOR).is_some());
        drop((on_floor, on_budget));
        assert_eq!(budget.in_use(), 0);
        // Handles: the floor holds one upload; the next one draws on the budget.
        let path = VPath::resolve(&VPath::root(), "/upload.bin").expect("path");
        let upload = handle_cost(HandleKind::Write, &path);
        assert!(upload > UPLOAD_BUFFERS && upload < HANDLE_FLOOR);
        let first = memory.handles.try_reserve(upload).expect("floor");
        assert_eq!(budget.in_use(), 0);
        let room = HANDLE_FLOOR - upload;
        let second = memory.handles.try_reserve(room + 1).expect("the budget");
        assert_eq!(budget.in_use(), room + 1);
        drop((first, second));
        assert_eq!(budget.in_use(), 0);
    }
}
