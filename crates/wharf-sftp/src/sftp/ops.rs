//! SFTP requests carried out on the user's [`Session`].
//!
//! Every request becomes one session call (or a few), so the user's permissions, mounts and
//! atomic uploads apply exactly as on every other protocol. Paths are resolved against `/`,
//! the user's root: `..` never leads above it and absolute host paths are just names inside it.
//!
//! Open flags:
//!
//! | flags | session call |
//! |---|---|
//! | `READ` (without `WRITE`) | `open_read` |
//! | `WRITE` + `CREAT` + `EXCL` | `open_write(CreateNew)` (atomic, fails if the file exists) |
//! | `WRITE` + `TRUNC` | `open_write(Replace)` (atomic: published on close) |
//! | `WRITE` + `APPEND` | `open_write(Append)` (a resume: needs `append` on an existing file) |
//! | `WRITE` alone | `open_write(At(0))` (writes in place at the client's offsets) |
//!
//! Without `CREAT`, a file that does not exist is an error, as the flags say.

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use russh_sftp::protocol::{
    Attrs, File, FileAttributes, Handle, Name, OpenFlags, Packet, StatusCode,
};
use wharf_access::{Offense, Permissions, Session};
use wharf_vfs::offset::check_span;
use wharf_vfs::{Error, Metadata, VPath, WriteMode};

use super::attrs::{file_attributes, longname, system_time};
use super::codec::{Request, WriteRequest, encode, ok, status};
use super::handles::{
    DirHandle, HandleDescriptors, HandlePayment, HandleTable, OpenHandle, ReadHandle,
    TooManyHandles, WriteHandle,
};
use super::memory::{ConnectionMemory, HandleKind, handle_cost};
use super::output::Reply;
use super::read_ahead::{MAX_READ_LEN, Read, ReadAhead, ReadOutcome};
use crate::errors::status_of;

/// Directory entries per `SSH_FXP_NAME` reply.
const READDIR_BATCH: usize = 100;

/// Why a request is refused: a storage or session error, or a protocol-level reason.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The session or storage said no.
    Storage(Error),
    /// Refused here, with this status.
    Status(StatusCode, String),
}

impl From<Error> for Refusal {
    fn from(err: Error) -> Self {
        Refusal::Storage(err)
    }
}

impl From<TooManyHandles> for Refusal {
    fn from(err: TooManyHandles) -> Self {
        Refusal::Status(StatusCode::Failure, err.to_string())
    }
}

impl Refusal {
    fn unsupported(what: &str) -> Self {
        Refusal::Status(StatusCode::OpUnsupported, what.to_owned())
    }

    /// The handle names nothing open.
    pub(super) fn bad_handle() -> Self {
        Refusal::Status(StatusCode::Failure, "invalid handle".to_owned())
    }

    fn wrong_handle(expected: &str) -> Self {
        Refusal::Status(StatusCode::Failure, format!("the handle is not {expected}"))
    }

    /// The status reply for request `id`.
    pub(crate) fn into_status(self, id: u32) -> Bytes {
        match self {
            Refusal::Storage(err) => {
                let (code, message) = status_of(&err);
                status(id, code, &message)
            }
            Refusal::Status(code, message) => status(id, code, &message),
        }
    }
}

/// The reply to a request.
pub(crate) enum Answer {
    /// Ready now.
    Now(Reply),
    /// A read, to be completed concurrently with other requests; `reserved` is the number of
    /// bytes it may return.
    Later {
        /// Resolves to the reply.
        reply: BoxFuture<'static, Reply>,
        /// Bytes the read may return.
        reserved: usize,
    },
}

/// A packet reply, or the status of a refusal.
fn packet_or_status(id: u32, result: Result<Bytes, Refusal>) -> Answer {
    Answer::Now(Reply::Packet(result.unwrap_or_else(|refusal| refusal.into_status(id))))
}

/// The reply to read request `id`.
fn read_reply(id: u32, outcome: ReadOutcome) -> Reply {
    match outcome {
        ReadOutcome::Data { head, tail } => Reply::Data { id, head, tail },
        ReadOutcome::Eof => Reply::Packet(status(id, StatusCode::Eof, "End of file")),
        ReadOutcome::Failed(failure) => Reply::Packet(status(id, failure.code, &failure.message)),
    }
}

