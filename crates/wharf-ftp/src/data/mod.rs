//! Data connections: how they are set up (passive or active), made, optionally protected by
//! TLS, and used by transfers.
//!
//! A setup command (`PASV`, `EPSV`, `PORT`, `EPRT`) records a [`DataSetup`]; the next transfer
//! command consumes it. The connection itself is made inside the transfer, so the control
//! connection stays responsive (to `ABOR`, say) while the server waits for it.
//!
//! With protected data connections, a passive connection goes further before its command when
//! the client leads: once connected, a client that begins its TLS handshake without waiting
//! for the command (curl does) has it served at once ([`DataSetup::advance`]). curl before
//! 8.7 waits for that handshake before it reads the control connection again, so a `SIZE`
//! sent between its hello and its `RETR` would otherwise go unanswered until a 200 ms timer
//! of curl's fires, for every file.

mod active;
mod passive;
pub(crate) mod transfer;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(crate) use active::{check_active_target, connect_active};
pub(crate) use passive::{PassiveListener, PassivePorts};

use crate::tls::{BoxedStream, DataDirection, FtpTlsConnection};

/// How the next data connection is made.
pub(crate) enum DataSetup {
    /// The client connects to this listener (`PASV`/`EPSV`).
    Passive(PassiveListener),
    /// The server connects to the client (`PORT`/`EPRT`); the target is already checked.
    Active(SocketAddr),
    /// A protected passive connection the client made before its transfer command, and on
    /// which it has not begun TLS yet.
    Connected(TcpStream),
    /// The client began the TLS handshake before its transfer command; it runs (or has run)
    /// beside the control connection.
    Securing(EarlyHandshake),
}

/// A data connection's TLS handshake begun before its transfer command.
pub(crate) struct EarlyHandshake {
    /// The handshake until it returns.
    running: Option<Pin<Box<dyn Future<Output = io::Result<BoxedStream>> + Send>>>,
    /// What it returned.
    done: Option<io::Result<BoxedStream>>,
}

impl EarlyHandshake {
    /// Runs the handshake to its end (at once if it has ended).
    async fn finish(mut self) -> io::Result<BoxedStream> {
        match (self.done.take(), self.running.take()) {
            (Some(done), _) => done,
            (None, Some(running)) => running.await,
            (None, None) => Err(io::Error::other("the early handshake was lost")),
        }
    }
}

impl DataSetup {
    /// A short description for `STAT`.
    pub(crate) fn describe(&self) -> String {
        match self {
            DataSetup::Passive(listener) => match listener.local_addr() {
                Ok(addr) => format!("passive, waiting on port {}", addr.port()),
                Err(_) => "passive".to_owned(),
            },
            DataSetup::Active(target) => format!("active, to {target}"),
            DataSetup::Connected(_) => "passive, connected".to_owned(),
            DataSetup::Securing(handshake) if handshake.done.is_some() => {
                "passive, connected, TLS ready".to_owned()
            }
            DataSetup::Securing(_) => "passive, connected, TLS handshake running".to_owned(),
        }
    }

    /// Whether [`DataSetup::advance`] has anything left to do: a passive connection not yet
    /// made or not yet secured.
    pub(crate) fn can_advance(&self) -> bool {
        match self {
            DataSetup::Passive(_) | DataSetup::Connected(_) => true,
            DataSetup::Securing(handshake) => handshake.done.is_none(),
            DataSetup::Active(_) => false,
        }
    }

    /// Takes one step towards a protected passive connection before its transfer command:
    /// accepts the client's connection (only from `peer_ip`), waits for the client to begin
    /// TLS, then runs the handshake with `tls` to its end. Cancel-safe: each step's progress
    /// stays in `self`. A client that says nothing on its connection is left waiting for its
    /// command, which tells which way the data flows before its handshake begins.
    pub(crate) async fn advance(&mut self, peer_ip: IpAddr, tls: &Arc<dyn FtpTlsConnection>) {
        match self {
            DataSetup::Passive(listener) => match listener.accept_from(peer_ip).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    *self = DataSetup::Connected(tcp);
                }
                Err(err) => {
                    // The transfer finds the same listener and reports what it finds.
                    tracing::debug!(error = %err, "no early data connection");
                    std::future::pending::<()>().await;
                }
            },
            DataSetup::Connected(tcp) => {
                if tcp.readable().await.is_err() || !has_sent_something(tcp) {
                    // Closed or failed: the transfer will say so; nothing to do before it.
                    std::future::pending::<()>().await;
                }
                let started = EarlyHandshake { running: None, done: None };
                if let DataSetup::Connected(tcp) =
                    std::mem::replace(self, DataSetup::Securing(started))
                {
                    let tls = tls.clone();
                    let running =
                        Box::pin(
                            async move { tls.secure_data(tcp, DataDirection::ClientFirst).await },
                        );
                    *self =
                        DataSetup::Securing(EarlyHandshake { running: Some(running), done: None });
                }
            }
            DataSetup::Securing(handshake) => {
                if let Some(running) = handshake.running.as_mut() {
                    handshake.done = Some(running.await);
                    handshake.running = None;
                }
            }
            DataSetup::Active(_) => std::future::pending().await,
        }
    }
}

