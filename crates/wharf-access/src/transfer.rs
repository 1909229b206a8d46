//! Downloads and uploads in progress: they count bytes and emit one audit event when they end,
//! however they end (finished, failed, or dropped with the connection).

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use wharf_vfs::{Error, Metadata, ReadFile, ReadStream, Result, VPath, WriteFile, WriteMode};

use crate::audit::{AuditEvent, Operation, Outcome};
use crate::live_sessions::TransferTicket;
use crate::quota::QuotaCharge;
use crate::session::Session;
use crate::throttle::RateLimiter;

/// Bookkeeping shared by downloads and uploads; emits the audit event when dropped.
struct TransferRecord {
    session: Session,
    op: Operation,
    path: VPath,
    started: Instant,
    /// The transfer as the list of live sessions shows it, with its byte counter.
    live: TransferTicket,
    /// `Aborted` until the transfer says otherwise.
    outcome: Mutex<Outcome>,
    /// The content's SHA-256 in hex, set only by a published upload that computed it.
    sha256: Option<String>,
}

impl TransferRecord {
    fn new(session: Session, op: Operation, path: VPath, started: Instant) -> Self {
        let live = session.list_transfer(op, path.clone());
        TransferRecord {
            session,
            op,
            path,
            started,
            live,
            outcome: Mutex::new(Outcome::Aborted),
            sha256: None,
        }
    }

    fn add(&self, bytes: u64) {
        self.live.progress().add(bytes);
    }

    fn set_outcome(&self, outcome: Outcome) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = outcome;
        }
    }
}

impl Drop for TransferRecord {
    fn drop(&mut self) {
        let outcome = self.outcome.lock().map(|o| *o).unwrap_or(Outcome::Aborted);
        AuditEvent {
            actor: self.session.actor(),
            op: self.op,
            path: Some(&self.path),
            to: None,
            bytes: Some(self.live.progress().bytes()),
            // Only with the outcome it was computed for.
            sha256: self.sha256.as_deref().filter(|_| outcome == Outcome::Ok),
            duration: self.started.elapsed(),
            outcome,
            detail: None,
        }
        .emit();
    }
}

/// A file opened for download.
///
/// Reading and sending are separate: a front-end may read ahead of the client (SFTP's
/// read-ahead, FTP's and TFTP's streams), but only what reached the client counts. The
/// front-end reports each piece it sent with [`Download::add_sent`], after waiting for the
/// user's bandwidth with [`Download::pace`]; the audit event, the transfer log and the
/// metrics then show what the client got, not what was read for it.
pub struct Download {
    file: Box<dyn ReadFile>,
    record: TransferRecord,
    limiter: Option<Arc<RateLimiter>>,
}

impl Download {
    pub(crate) fn new(
        session: Session,
        path: VPath,
        file: Box<dyn ReadFile>,
        started: Instant,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Self {
        Download {
            file,
            record: TransferRecord::new(session, Operation::Download, path, started),
            limiter,
        }
    }

    /// Whether a bandwidth limit applies: a front-end must then call [`Download::pace`]
    /// before it sends each piece.
    pub fn is_rate_limited(&self) -> bool {
        self.limiter.is_some()
    }

    /// Waits as long as the user's download rate requires before `bytes` more are sent.
    pub async fn pace(&self, bytes: u64) {
        pace(self.limiter.as_deref(), bytes).await;
    }

    /// Attributes of the file when it was opened.
    pub fn metadata(&self) -> &Metadata {
        self.file.metadata()
    }

    /// The path being downloaded.
    pub fn path(&self) -> &VPath {
        &self.record.path
    }

    /// The session downloading.
    pub fn session(&self) -> &Session {
        &self.record.session
    }

    /// Reads up to `len` bytes at `offset`. Nothing is counted until it is sent
    /// ([`Download::add_sent`]); a storage error is kept for the audit event.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let result = self.file.read_at(offset, len).await;
        if let Err(err) = &result {
            self.record.set_outcome(Outcome::of_error(err));
        }
        result
    }