/// One name in an `SSH_FXP_NAME` reply, for realpath and readlink.
pub(crate) fn single_name(id: u32, name: String) -> Bytes {
    encode(Packet::Name(Name {
        id,
        files: vec![File {
            longname: name.clone(),
            filename: name,
            attrs: FileAttributes::empty(),
        }],
    }))
}

fn attrs_reply(id: u32, attrs: FileAttributes) -> Bytes {
    encode(Packet::Attrs(Attrs { id, attrs }))
}

/// The requests of one session, carried out on its [`Session`] and handle table.
pub(crate) struct Operations {
    pub(super) session: Session,
    pub(super) handles: HandleTable,
    /// What the session's buffers are paid from.
    pub(super) memory: ConnectionMemory,
    /// What its handles' descriptors are taken from.
    descriptors: HandleDescriptors,
}

impl Operations {
    /// Counts `offense` against the client's address in the shared defender.
    pub(crate) fn report(&self, offense: Offense) {
        self.session.report(offense);
    }

    /// Resolves a client path against the user's root; a hostile path (control bytes)
    /// counts against the client's address in the shared defender, a merely unusable one
    /// (too long) does not (`Offense::for_refused_path`).
    pub(crate) fn resolve(&self, path: &str) -> Result<VPath, Refusal> {
        VPath::resolve(&VPath::root(), path).map_err(|err| {
            if let Some(offense) = Offense::for_refused_path(&err) {
                self.session.report(offense);
            }
            Refusal::Storage(Error::InvalidPath(err))
        })
    }

    /// Operations for `session`, allowing `max_open_handles` handles, with buffers paid
    /// from `memory` and the handles' descriptors taken from `descriptors`.
    pub(crate) fn new(
        session: Session,
        max_open_handles: usize,
        memory: ConnectionMemory,
        descriptors: HandleDescriptors,
    ) -> Self {
        Operations { session, handles: HandleTable::new(max_open_handles), memory, descriptors }
    }

    /// Pays for a handle of `kind` on `path` (its memory, then its descriptors), or says why
    /// it cannot be opened.
    fn pay_for_handle(&self, kind: HandleKind, path: &VPath) -> Result<HandlePayment, Refusal> {
        let memory = self.memory.handles.try_reserve(handle_cost(kind, path)).ok_or_else(|| {
            Refusal::Status(
                StatusCode::Failure,
                "this connection's open files hold all the memory it may use; \
                 close some and try again"
                    .to_owned(),
            )
        })?;
        let descriptors = self.descriptors.try_take(kind).ok_or_else(|| {
            Refusal::Status(
                StatusCode::Failure,
                "the server has no file descriptors left for more open files; \
                 close some and try again"
                    .to_owned(),
            )
        })?;
        Ok(HandlePayment { _memory: memory, _descriptors: descriptors })
    }

    /// Whether a file is open (a transfer may be in progress).
    pub(crate) fn has_open_files(&self) -> bool {
        self.handles.has_open_files()
    }

