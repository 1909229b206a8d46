//! Open files and directories of one SFTP session, by handle.
//!
//! A handle is the decimal number of the entry; clients treat it as opaque bytes.

use std::collections::HashMap;

use russh_sftp::protocol::FileAttributes;
use wharf_access::{DescriptorBudget, DescriptorPermit, Listing, Reservation, Upload};
use wharf_vfs::{VPath, WriteMode};

use super::memory::HandleKind;
use super::read_ahead::ReadAhead;

/// Descriptors an open handle of `kind` holds: a read its file, a listing its folder, an
/// upload its temporary file and the folder it is published into.
fn descriptors_of(kind: HandleKind) -> usize {
    match kind {
        HandleKind::Read | HandleKind::Dir => 1,
        HandleKind::Write => 2,
    }
}

/// Descriptors one SSH connection's open handles may hold without asking the process's
/// budget: taken with the connection at admission, so that a client opening a few files at a
/// time is never refused, whatever other connections hold.
pub(crate) const HANDLE_DESCRIPTOR_FLOOR: usize = 16;

/// Where one SSH connection's open handles take their descriptors from: its floor, then the
/// process's budget. Clones share both (one per connection, shared by its channels).
#[derive(Debug, Clone)]
pub(crate) struct HandleDescriptors {
    floor: DescriptorBudget,
    process: DescriptorBudget,
}

impl HandleDescriptors {
    /// A floor of [`HANDLE_DESCRIPTOR_FLOOR`], then `process`.
    pub(crate) fn new(process: DescriptorBudget) -> Self {
        HandleDescriptors { floor: DescriptorBudget::new(HANDLE_DESCRIPTOR_FLOOR), process }
    }

    /// Takes the descriptors of a handle of `kind`, from the floor or else the process's
    /// budget; `None` when neither has room.
    pub(crate) fn try_take(&self, kind: HandleKind) -> Option<DescriptorPermit> {
        let count = descriptors_of(kind);
        self.floor.try_take(count).or_else(|| self.process.try_take(count))
    }
}

/// What an open handle has taken, given back when it closes: its memory, and its descriptors
/// from the process's budget.
pub(crate) struct HandlePayment {
    /// Its memory (see `memory::handle_cost`).
    pub(crate) _memory: Reservation,
    /// Its descriptors (see [`descriptors_of`]).
    pub(crate) _descriptors: DescriptorPermit,
}

/// A file opened for reading.
pub(crate) struct ReadHandle {
    /// Its path in the user's view.
    pub(crate) path: VPath,
    /// Its reads.
    pub(crate) reader: ReadAhead,
    /// What the handle takes, paid while it is open.
    pub(crate) _paid: HandlePayment,
}

/// A file opened for writing.
pub(crate) struct WriteHandle {
    /// Its path in the user's view.
    pub(crate) path: VPath,
    /// The upload in progress.
    pub(crate) upload: Upload,
    /// How it was opened.
    pub(crate) mode: WriteMode,
    /// End of the furthest write so far (the size `fstat` reports for a file being written).
    pub(crate) end: u64,
    /// A write failed: the upload must not be published on close.
    pub(crate) failed: bool,
    /// Attributes set through the handle of a whole-file upload, applied once it is
    /// published (before that, the path still names the old file, or nothing).
    pub(crate) deferred_attrs: Option<FileAttributes>,
    /// What the handle and the upload's buffers may take, paid while it is open.
    pub(crate) _paid: HandlePayment,
}

/// A directory being listed.
pub(crate) struct DirHandle {
    /// Its path in the user's view.
    pub(crate) path: VPath,
    /// The listing in progress.
    pub(crate) listing: Listing,
    /// Whether the last entries were sent.
    pub(crate) exhausted: bool,
    /// What the handle and the open directory take, paid while it is open.
    pub(crate) _paid: HandlePayment,
}

/// Anything a handle can stand for.
pub(crate) enum OpenHandle {
    /// See [`ReadHandle`].
    Read(ReadHandle),
    /// See [`WriteHandle`] (boxed: an upload is much larger than the other kinds).
    Write(Box<WriteHandle>),
    /// See [`DirHandle`].
    Dir(DirHandle),
}

impl OpenHandle {
    /// The path the handle was opened on.
    pub(crate) fn path(&self) -> &VPath {
        match self {
            OpenHandle::Read(handle) => &handle.path,
            OpenHandle::Write(handle) => &handle.path,
            OpenHandle::Dir(handle) => &handle.path,
        }
    }
}

/// The session already holds as many handles as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many open files and directories (at most {0})")]
pub(crate) struct TooManyHandles(pub(crate) usize);

/// Handles of one session.
pub(crate) struct HandleTable {
    open: HashMap<u32, OpenHandle>,
    next: u32,
    max: usize,
}

impl HandleTable {
    /// An empty table allowing `max` handles at once.
    pub(crate) fn new(max: usize) -> Self {
        HandleTable { open: HashMap::new(), next: 1, max }
    }

    /// Handles allowed at once.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Whether another handle may be opened.
    pub(crate) fn check_room(&self) -> Result<(), TooManyHandles> {
        if self.open.len() >= self.max { Err(TooManyHandles(self.max)) } else { Ok(()) }
    }

    /// Registers `handle` and returns the string the client will use for it.
    pub(crate) fn insert(&mut self, handle: OpenHandle) -> Result<String, TooManyHandles> {
        self.check_room()?;
        while self.open.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.open.insert(id, handle);
        Ok(id.to_string())
    }

    fn key(handle: &[u8]) -> Option<u32> {
        std::str::from_utf8(handle).ok()?.parse().ok()
    }

    /// The entry for the client's `handle`.
    pub(crate) fn get_mut(&mut self, handle: &[u8]) -> Option<&mut OpenHandle> {
        self.open.get_mut(&Self::key(handle)?)
    }

    /// Removes the entry for the client's `handle`.
    pub(crate) fn remove(&mut self, handle: &[u8]) -> Option<OpenHandle> {
        self.open.remove(&Self::key(handle)?)
    }

    /// Whether a file (not a directory) is open: a transfer may be in progress.
    pub(crate) fn has_open_files(&self) -> bool {
        self.open.values().any(|handle| !matches!(handle, OpenHandle::Dir(_)))
    }

    /// Removes every entry (the session is ending).
    pub(crate) fn take_all(&mut self) -> Vec<OpenHandle> {
        self.open.drain().map(|(_, handle)| handle).collect()
    }
}