    /// The file's descriptor, for a front-end that sends with `sendfile`.
    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_fd()
    }

    /// Counts `bytes` of the file as delivered to the client.
    pub fn add_sent(&self, bytes: u64) {
        self.record.add(bytes);
    }

    /// Switches to a sequential read from `offset` with read-ahead.
    pub fn stream(self, offset: u64) -> DownloadStream {
        DownloadStream {
            stream: self.file.stream(offset),
            record: self.record,
            limiter: self.limiter,
        }
    }

    /// Marks the download complete.
    pub fn finish(self) {
        self.record.set_outcome(Outcome::Ok);
    }

    /// Marks the download failed with `err` (a network error, say).
    pub fn fail(self, err: &Error) {
        self.record.set_outcome(Outcome::of_error(err));
    }
}

/// Waits for `bytes` of a rate limit, if there is one.
async fn pace(limiter: Option<&RateLimiter>, bytes: u64) {
    if let Some(limiter) = limiter {
        limiter.acquire(bytes).await;
    }
}

/// A sequential download in progress. As with [`Download`], chunks are counted when the
/// front-end reports them sent ([`DownloadStream::add_sent`]), not when they are read.
pub struct DownloadStream {
    stream: ReadStream,
    record: TransferRecord,
    limiter: Option<Arc<RateLimiter>>,
}

impl DownloadStream {
    /// The next chunk of the file; `Ok(None)` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let result = self.stream.next_chunk().await;
        if let Err(err) = &result {
            self.record.set_outcome(Outcome::of_error(err));
        }
        result
    }

    /// Waits as long as the user's download rate requires before `bytes` more are sent.
    pub async fn pace(&self, bytes: u64) {
        pace(self.limiter.as_deref(), bytes).await;
    }

    /// Counts `bytes` of the file as delivered to the client.
    pub fn add_sent(&self, bytes: u64) {
        self.record.add(bytes);
    }

    /// Marks the download complete.
    pub fn finish(self) {
        self.record.set_outcome(Outcome::Ok);
    }

    /// Marks the download failed with `err`.
    pub fn fail(self, err: &Error) {
        self.record.set_outcome(Outcome::of_error(err));
    }
}

/// A file opened for upload. Dropping it without [`Upload::commit`] aborts it: a whole-file
/// upload leaves the old file as it was. A write that would cross the user's quota fails with
/// [`wharf_vfs::Error::QuotaExceeded`] before it reaches storage; with a bandwidth limit,
/// writes wait for their share.
///
/// When the session's audit sink asks for it ([`crate::AuditSink::upload_sha256`]), a
/// whole-file upload ([`WriteMode::Replace`], [`WriteMode::CreateNew`]) computes the SHA-256
/// of its bytes as they are written, in one pass over the data already in memory: its audit
/// event then carries the digest, if the whole file was written in order from offset 0 and
/// published. A write elsewhere than where the previous one ended (a gap, an overlap, a write
/// out of order), a failed write, and every in-place upload (a resume, an append, an SFTP
/// open without truncation) leave it without one: it is never a guess.
pub struct Upload {
    file: Box<dyn WriteFile>,
    record: TransferRecord,
    quota: Option<QuotaCharge>,
    limiter: Option<Arc<RateLimiter>>,
    /// Bytes written sequentially so far, for the quota's view of where the file ends.
    position: u64,
    /// The digest so far, while the file is still being written in order from offset 0.
    digest: Option<ContentDigest>,
}

/// The SHA-256 of an upload's bytes written so far, all of them in order from offset 0.
struct ContentDigest {
    hasher: Sha256,
    /// Where the bytes hashed end: the offset the next write must start at.
    end: u64,
}

impl ContentDigest {
    /// The digest of an upload opened in `mode`, if one can be computed for it.
    fn of(mode: WriteMode, wanted: bool) -> Option<ContentDigest> {
        (wanted && mode.is_atomic()).then(|| ContentDigest { hasher: Sha256::new(), end: 0 })
    }

    /// Adds `data`, written at `offset`; `false` when it does not follow the bytes hashed.
    fn add(&mut self, offset: u64, data: &[u8]) -> bool {
        if offset != self.end {
            return false;
        }
        self.hasher.update(data);
        self.end += data.len() as u64;
        true
    }

    /// The digest in lowercase hex, if the hashed bytes are the `size` bytes of the file.
    fn finish(self, size: u64) -> Option<String> {
        (self.end == size).then(|| {
            let digest = self.hasher.finalize();
            let mut hex = String::with_capacity(64);
            for byte in digest {
                hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
                hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
            }
            hex
        })
    }
}

