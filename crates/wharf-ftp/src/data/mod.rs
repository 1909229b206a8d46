//! Data connections: how they are set up (passive or active), made, optionally protected by
//! TLS, and used by transfers.
//!
//! A setup command (`PASV`, `EPSV`, `PORT`, `EPRT`) records a [`DataSetup`]; the next transfer
//! command consumes it. The connection itself is made inside the transfer, so the control
//! connection stays responsive (to `ABOR`, say) while the server waits for it.

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

impl DataSetup {
    /// Makes the data connection: accepts (from the client's address only) or connects, then
    /// runs the TLS handshake when the link requires protection. Bounded by the link's
    /// connect timeout.
    pub(crate) async fn establish(
        self,
        link: &DataLink,
        direction: DataDirection,
    ) -> Result<DataStream, DataError> {
        let deadline = tokio::time::Instant::now() + link.connect_timeout;
        let tcp = match self {
            DataSetup::Passive(listener) => listener.accept(link.peer_ip, deadline).await?,
            DataSetup::Active(target) => connect_active(target, link.local_ip, deadline).await?,
        };
        // Replies and data are not interleaved on a data connection; small writes (a short
        // listing) should leave at once.
        let _ = tcp.set_nodelay(true);
        match &link.tls {
            None => Ok(DataStream::Plain(tcp)),
            Some(tls) => {
                match tokio::time::timeout_at(deadline, tls.secure_data(tcp, direction)).await {
                    Ok(Ok(stream)) => Ok(DataStream::Secure(stream)),
                    Ok(Err(err)) => Err(DataError::Tls(err)),
                    Err(_) => Err(DataError::Timeout),
                }
            }
        }
    }
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
