//! Moving bytes over an established data connection: downloads (zero-copy `sendfile` where
//! possible), uploads, and listings.
//!
//! A [`Transfer`] owns everything it needs, so the session runs it as a future beside the
//! control connection and can drop it on `ABOR`: dropping an upload discards it (a whole-file
//! upload leaves the old file as it was), dropping a download records it as aborted.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use wharf_access::{Download, Listing, Session, Upload};
use wharf_vfs::{DirEntry, TRANSFER_CHUNK, VPath};

use super::{DataLink, DataSetup, DataStream, Opening};
use crate::ascii::{FromNetwork, ToNetwork};
use crate::errors::reply_for_error;
use crate::listing::{self, MlstFact};
use crate::probe::UploadWitness;
use crate::reply::Reply;
use crate::tls::DataDirection;

/// Most bytes one `sendfile` call is asked for. The socket is non-blocking, so a call returns
/// as soon as the socket buffer is full; the cap bounds how long one call can keep a worker
/// thread reading from a cold disk.
const SENDFILE_CHUNK: usize = 4 * 1024 * 1024;

/// Bytes gathered from the network before they are handed to storage in one write.
const RECEIVE_BUFFER: usize = TRANSFER_CHUNK;

/// Directory entries fetched from storage at once while listing.
pub(crate) const LISTING_BATCH: usize = 256;

/// Bytes moved so far by the running transfer, for `STAT`.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    bytes: AtomicU64,
}