    /// Carries out one request.
    pub(crate) async fn answer(&mut self, request: Request) -> Answer {
        let packet = match request {
            Request::Write(write) => {
                let id = write.id;
                return packet_or_status(id, self.write(write).await);
            }
            Request::Other(packet) => packet,
        };
        let id = packet.get_request_id();
        let result = match packet {
            Packet::Read(read) => {
                return self.read(read.id, read.handle.as_bytes(), read.offset, read.len);
            }
            Packet::Open(open) => self.open(open.id, &open.filename, open.pflags).await,
            Packet::Close(close) => self.close(close.id, close.handle.as_bytes()).await,
            Packet::Lstat(lstat) => self.stat(lstat.id, &lstat.path, false).await,
            Packet::Stat(stat) => self.stat(stat.id, &stat.path, true).await,
            Packet::Fstat(fstat) => self.fstat(fstat.id, fstat.handle.as_bytes()).await,
            Packet::SetStat(set) => self.setstat(set.id, &set.path, &set.attrs).await,
            Packet::FSetStat(set) => self.fsetstat(set.id, set.handle.as_bytes(), set.attrs).await,
            Packet::OpenDir(open) => self.opendir(open.id, &open.path).await,
            Packet::ReadDir(read) => self.readdir(read.id, read.handle.as_bytes()).await,
            Packet::Remove(remove) => self.remove(remove.id, &remove.filename).await,
            Packet::MkDir(mkdir) => self.mkdir(mkdir.id, &mkdir.path).await,
            Packet::RmDir(rmdir) => self.rmdir(rmdir.id, &rmdir.path).await,
            Packet::RealPath(realpath) => self.realpath(realpath.id, &realpath.path),
            Packet::Rename(rename) => {
                self.rename_no_replace(rename.id, &rename.oldpath, &rename.newpath).await
            }
            Packet::ReadLink(readlink) => self.readlink(readlink.id, &readlink.path).await,
            Packet::Symlink(_) => {
                Err(Refusal::unsupported("creating symbolic links is not supported on this server"))
            }
            Packet::Extended(extended) => {
                self.extended(extended.id, &extended.request, extended.data).await
            }
            Packet::Init(_) => Err(Refusal::Status(
                StatusCode::Failure,
                "the session is already initialized".into(),
            )),
            // Replies sent by a client (status, data, ...) are not requests.
            _ => Err(Refusal::Status(StatusCode::BadMessage, "not a request".to_owned())),
        };
        packet_or_status(id, result)
    }

    async fn open(&mut self, id: u32, filename: &str, flags: OpenFlags) -> Result<Bytes, Refusal> {
        self.handles.check_room()?;
        let path = self.resolve(filename)?;
        let handle = if !flags.contains(OpenFlags::WRITE) {
            // Paid for before storage is touched.
            let paid = self.pay_for_handle(HandleKind::Read, &path)?;
            let download = self.session.open_read(&path).await?;
            OpenHandle::Read(ReadHandle {
                path,
                reader: ReadAhead::new(download, self.memory.budget.clone()),
                _paid: paid,
            })
        } else {
            let mode = if flags.contains(OpenFlags::EXCLUDE) {
                WriteMode::CreateNew
            } else if flags.contains(OpenFlags::TRUNCATE) {
                WriteMode::Replace
            } else if flags.contains(OpenFlags::APPEND) {
                WriteMode::Append
            } else {
                WriteMode::At(0)
            };
            // Paid for before storage is touched.
            let paid = self.pay_for_handle(HandleKind::Write, &path)?;
            if !flags.contains(OpenFlags::CREATE) {
                // Without CREAT the file must exist; the session would create it.
                self.session.stat(&path).await?;
            }
            let upload = self.session.open_write(&path, mode).await?;
            OpenHandle::Write(Box::new(WriteHandle {
                path,
                upload,
                mode,
                end: 0,
                failed: false,
                deferred_attrs: None,
                _paid: paid,
            }))
        };
        let handle = self.handles.insert(handle)?;
        Ok(encode(Packet::Handle(Handle { id, handle })))
    }

    async fn close(&mut self, id: u32, handle: &[u8]) -> Result<Bytes, Refusal> {
        match self.handles.remove(handle).ok_or_else(Refusal::bad_handle)? {
            OpenHandle::Read(read) => read.reader.close().await,
            OpenHandle::Dir(_) => {}
            OpenHandle::Write(write) => self.finish_upload(*write).await?,
        }
        Ok(ok(id))
    }

    /// Publishes an upload (or, after a failed write, abandons it) and applies attributes set
    /// while it was open.
    async fn finish_upload(&mut self, write: WriteHandle) -> Result<(), Refusal> {
        let WriteHandle { path, upload, mode, failed, deferred_attrs, .. } = write;
        if failed {
            drop(upload);
            let outcome = if mode.is_atomic() {
                "nothing was published"
            } else {
                "the file holds what was written before the failure"
            };
            return Err(Refusal::Status(
                StatusCode::Failure,
                format!("a write to this file failed earlier; {outcome}"),
            ));
        }
        upload.commit().await?;
        if let Some(attrs) = deferred_attrs {
            self.set_attributes(&path, &attrs).await?;
        }
        Ok(())
    }

