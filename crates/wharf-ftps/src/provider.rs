//! The TLS provider `wharf-ftp` calls: one rustls configuration per control connection, and
//! data connections that must resume that connection's session.
//!
//! [`FtpsTls`] holds the configuration built from the current certificate. Each control
//! connection gets a copy with a session store and ticket key of its own ([`ControlTls`]), so
//! its data connections can only resume sessions that it created. [`FtpsTls::reload`] swaps the
//! certificate for connections made afterwards; existing ones keep their copy.

use std::io;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor, ServerSessionMemoryCache};
use rustls::sign::SingleCertAndKey;
use rustls::{HandshakeKind, ServerConfig};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};
use wharf_ftp::{BoxedStream, DataDirection, FtpTls, FtpTlsConnection};

use crate::acks::PromptAcks;
use crate::certificates::{CertificateSource, Fingerprint, ServerCertificate};
use crate::errors::CertificateError;
use crate::resumption::{GateState, GatedSessions, GatedTicketer, IssueGate};

/// TLS 1.2 sessions (by session ID) one control connection remembers: its own and those of
/// data connections that did not use tickets.
const SESSIONS_PER_CONTROL_CONNECTION: usize = 16;

/// Bytes read from a data connection's socket at once. rustls asks for 4 KiB at a time; reading
/// several TLS records (up to 16 KiB + 29 bytes each) per system call instead keeps uploads
/// from paying four or five `read`s per record.
pub const DATA_READ_BUFFER: usize = 64 * 1024;

/// Encrypted bytes a data connection may queue before writing to the socket. A 256 KiB chunk
/// of a download becomes sixteen records, written with one `writev` per this many bytes.
pub const DATA_SEND_BUFFER: usize = 256 * 1024;

/// The stream of a protected data connection.
type DataStream = tokio_rustls::server::TlsStream<BufReader<PromptAcks>>;

/// What protected data connections must do and what they get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataTls {
    /// A data connection must resume its control connection's TLS session.
    pub require_session_reuse: bool,
    /// Upload data connections hand out TLS 1.3 session tickets too (see
    /// `FtpsConfig::tls13_tickets_on_uploads`).
    pub tls13_tickets_on_uploads: bool,
}

/// The FTPS TLS provider: installed on the FTP listeners for `AUTH TLS`, and used by the
/// implicit listeners for their handshakes.
pub struct FtpsTls {
    source: CertificateSource,
    crypto: Arc<CryptoProvider>,
    data: DataTls,
    current: RwLock<Current>,
}

/// What new connections use.
struct Current {
    config: Arc<ServerConfig>,
    fingerprint: Fingerprint,
}

impl std::fmt::Debug for FtpsTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpsTls")
            .field("source", &self.source)
            .field("data", &self.data)
            .field("fingerprint", &self.fingerprint().to_string())
            .finish_non_exhaustive()
    }
}

impl FtpsTls {
    /// Loads (or, for a self-signed source, generates on first start) the certificate and
    /// builds the configuration: TLS 1.2 and 1.3, rustls's default cipher suites on aws-lc-rs.
    /// `data` says what protected data connections must do and get. Blocking (file I/O).
    pub fn new(source: CertificateSource, data: DataTls) -> Result<FtpsTls, CertificateError> {
        let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certificate = source.load(&crypto)?;
        let current = build(&crypto, &certificate)?;
        Ok(FtpsTls { source, crypto, data, current: RwLock::new(current) })
    }

    /// The SHA-256 fingerprint of the certificate new connections get.
    pub fn fingerprint(&self) -> Fingerprint {
        self.current.read().unwrap_or_else(PoisonError::into_inner).fingerprint
    }

    /// Where the certificate is read from.
    pub fn source(&self) -> &CertificateSource {
        &self.source
    }

    /// Whether data connections must resume the control connection's TLS session.
    pub fn requires_session_reuse(&self) -> bool {
        self.data.require_session_reuse
    }

    /// Reads the certificate and key again and serves them to connections made from now on.
    /// Sessions already running keep the certificate they started with, and their data
    /// connections keep resuming their sessions. On error nothing changes. Returns the new
    /// fingerprint. Blocking (file I/O); a generated certificate is re-read, never replaced.
    pub fn reload(&self) -> Result<Fingerprint, CertificateError> {
        let certificate = self.source.load(&self.crypto)?;
        let next = build(&self.crypto, &certificate)?;
        let fingerprint = next.fingerprint;
        let previous = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            next,
        );
        if previous.fingerprint == fingerprint {
            tracing::info!(%fingerprint, "FTPS certificate reloaded (unchanged)");
        } else {
            tracing::info!(
                %fingerprint,
                previous = %previous.fingerprint,
                path = %certificate.chain_path().display(),
                "FTPS certificate replaced for new connections"
            );
        }
        Ok(fingerprint)
    }

    /// The TLS state of a new control connection: a copy of the current configuration with a
    /// session store and ticket key of its own.
    pub fn control_connection(&self) -> ControlTls {
        let base = self.current.read().unwrap_or_else(PoisonError::into_inner).config.clone();
        let config = match rustls::crypto::aws_lc_rs::Ticketer::new() {
            Ok(ticketer) => {
                let mut config = (*base).clone();
                config.session_storage =
                    ServerSessionMemoryCache::new(SESSIONS_PER_CONTROL_CONNECTION);
                config.ticketer = ticketer;
                Ok(Arc::new(config))
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot create TLS session ticket keys");
                Err(err.to_string())
            }
        };
        ControlTls { config, data: self.data }
    }
}