impl Progress {
    fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes moved so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// How a directory listing is written.
pub(crate) enum ListingFormat {
    /// `LIST`: `ls -l` lines.
    Long {
        /// "Now", to choose between time of day and year.
        now: SystemTime,
    },
    /// `NLST`: names only, as `ls` prints them.
    Names,
    /// `MLSD`: facts and names.
    Facts(Vec<MlstFact>),
}

impl ListingFormat {
    fn line(&self, dir: &VPath, entry: &DirEntry, session: &Session) -> String {
        match self {
            ListingFormat::Long { now } => listing::list_line(&entry.name, &entry.metadata, *now),
            ListingFormat::Names => entry.name.clone(),
            ListingFormat::Facts(facts) => {
                let path = dir.join(&entry.name).unwrap_or_else(|_| dir.clone());
                let perms = session.permissions(&path);
                listing::mlsx_line(&entry.name, &entry.metadata, perms, facts)
            }
        }
    }
}

/// What a transfer moves.
pub(crate) enum Payload {
    /// A file to the client, from `offset`, at most `length` bytes.
    Download {
        /// The open file.
        download: Download,
        /// Where to start (`REST`, `RANG`).
        offset: u64,
        /// How many bytes at most (`RANG`); `None` to the end.
        length: Option<u64>,
        /// `TYPE A`: convert LF to CRLF.
        ascii: bool,
    },
    /// A file from the client.
    Upload {
        /// The open upload.
        upload: Upload,
        /// `TYPE A`: convert CRLF to LF.
        ascii: bool,
        /// Asked when the data ends whether the client is still there (`crate::probe`).
        client: Arc<UploadWitness>,
    },
    /// A directory listing, streamed batch by batch.
    Listing {
        /// The listing in progress.
        listing: Listing,
        /// For the `perm` facts.
        session: Session,
        /// How entries are written.
        format: ListingFormat,
    },
    /// Lines already made (the listing of a single file).
    Lines(Vec<String>),
}

/// Why a transfer stopped before its end.
#[derive(Debug, thiserror::Error)]
enum TransferError {
    /// The data connection failed or was closed by the client.
    #[error("data connection failed: {0}")]
    Network(#[source] io::Error),
    /// No byte moved for the stall timeout.
    #[error("data connection stalled")]
    Stalled,
    /// The data connection ended, and the client had closed its control connection without
    /// a word since the transfer began: it vanished rather than finished.
    #[error("the client closed the control connection before the upload ended")]
    ClientGone,
    /// Storage failed.
    #[error(transparent)]
    Storage(wharf_vfs::Error),
}

impl TransferError {
    fn reply(&self) -> Reply {
        match self {
            TransferError::Network(_) => Reply::new(426, "Connection closed; transfer aborted."),
            TransferError::Stalled => Reply::new(426, "Data connection stalled; transfer aborted."),
            TransferError::ClientGone => Reply::new(426, "Connection closed; transfer aborted."),
            TransferError::Storage(err) => reply_for_error(err),
        }
    }
}

/// A transfer ready to run: how to make its data connection, what to move, and what to answer
/// when it succeeds.
pub(crate) struct Transfer {
    /// How the data connection is made.
    pub(crate) setup: DataSetup,
    /// Addresses, timeouts and TLS of the data connection.
    pub(crate) link: DataLink,
    /// What moves.
    pub(crate) payload: Payload,
    /// Shared with the session, for `STAT`.
    pub(crate) progress: Arc<Progress>,
    /// The reply when everything went well (`226 ...`).
    pub(crate) success: Reply,
    /// Lets the session send the `150`.
    pub(crate) opening: Opening,
}

impl Transfer {
    /// Makes the data connection, moves the payload and returns the final reply.
    pub(crate) async fn run(self) -> Reply {
        let Transfer { setup, link, payload, progress, success, mut opening } = self;
        let direction = match payload {
            Payload::Upload { .. } => DataDirection::FromClient,
            _ => DataDirection::ToClient,
        };
        let mut stream = match setup.establish(&link, direction, &mut opening).await {
            Ok(stream) => stream,
            Err(err) => {
                tracing::info!(error = %err, "data connection not established");
                return Reply::new(425, format!("Can't open data connection: {err}."));
            }
        };
        let stall = link.stall_timeout;
        let moved = match payload {
            Payload::Download { download, offset, length, ascii } => {
                send_file(&mut stream, download, offset, length, ascii, stall, &progress).await
            }
            Payload::Upload { upload, ascii, client } => {
                receive_file(&mut stream, upload, ascii, stall, &progress, &client).await
            }
            Payload::Listing { listing, session, format } => {
                send_listing(&mut stream, listing, &session, &format, stall, &progress).await
            }
            Payload::Lines(lines) => send_lines(&mut stream, &lines, stall, &progress).await,
        };
        match moved {
            Ok(()) => {
                // Closing our side tells the client the data is complete (stream mode).
                let _ = tokio::time::timeout(stall, stream.shutdown()).await;
                success
            }
            Err(err) => {
                tracing::info!(error = %err, "transfer failed");
                err.reply()
            }
        }
    }
}

/// Runs one network operation with the stall timeout.
async fn within_stall_limit<T>(
    stall: Duration,
    operation: impl Future<Output = io::Result<T>>,
) -> Result<T, TransferError> {
    match tokio::time::timeout(stall, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(TransferError::Network(err)),
        Err(_) => Err(TransferError::Stalled),
    }
}

async fn send_file(
    stream: &mut DataStream,
    download: Download,
    offset: u64,
    length: Option<u64>,
    ascii: bool,
    stall: Duration,
    progress: &Progress,
) -> Result<(), TransferError> {
    if let (DataStream::Plain(tcp), false) = (&*stream, ascii) {
        let zero_copy = match download.as_fd() {
            Some(file) => {
                Some(sendfile_loop(tcp, file, offset, length, stall, progress, &download).await)
            }
            None => None,
        };
        if let Some(result) = zero_copy {
            match &result {
                Ok(()) => download.finish(),
                Err(TransferError::Storage(err)) => download.fail(err),
                Err(_) => drop(download),
            }
            return result;
        }
    }
    let mut chunks = download.stream(offset);
    let mut converter = ascii.then(ToNetwork::new);
    let mut converted = Vec::new();
    let mut remaining = length;
    loop {
        if remaining == Some(0) {
            break;
        }
        let mut chunk = match chunks.next_chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(err) => {
                let failure = TransferError::Storage(err.replicate());
                chunks.fail(&err);
                return Err(failure);
            }
        };
        if let Some(left) = remaining.as_mut() {
            chunk.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= chunk.len() as u64;
        }
        let wire: &[u8] = match converter.as_mut() {
            Some(converter) => {
                converted.clear();
                converter.convert(&chunk, &mut converted);
                &converted
            }
            None => &chunk,
        };
        chunks.pace(chunk.len() as u64).await;
        within_stall_limit(stall, stream.write_all(wire)).await?;
        // Counted once the client's socket took it: what the audit and xferlog report.
        chunks.add_sent(chunk.len() as u64);
        progress.add(wire.len());
    }
    chunks.finish();
    Ok(())
}

/// Zero-copy download: the kernel moves file pages straight to the socket. Driven by tokio's
/// readiness, so a full socket buffer parks the task instead of a thread.
async fn sendfile_loop(
    tcp: &TcpStream,
    file: BorrowedFd<'_>,
    mut offset: u64,
    length: Option<u64>,
    stall: Duration,
    progress: &Progress,
    download: &Download,
) -> Result<(), TransferError> {
    let mut remaining = length;
    // Under a bandwidth limit, smaller sends keep the pacing smooth.
    let chunk = if download.is_rate_limited() { TRANSFER_CHUNK } else { SENDFILE_CHUNK };
    loop {
        let want = match remaining {
            Some(0) => return Ok(()),
            Some(left) => usize::try_from(left).unwrap_or(usize::MAX).min(chunk),
            None => chunk,
        };
        within_stall_limit(stall, tcp.writable()).await?;
        let sent = tcp.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(tcp.as_fd(), file, Some(&mut offset), want)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => return Ok(()),
            Ok(sent) => {
                progress.add(sent);
                download.add_sent(sent as u64);
                download.pace(sent as u64).await;
                if let Some(left) = remaining.as_mut() {
                    *left -= sent as u64;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(classify_sendfile_error(err)),
        }
    }
}

/// `sendfile` reports errors of both ends: the socket's are the client's doing, the rest are
/// the storage's.
fn classify_sendfile_error(err: io::Error) -> TransferError {
    let network = err.raw_os_error().map(Errno::from_raw_os_error).is_some_and(|errno| {
        matches!(
            errno,
            Errno::PIPE
                | Errno::CONNRESET
                | Errno::NOTCONN
                | Errno::CONNABORTED
                | Errno::TIMEDOUT
                | Errno::HOSTUNREACH
                | Errno::NETUNREACH
        )
    });
    if network { TransferError::Network(err) } else { TransferError::Storage(err.into()) }
}

async fn receive_file(
    stream: &mut DataStream,
    mut upload: Upload,
    ascii: bool,
    stall: Duration,
    progress: &Progress,
    client: &UploadWitness,
) -> Result<(), TransferError> {
    let mut converter = ascii.then(FromNetwork::new);
    let mut buffer = BytesMut::with_capacity(RECEIVE_BUFFER);
    loop {
        let read = within_stall_limit(stall, stream.read_buf(&mut buffer)).await?;
        progress.add(read);
        let at_end = read == 0;
        // Decided the moment the data ends, before anything else is awaited. Dropping the
        // upload leaves the previous file as it was.
        if at_end && !client.publish_at_data_end() {
            return Err(TransferError::ClientGone);
        }
        if buffer.len() >= RECEIVE_BUFFER || (at_end && !buffer.is_empty()) {
            let block = buffer.split().freeze();
            let block = match converter.as_mut() {
                Some(converter) => {
                    let mut stored = Vec::with_capacity(block.len());
                    converter.convert(&block, &mut stored);
                    Bytes::from(stored)
                }
                None => block,
            };
            if !block.is_empty() {
                upload.write(block).await.map_err(TransferError::Storage)?;
            }
            if !at_end {
                buffer.reserve(RECEIVE_BUFFER);
            }
        }
        if at_end {
            break;
        }
    }
    if let Some(mut converter) = converter {
        let mut tail = Vec::new();
        converter.finish(&mut tail);
        if !tail.is_empty() {
            upload.write(Bytes::from(tail)).await.map_err(TransferError::Storage)?;
        }
    }
    upload.commit().await.map(drop).map_err(TransferError::Storage)
}

async fn send_listing(
    stream: &mut DataStream,
    mut listing: Listing,
    session: &Session,
    format: &ListingFormat,
    stall: Duration,
    progress: &Progress,
) -> Result<(), TransferError> {
    let dir = listing.dir().clone();
    let mut out = Vec::new();
    loop {
        let batch = listing.next_batch(LISTING_BATCH).await.map_err(TransferError::Storage)?;
        if batch.is_empty() {
            return Ok(());
        }
        out.clear();
        for entry in batch.iter().filter(|entry| listing::is_listable(&entry.name)) {
            out.extend_from_slice(format.line(&dir, entry, session).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        within_stall_limit(stall, stream.write_all(&out)).await?;
        progress.add(out.len());
    }
}

async fn send_lines(
    stream: &mut DataStream,
    lines: &[String],
    stall: Duration,
    progress: &Progress,
) -> Result<(), TransferError> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    within_stall_limit(stall, stream.write_all(&out)).await?;
    progress.add(out.len());
    Ok(())
}