    fn read(&mut self, id: u32, handle: &[u8], offset: u64, len: u32) -> Answer {
        let reader = match self.handles.get_mut(handle) {
            Some(OpenHandle::Read(read)) => &mut read.reader,
            Some(_) => return packet_or_status(id, Err(Refusal::wrong_handle("open for reading"))),
            None => return packet_or_status(id, Err(Refusal::bad_handle())),
        };
        match reader.read(offset, len) {
            Ok(Read::Done(outcome)) => Answer::Now(read_reply(id, outcome)),
            Ok(Read::Waiting(pending)) => Answer::Later {
                reply: async move { read_reply(id, pending.await) }.boxed(),
                reserved: len.min(MAX_READ_LEN) as usize,
            },
            Err(err) => packet_or_status(id, Err(err.into())),
        }
    }

    async fn write(&mut self, request: WriteRequest) -> Result<Bytes, Refusal> {
        let WriteRequest { id, handle, offset, data } = request;
        let write = match self.handles.get_mut(&handle) {
            Some(OpenHandle::Write(write)) => write,
            Some(_) => return Err(Refusal::wrong_handle("open for writing")),
            None => return Err(Refusal::bad_handle()),
        };
        // Where the write ends; an end past the largest file position is refused, whatever
        // the mode, before anything is written.
        let end = check_span(offset, data.len() as u64)?;
        let written = if write.mode == WriteMode::Append {
            // APPEND: every write goes to the end, whatever its offset says.
            write.upload.write(data).await
        } else {
            write.upload.write_at(offset, data).await
        };
        match written {
            Ok(()) => {
                write.end = write.end.max(end);
                Ok(ok(id))
            }
            Err(err) => {
                write.failed = true;
                Err(err.into())
            }
        }
    }

    async fn stat(&mut self, id: u32, path: &str, follow: bool) -> Result<Bytes, Refusal> {
        let path = self.resolve(path)?;
        let meta = if follow {
            self.session.stat(&path).await?
        } else {
            self.session.lstat(&path).await?
        };
        Ok(attrs_reply(id, file_attributes(&meta)))
    }

    async fn fstat(&mut self, id: u32, handle: &[u8]) -> Result<Bytes, Refusal> {
        let meta = match self.handles.get_mut(handle).ok_or_else(Refusal::bad_handle)? {
            OpenHandle::Read(read) => read.reader.download().metadata().clone(),
            OpenHandle::Dir(dir) => self.session.stat(&dir.path).await?,
            OpenHandle::Write(write) if write.mode.is_atomic() => {
                // Not published yet: the path still names the old file (or nothing).
                Metadata::plain_file(write.end, Some(std::time::SystemTime::now()))
            }
            OpenHandle::Write(write) => {
                let end = write.end;
                let mut meta = self.session.stat(&write.path).await?;
                // Queued writes may not have reached the file yet.
                meta.size = meta.size.max(end);
                meta
            }
        };
        Ok(attrs_reply(id, file_attributes(&meta)))
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: &str,
        attrs: &FileAttributes,
    ) -> Result<Bytes, Refusal> {
        let path = self.resolve(path)?;
        self.set_attributes(&path, attrs).await?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: &[u8],
        attrs: FileAttributes,
    ) -> Result<Bytes, Refusal> {
        let path = match self.handles.get_mut(handle).ok_or_else(Refusal::bad_handle)? {
            OpenHandle::Write(write) if write.mode.is_atomic() => {
                // Applied when the upload is published; refused now if it could not be then.
                if !self.session.permissions(&write.path).contains(Permissions::SETATTR) {
                    return Err(Error::PermissionDenied.into());
                }
                write.deferred_attrs = Some(attrs);
                return Ok(ok(id));
            }
            other => other.path().clone(),
        };
        self.set_attributes(&path, &attrs).await?;
        Ok(ok(id))
    }

