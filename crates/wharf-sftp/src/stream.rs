//! A connection the server can cut from outside.
//!
//! russh runs each connection in its own task, and while a key exchange is in progress it
//! does not look at requests to disconnect. A client that stalls mid-handshake (or stops
//! reading) would keep its connection until the inactivity timeout. Wrapping the socket in
//! [`Severable`] lets the connection task end it at any moment: once [`Cut::cut`] is called,
//! every read and write fails, and russh's task ends on the error.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A stream that fails from the moment its [`Cut`] is used.
pub(crate) struct Severable<S> {
    inner: S,
    token: CancellationToken,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// Ends a [`Severable`] stream.
#[derive(Debug, Clone)]
pub(crate) struct Cut(CancellationToken);

impl Cut {
    /// Makes every further read and write of the stream fail.
    pub(crate) fn cut(&self) {
        self.0.cancel();
    }
}

/// Wraps `inner`; the returned [`Cut`] ends it.
pub(crate) fn severable<S>(inner: S) -> (Severable<S>, Cut) {
    let token = CancellationToken::new();
    let cut = Box::pin(token.clone().cancelled_owned());
    (Severable { inner, token: token.clone(), cut }, Cut(token))
}

fn severed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed by the server")
}

impl<S> Severable<S> {
    /// Whether the stream was cut; also registers the task to be woken when it is.
    fn is_cut(&mut self, cx: &mut Context<'_>) -> bool {
        self.token.is_cancelled() || self.cut.as_mut().poll(cx).is_ready()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Severable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Severable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn a_cut_wakes_a_pending_read_and_fails_writes() {
        let (near, mut far) = tokio::io::duplex(64);
        let (mut stream, cut) = severable(near);
        far.write_all(b"hi").await.expect("write");
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.expect("reads before the cut");
        let pending = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            let read = stream.read(&mut byte).await;
            (read.map_err(|e| e.kind()), stream)
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        cut.cut();
        let (read, mut stream) = pending.await.expect("task");
        assert_eq!(read, Err(io::ErrorKind::ConnectionAborted));
        let write = stream.write_all(b"x").await.map_err(|e| e.kind());
        assert_eq!(write, Err(io::ErrorKind::ConnectionAborted));
    }
}
