//! The seam through which FTPS (`wharf-ftps`) adds TLS without re-implementing FTP.
//!
//! This crate speaks every FTP command, including `AUTH`, `PBSZ`, `PROT` and `CCC` (RFC 4217),
//! but never parses TLS. When a TLS provider is installed ([`FtpTls`]), the session:
//!
//! 1. on `AUTH TLS` (or `SSL`) asks the provider for this connection's TLS state
//!    ([`FtpTls::connection`]), answers `234`, and hands the control stream to
//!    [`FtpTlsConnection::secure_control`], continuing on the stream it returns;
//! 2. on every data connection, when `PROT P` is in force, hands the accepted or connected TCP
//!    stream to [`FtpTlsConnection::secure_data`] before a byte of data moves (the provider
//!    requires the handshake to resume this control connection's TLS session);
//! 3. logs users in with `Protocol::Ftps` once the control connection is secure.
//!
//! Streams are boxed [`FtpStream`]s, so a TLS stream fits wherever a TCP stream does; only a
//! plain TCP data connection is eligible for zero-copy `sendfile`.
//!
//! Implicit FTPS (TLS from the first byte) is served by the provider's own listener: it
//! accepts, runs the handshake with a fresh [`FtpTlsConnection`], and passes the secured stream
//! to [`crate::FtpService::serve`] with [`crate::ControlConnection::tls`] set.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream the FTP session can use for a control or data connection: plain TCP, or TLS
/// over TCP.
pub trait FtpStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> FtpStream for T {}

/// An owned, type-erased stream.
pub type BoxedStream = Box<dyn FtpStream>;

/// A TLS provider for FTP: hands out the TLS state of each control connection.
pub trait FtpTls: Send + Sync + 'static {
    /// The TLS state of one new control connection, created when it sends `AUTH`. Everything
    /// the connection's data channels must share with it (a session cache and ticket keys of
    /// its own, so that only this connection's sessions can be resumed) lives in it.
    fn connection(&self) -> Arc<dyn FtpTlsConnection>;
}

/// The TLS state of one control connection and its data connections.
#[async_trait]
pub trait FtpTlsConnection: Send + Sync {
    /// Runs the server side of the TLS handshake on the control connection, after the session
    /// has answered `234` to `AUTH`, and returns the protected stream.
    ///
    /// The stream's reads end with `Ok(0)` only after the client's TLS close (`close_notify`);
    /// a connection that ends without it is an error (`UnexpectedEof`), as tokio-rustls
    /// reports it. The session takes a TLS close as a message from a client that is still
    /// there (an upload running then is finished, see `docs/protocols/ftp.md`), and a bare end
    /// as a client that may have died. Implicit listeners hand over streams that behave alike.
    async fn secure_control(&self, stream: BoxedStream) -> io::Result<BoxedStream>;

    /// Runs the server side of the TLS handshake on a data connection (whether the client
    /// connected to us or we to it) that will carry bytes in `direction`, and returns the
    /// protected stream. Fails when the client did not resume this control connection's TLS
    /// session.
    async fn secure_data(
        &self,
        stream: TcpStream,
        direction: DataDirection,
    ) -> io::Result<BoxedStream>;
}

/// Which way a data connection's bytes flow. TLS needs to know: a client that only sends
/// (an upload) may never read what the server sends after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirection {
    /// Server to client: downloads and listings.
    ToClient,
    /// Client to server: uploads. The client may close the connection without reading
    /// anything the server sends after the handshake.
    FromClient,
    /// The client began the handshake before it sent its transfer command (curl does), so
    /// which way the bytes will flow may not be known yet. Such a client drives TLS by
    /// itself, and the session holds an upload's `150` until this handshake has returned:
    /// whatever the handshake sent is in the client's hands before it is told to send the
    /// file, and a client that reads its connection once before closing it (curl) finds it
    /// there.
    ClientFirst,
}

/// What a listener demands of its clients' use of TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// `USER` is refused (`530`) until the control connection is protected.
    pub require_control: bool,
    /// Transfers are refused (`521`) until `PROT P` is in force.
    pub require_data: bool,
}

/// A TLS provider installed on [`crate::FtpServer`], with the policy of its plain listeners
/// (those where TLS starts with `AUTH`).
#[derive(Clone)]
pub struct TlsSetup {
    /// Makes each connection's TLS state.
    pub provider: Arc<dyn FtpTls>,
    /// What the plain listeners require.
    pub policy: TlsPolicy,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup").field("policy", &self.policy).finish_non_exhaustive()
    }
}
