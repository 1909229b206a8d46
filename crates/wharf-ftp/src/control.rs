//! The control connection: reads command lines through the [`LineDecoder`] and writes
//! replies, over a plain or TLS stream that can be swapped for its TLS form after `AUTH`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::codec::{Decoded, LineDecoder};
use crate::probe::ControlActivity;
use crate::reply::{LinePosition, Reply, encode_line};
use crate::tls::{BoxedStream, FtpTlsConnection};

/// Bytes read from the control connection at a time. Commands are short; an idle session
/// keeps at most this much buffer.
const READ_CHUNK: usize = 1024;

/// Above this, an emptied input buffer is released rather than kept for the next command.
const KEPT_BUFFER: usize = 4 * READ_CHUNK;

/// The control connection of one session.
pub(crate) struct ControlChannel {
    stream: BoxedStream,
    input: BytesMut,
    decoder: LineDecoder,
    /// How long a reply may take to be written (a client that never reads cannot hold the
    /// session forever).
    write_timeout: Duration,
    /// Whether the stream is TLS: its reads end with `Ok(0)` only at the client's TLS close.
    tls: bool,
    /// What the client has sent, for the uploads running beside the session.
    activity: Arc<ControlActivity>,
}

impl ControlChannel {
    /// A control channel over `stream` (already TLS when `tls`, as on an implicit listener).
    pub(crate) fn new(stream: BoxedStream, write_timeout: Duration, tls: bool) -> ControlChannel {
        ControlChannel {
            stream,
            input: BytesMut::new(),
            decoder: LineDecoder::new(),
            write_timeout,
            tls,
            activity: Arc::default(),
        }
    }

    /// What the client has sent on this connection, as uploads need to know it.
    pub(crate) fn activity(&self) -> &Arc<ControlActivity> {
        &self.activity
    }

    /// The next command line; `None` when the client closed the connection. Cancel-safe: bytes
    /// already read stay buffered if the caller stops waiting.
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<Decoded>> {
        loop {
            if let Some(decoded) = self.decoder.decode(&mut self.input) {
                if self.input.is_empty() && self.input.capacity() > KEPT_BUFFER {
                    self.input = BytesMut::new();
                }
                self.activity.heard();
                return Ok(Some(decoded));
            }
            self.input.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.input).await {
                Ok(0) => {
                    // Over TLS the end of reads is the client's TLS close, a message of its
                    // own; a connection that just ends is an error there.
                    if self.tls {
                        self.activity.heard();
                    }
                    self.activity.ended();
                    return Ok(None);
                }
                Ok(_) => self.activity.heard(),
                Err(err) => {
                    self.activity.ended();
                    return Err(err);
                }
            }
        }
    }

    /// Writes one reply.
    pub(crate) async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        self.write(&reply.to_bytes()).await
    }

    /// Writes one line of a reply being streamed (a long `STAT` listing).
    pub(crate) async fn send_line(
        &mut self,
        code: u16,
        position: LinePosition,
        text: &str,
    ) -> io::Result<()> {
        let mut out = Vec::with_capacity(text.len() + 8);
        encode_line(&mut out, code, position, text);
        self.write(&out).await
    }

    /// Writes several encoded reply lines at once.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let written = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.write_timeout, written).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client does not read replies")),
        }
    }

    /// Runs the TLS handshake on the control connection (after `234` was sent). Returns
    /// whether plaintext that arrived after `AUTH` was thrown away: it was sent before the
    /// protection and must not be taken as protected commands (command injection).
    pub(crate) async fn secure(&mut self, tls: &dyn FtpTlsConnection) -> io::Result<bool> {
        let discarded = !self.input.is_empty();
        self.input = BytesMut::new();
        self.decoder.reset();
        let plain = std::mem::replace(&mut self.stream, Box::new(Closed));
        self.stream = tls.secure_control(plain).await?;
        self.tls = true;
        Ok(discarded)
    }
}

/// Stands in for the control stream while it is handed to the TLS provider: reads see the end
/// of the stream, writes fail.
struct Closed;

impl AsyncRead for Closed {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Closed {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