impl Upload {
    pub(crate) fn new(
        session: Session,
        path: VPath,
        file: Box<dyn WriteFile>,
        mode: WriteMode,
        started: Instant,
        quota: Option<QuotaCharge>,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Self {
        let wanted = session.actor().sink.as_ref().is_some_and(|sink| sink.upload_sha256());
        Upload {
            file,
            record: TransferRecord::new(session, Operation::Upload, path, started),
            quota,
            limiter,
            position: 0,
            digest: ContentDigest::of(mode, wanted),
        }
    }

    /// Hashes `data`, just written at `offset`, or stops hashing if it does not follow what
    /// was (the file is then not written in order from its start by this upload).
    fn hash(&mut self, offset: u64, data: &[u8]) {
        if let Some(digest) = self.digest.as_mut()
            && !digest.add(offset, data)
        {
            self.digest = None;
        }
    }

    /// Charges the quota and waits for the bandwidth before `len` bytes ending at `end`.
    async fn admit(&mut self, end: u64, len: u64) -> Result<()> {
        if let Some(quota) = self.quota.as_mut()
            && let Err(err) = quota.before_write(end).await
        {
            self.record.set_outcome(Outcome::of_error(&err));
            return Err(err);
        }
        if let Some(limiter) = &self.limiter {
            limiter.acquire(len).await;
        }
        Ok(())
    }

    /// The path being uploaded.
    pub fn path(&self) -> &VPath {
        &self.record.path
    }

    /// The session uploading.
    pub fn session(&self) -> &Session {
        &self.record.session
    }

    /// Writes `data` at the current position.
    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        let len = data.len() as u64;
        let start = match self.quota.as_ref() {
            Some(quota) => quota.sequential_start() + self.position,
            None => 0,
        };
        if let Err(err) = self.admit(start + len, len).await {
            self.digest = None;
            return Err(err);
        }
        // A cheap copy (a reference count): hashed once the write is under way, so the hash
        // of this block overlaps its I/O.
        let written = self.file.write(data.clone()).await;
        self.note_failure(&written);
        written?;
        self.hash(self.position, &data);
        self.position += len;
        self.record.add(len);
        Ok(())
    }

    /// Writes `data` at `offset` from the start of the file.
    pub async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        let len = data.len() as u64;
        if let Err(err) = self.admit(offset + len, len).await {
            self.digest = None;
            return Err(err);
        }
        let written = self.file.write_at(offset, data.clone()).await;
        self.note_failure(&written);
        written?;
        self.hash(offset, &data);
        self.record.add(len);
        Ok(())
    }

    /// Waits until everything written is on stable storage: the file itself for an in-place
    /// write; for a whole-file upload not yet published, its temporary file, and its commit
    /// then makes the publication durable too (see [`wharf_vfs::WriteFile::sync`]).
    pub async fn sync(&mut self) -> Result<()> {
        let synced = self.file.sync().await;
        self.note_failure(&synced);
        synced
    }

    /// Records why the upload failed, so its audit event says so rather than "aborted"; a
    /// failed write also ends the digest (what reached the file is unknown).
    fn note_failure(&mut self, result: &Result<()>) {
        if let Err(err) = result {
            self.record.set_outcome(Outcome::of_error(err));
            self.digest = None;
        }
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.file.bytes_written()
    }

    /// Finishes the upload and publishes it; returns the bytes written. A whole-file upload
    /// is checked against the quota once more as it publishes, with what its name holds then,
    /// and the quota is settled on what the backend reports it did (see `quota.rs`).
    pub async fn commit(mut self) -> Result<u64> {
        let check = self.quota.as_ref().and_then(QuotaCharge::publish_check);
        let result = self.file.publish(check).await;
        if let Some(quota) = self.quota.as_mut() {
            match &result {
                Ok(done) => quota.committed(done.replaced, done.size),
                Err(_) => quota.finish(),
            }
        }
        if let Ok(done) = &result {
            self.record.sha256 = self.digest.take().and_then(|digest| digest.finish(done.size));
        }
        let result = result.and_then(|done| match done.unsynced {
            Some(err) => Err(err),
            None => Ok(done.written),
        });
        self.record.set_outcome(Outcome::of(&result));
        result
    }
}