/// What making a data connection needs besides its setup.
#[derive(Clone)]
pub(crate) struct DataLink {
    /// The control connection's peer: the only address a passive connection is accepted from.
    pub(crate) peer_ip: IpAddr,
    /// The control connection's local address: active connections leave from it.
    pub(crate) local_ip: IpAddr,
    /// How long to wait for the connection (and its TLS handshake).
    pub(crate) connect_timeout: Duration,
    /// How long a transfer may stall.
    pub(crate) stall_timeout: Duration,
    /// Set when the data connection must be protected (`PROT P`).
    pub(crate) tls: Option<Arc<dyn FtpTlsConnection>>,
}

/// Why no data connection could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    /// Nobody connected (or the client did not accept) in time.
    #[error("no data connection in time")]
    Timeout,
    /// Accepting or connecting failed.
    #[error("data connection failed: {0}")]
    Io(#[source] io::Error),
    /// The TLS handshake on the data connection failed (or did not resume the control
    /// connection's session).
    #[error("TLS on the data connection failed: {0}")]
    Tls(#[source] io::Error),
}

/// The transfer's `150`, which the session sends once the transfer releases it (or drops it).
/// Only a protected upload's is held at all: until its handshake has returned, when the
/// client began that handshake before it sent the command (see
/// [`DataDirection::ClientFirst`]); every other is released before the
/// transfer waits for anything.
#[derive(Debug, Default)]
pub(crate) struct Opening(Option<tokio::sync::oneshot::Sender<()>>);

impl Opening {
    /// An opening the session waits for on `released`.
    pub(crate) fn held() -> (Opening, tokio::sync::oneshot::Receiver<()>) {
        let (sender, released) = tokio::sync::oneshot::channel();
        (Opening(Some(sender)), released)
    }

    /// Lets the session send the `150` (once; later calls do nothing).
    pub(crate) fn release(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(());
        }
    }

    fn is_held(&self) -> bool {
        self.0.is_some()
    }
}

impl DataSetup {
    /// Makes the data connection: accepts (from the client's address only) or connects, then
    /// runs the TLS handshake when the link requires protection (or finishes the one the
    /// client began before its command). Bounded by the link's connect timeout. Releases
    /// `opening` before it waits on the client, except for the handshake of a protected
    /// upload whose client had already begun it.
    pub(crate) async fn establish(
        self,
        link: &DataLink,
        direction: DataDirection,
        opening: &mut Opening,
    ) -> Result<DataStream, DataError> {
        let deadline = tokio::time::Instant::now() + link.connect_timeout;
        let tcp = match self {
            DataSetup::Securing(handshake) => {
                if link.tls.is_none() {
                    opening.release();
                    return Err(DataError::Tls(io::Error::other(
                        "the client began TLS on a data connection that is to be clear (PROT C)",
                    )));
                }
                let secured = tokio::time::timeout_at(deadline, handshake.finish()).await;
                opening.release();
                return secured_stream(secured);
            }
            DataSetup::Connected(tcp) => tcp,
            DataSetup::Passive(listener) => match listener.take_waiting(link.peer_ip)? {
                Some(tcp) => tcp,
                None => {
                    opening.release();
                    listener.accept(link.peer_ip, deadline).await?
                }
            },
            DataSetup::Active(target) => {
                opening.release();
                connect_active(target, link.local_ip, deadline).await?
            }
        };
        // Replies and data are not interleaved on a data connection; small writes (a short
        // listing) should leave at once.
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &link.tls else {
            opening.release();
            return Ok(DataStream::Plain(tcp));
        };
        // A client that sent its hello before it was told to go ahead drives the handshake
        // by itself (curl): holding its 150 until the handshake is over cannot stall it. Any
        // other is told at once, and its upload's handshake sends nothing after its end.
        let direction = match direction {
            DataDirection::FromClient if opening.is_held() && has_sent_something(&tcp) => {
                DataDirection::ClientFirst
            }
            other => {
                opening.release();
                other
            }
        };
        let secured = tokio::time::timeout_at(deadline, tls.secure_data(tcp, direction)).await;
        opening.release();
        secured_stream(secured)
    }
}

/// The outcome of a data connection's handshake bounded by the connect timeout.
fn secured_stream(
    secured: Result<io::Result<BoxedStream>, tokio::time::error::Elapsed>,
) -> Result<DataStream, DataError> {
    match secured {
        Ok(Ok(stream)) => Ok(DataStream::Secure(stream)),
        Ok(Err(err)) => Err(DataError::Tls(err)),
        Err(_) => Err(DataError::Timeout),
    }
}

/// Whether bytes from the client already wait on `tcp`; asked without waiting or reading.
fn has_sent_something(tcp: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    matches!(rustix::net::recv(tcp, &mut byte, flags), Ok((1.., _)))
}

/// An established data connection.
pub(crate) enum DataStream {
    /// Plain TCP: eligible for zero-copy `sendfile`.
    Plain(TcpStream),
    /// Protected by TLS (or otherwise wrapped).
    Secure(BoxedStream),
}

impl AsyncRead for DataStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            DataStream::Secure(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DataStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DataStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            DataStream::Secure(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            DataStream::Secure(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            DataStream::Secure(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// An address as the access layer compares it: IPv4 arriving on an IPv6 socket
/// (`::ffff:10.0.0.1`) is IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    wharf_access::user::canonical_ip(ip)
}
