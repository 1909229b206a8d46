//! Acknowledging a data connection's handshake at once.
//!
//! Some clients (lftp with GnuTLS) send the last flight of a TLS 1.3 handshake as two small
//! segments: the compatibility `ChangeCipherSpec`, then `Finished`. With Nagle's algorithm on
//! (their default), the second waits until the first is acknowledged. The server has nothing
//! to send back after the first, so its kernel delays that acknowledgement (40 ms on Linux),
//! and every protected data connection of such a client starts 40 ms late: about two thirds
//! of the time of a small file. So while a data connection's handshake runs, whatever the
//! server reads is acknowledged at once (`TCP_QUICKACK`, which sends an acknowledgement the
//! kernel was holding back). Once the handshake is over the connection behaves as any other.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A data connection's socket that acknowledges what it reads at once until told otherwise.
#[derive(Debug)]
pub(crate) struct PromptAcks {
    tcp: TcpStream,
    /// Still handshaking: every read that returns bytes sends the held acknowledgement.
    prompt: bool,
}

impl PromptAcks {
    /// `tcp`, acknowledging promptly until [`PromptAcks::settle`].
    pub(crate) fn new(tcp: TcpStream) -> PromptAcks {
        PromptAcks { tcp, prompt: true }
    }

    /// The handshake is over: reads no longer cost a system call each.
    pub(crate) fn settle(&mut self) {
        self.prompt = false;
    }
}

impl AsyncRead for PromptAcks {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if this.prompt && matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // Only speed depends on it: a failure leaves the kernel's own timing.
            let _ = rustix::net::sockopt::set_tcp_quickack(&this.tcp, true);
        }
        read
    }
}

impl AsyncWrite for PromptAcks {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// Whether the kernel has the socket acknowledge at once (`TCP_QUICKACK` reads back as
    /// "not in delayed-acknowledgement mode").
    fn acks_at_once(stream: &PromptAcks) -> bool {
        rustix::net::sockopt::tcp_quickack(&stream.tcp).expect("TCP_QUICKACK")
    }

    #[tokio::test]
    async fn reads_acknowledge_at_once_until_the_handshake_is_over() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let mut client =
            TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let mut server = PromptAcks::new(server);
        let mut byte = [0u8; 1];
        for (prompt, sent) in [(true, b'h'), (false, b'd')] {
            // Delayed acknowledgements, as on a connection that has just answered.
            rustix::net::sockopt::set_tcp_quickack(&server.tcp, false).expect("delay acks");
            assert!(!acks_at_once(&server));
            client.write_all(&[sent]).await.expect("client writes");
            server.read_exact(&mut byte).await.expect("server reads");
            assert_eq!(byte[0], sent);
            assert_eq!(acks_at_once(&server), prompt, "prompt: {prompt}");
            server.write_all(&[sent]).await.expect("server writes");
            client.read_exact(&mut byte).await.expect("client reads");
            assert_eq!(byte[0], sent);
            server.settle();
        }
    }
}