impl FtpTls for FtpsTls {
    fn connection(&self) -> Arc<dyn FtpTlsConnection> {
        Arc::new(self.control_connection())
    }
}

fn build(
    crypto: &Arc<CryptoProvider>,
    certificate: &ServerCertificate,
) -> Result<Current, CertificateError> {
    let config = ServerConfig::builder_with_provider(crypto.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(CertificateError::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certificate.certified_key().clone())));
    Ok(Current { config: Arc::new(config), fingerprint: *certificate.fingerprint() })
}

/// The TLS state of one control connection and its data connections.
#[derive(Debug)]
pub struct ControlTls {
    /// This connection's configuration (own session store and ticket key), or why none could
    /// be made.
    config: Result<Arc<ServerConfig>, String>,
    data: DataTls,
}

impl ControlTls {
    fn config(&self) -> io::Result<&Arc<ServerConfig>> {
        self.config.as_ref().map_err(|err| {
            io::Error::other(format!(
                "TLS is unavailable: cannot create session ticket keys: {err}"
            ))
        })
    }

    /// The configuration of one data connection carrying bytes in `direction`: this
    /// connection's, with tickets and stored sessions behind `gate`.
    fn data_config(
        &self,
        gate: &Arc<IssueGate>,
        direction: DataDirection,
    ) -> io::Result<Arc<ServerConfig>> {
        let control = self.config()?;
        let mut config = (**control).clone();
        config.ticketer =
            Arc::new(GatedTicketer { inner: control.ticketer.clone(), gate: gate.clone() });
        config.session_storage =
            Arc::new(GatedSessions { inner: control.session_storage.clone(), gate: gate.clone() });
        if direction == DataDirection::FromClient && !self.data.tls13_tickets_on_uploads {
            // TLS 1.3 tickets follow the handshake. Uploading clients (curl before 8.9, lftp)
            // close without reading them; when they arrive before or after that close, the
            // client's kernel resets the connection and drops whatever of the upload it had
            // not sent yet. So uploads get no new tickets (TLS 1.2 tickets are part of the
            // handshake and stay), except when the session holds the upload's 150 until this
            // handshake is over (`ClientFirst`): then the tickets are at the
            // client before it sends a byte, and curl reads them before it closes. See
            // docs/protocols/ftps.md.
            config.send_tls13_tickets = 0;
        }
        Ok(Arc::new(config))
    }

    /// The server handshake of a control connection (explicit after `AUTH TLS`, or implicit).
    pub async fn handshake_control<S>(
        &self,
        stream: S,
    ) -> io::Result<tokio_rustls::server::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        TlsAcceptor::from(self.config()?.clone()).accept(stream).await
    }

    /// The server handshake of a data connection. With session reuse required, a handshake
    /// that does not resume one of this connection's sessions is cut off right after the
    /// client's hello, before the server sends its certificate or any ticket (after a TLS 1.3
    /// hello retry, at the end, having issued nothing).
    async fn handshake_data(
        &self,
        tcp: TcpStream,
        direction: DataDirection,
    ) -> io::Result<DataStream> {
        let peer = tcp.peer_addr().ok();
        let buffered = BufReader::with_capacity(DATA_READ_BUFFER, PromptAcks::new(tcp));
        let hello = LazyConfigAcceptor::new(Acceptor::default(), buffered).await?;
        if !self.data.require_session_reuse {
            let config = self.data_config(&IssueGate::new(GateState::Open), direction)?;
            let stream = hello
                .into_stream_with(config, |connection| {
                    connection.set_buffer_limit(Some(DATA_SEND_BUFFER));
                })
                .await?;
            return Ok(settled(stream));
        }
        let gate = IssueGate::new(GateState::Closed);
        let mut kind = None;
        let handshake = hello.into_stream_with(self.data_config(&gate, direction)?, |connection| {
            connection.set_buffer_limit(Some(DATA_SEND_BUFFER));
            kind = connection.handshake_kind();
            gate.set(match kind {
                Some(HandshakeKind::Resumed) => GateState::Open,
                _ => GateState::Sealed,
            });
        });
        if kind == Some(HandshakeKind::Full) {
            // Dropping the handshake closes the connection without a reply.
            return Err(not_resumed(peer, kind));
        }
        let stream = handshake.await?;
        let kind = stream.get_ref().1.handshake_kind();
        if kind != Some(HandshakeKind::Resumed) {
            return Err(not_resumed(peer, kind));
        }
        Ok(settled(stream))
    }
}

/// A data connection whose handshake is over: its reads stop hurrying acknowledgements.
fn settled(mut stream: DataStream) -> DataStream {
    stream.get_mut().0.get_mut().settle();
    stream
}

fn not_resumed(peer: Option<std::net::SocketAddr>, kind: Option<HandshakeKind>) -> io::Error {
    tracing::warn!(
        ?peer,
        ?kind,
        "refused a protected data connection that did not resume its control connection's TLS \
         session (ftps.require_session_reuse)"
    );
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the data connection did not resume the control connection's TLS session, \
         which this server requires",
    )
}

#[async_trait]
impl FtpTlsConnection for ControlTls {
    async fn secure_control(&self, stream: BoxedStream) -> io::Result<BoxedStream> {
        let stream = self.handshake_control(stream).await?;
        Ok(Box::new(stream))
    }

    async fn secure_data(
        &self,
        stream: TcpStream,
        direction: DataDirection,
    ) -> io::Result<BoxedStream> {
        let stream = self.handshake_data(stream, direction).await?;
        Ok(Box::new(stream))
    }
}