    /// Applies `attrs` to `path`: permissions and times through the session. Owner and size
    /// cannot be changed; asking for the values they already have is accepted.
    async fn set_attributes(
        &mut self,
        path: &VPath,
        attrs: &FileAttributes,
    ) -> Result<(), Refusal> {
        let needs_current = attrs.size.is_some() || attrs.uid.is_some() || attrs.gid.is_some();
        let changes_nothing =
            !needs_current && attrs.permissions.is_none() && attrs.mtime.is_none();
        if needs_current || changes_nothing {
            let current = self.session.stat(path).await?;
            if attrs.size.is_some_and(|size| size != current.size) {
                return Err(Refusal::unsupported("changing a file's size is not supported"));
            }
            if attrs.uid.is_some_and(|uid| uid != current.uid)
                || attrs.gid.is_some_and(|gid| gid != current.gid)
            {
                return Err(Refusal::Status(
                    StatusCode::PermissionDenied,
                    "changing the owner or group is not allowed".to_owned(),
                ));
            }
        }
        if let Some(permissions) = attrs.permissions {
            self.session.set_mode(path, permissions & 0o7777).await?;
        }
        if let Some(mtime) = attrs.mtime {
            self.session.set_times(path, system_time(mtime), attrs.atime.map(system_time)).await?;
        }
        Ok(())
    }

    async fn opendir(&mut self, id: u32, path: &str) -> Result<Bytes, Refusal> {
        self.handles.check_room()?;
        let path = self.resolve(path)?;
        let paid = self.pay_for_handle(HandleKind::Dir, &path)?;
        let listing = self.session.list(&path).await?;
        let handle = self.handles.insert(OpenHandle::Dir(DirHandle {
            path,
            listing,
            exhausted: false,
            _paid: paid,
        }))?;
        Ok(encode(Packet::Handle(Handle { id, handle })))
    }

    async fn readdir(&mut self, id: u32, handle: &[u8]) -> Result<Bytes, Refusal> {
        let dir = match self.handles.get_mut(handle) {
            Some(OpenHandle::Dir(dir)) => dir,
            Some(_) => return Err(Refusal::wrong_handle("a directory")),
            None => return Err(Refusal::bad_handle()),
        };
        let batch =
            if dir.exhausted { Vec::new() } else { dir.listing.next_batch(READDIR_BATCH).await? };
        if batch.is_empty() {
            dir.exhausted = true;
            return Ok(status(id, StatusCode::Eof, "End of file"));
        }
        let now = std::time::SystemTime::now();
        let files = batch
            .into_iter()
            .map(|entry| File {
                longname: longname(&entry.name, &entry.metadata, now),
                attrs: file_attributes(&entry.metadata),
                filename: entry.name,
            })
            .collect();
        Ok(encode(Packet::Name(Name { id, files })))
    }

    async fn remove(&mut self, id: u32, path: &str) -> Result<Bytes, Refusal> {
        self.session.remove_file(&self.resolve(path)?).await?;
        Ok(ok(id))
    }

    /// Creates a directory. Its attributes are not applied: clients send their umask-less
    /// default (0777), and changing modes is the separate `setattr` permission.
    async fn mkdir(&mut self, id: u32, path: &str) -> Result<Bytes, Refusal> {
        self.session.make_dir(&self.resolve(path)?).await?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: &str) -> Result<Bytes, Refusal> {
        self.session.remove_dir(&self.resolve(path)?).await?;
        Ok(ok(id))
    }

    /// The canonical form of a path; `.` (and the empty path) is `/`, the user's root.
    fn realpath(&self, id: u32, path: &str) -> Result<Bytes, Refusal> {
        Ok(single_name(id, self.resolve(path)?.as_str().to_owned()))
    }

    /// SFTP version 3 `rename`: refuses to replace an existing target (posix-rename does).
    async fn rename_no_replace(&mut self, id: u32, from: &str, to: &str) -> Result<Bytes, Refusal> {
        let (from, to) = (self.resolve(from)?, self.resolve(to)?);
        match self.session.lstat(&to).await {
            Ok(_) => return Err(Error::AlreadyExists.into()),
            Err(Error::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
        self.session.rename(&from, &to).await?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: &str) -> Result<Bytes, Refusal> {
        let target = self.session.read_link(&self.resolve(path)?).await?;
        Ok(single_name(id, target))
    }

    /// Ends the session: open uploads are abandoned (their old files stay as they were),
    /// open downloads are recorded as aborted.
    pub(crate) fn abandon_all(&mut self) {
        drop(self.handles.take_all());
    }
}
