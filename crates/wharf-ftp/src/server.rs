//! The FTP server: listeners, admission, and the service that runs one session per control
//! connection.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;
use wharf_access::{Admission, AdmissionPermit, Gateway, Refusal};

use crate::config::FtpConfig;
use crate::data::PassivePorts;
use crate::probe::PeerProbe;
use crate::reply::Reply;
use crate::session::FtpSession;
use crate::tls::{BoxedStream, FtpTls, FtpTlsConnection, TlsPolicy, TlsSetup};

/// Connections the kernel queues on a control listener before they are accepted.
const LISTEN_BACKLOG: i32 = 1024;

/// Descriptors one FTP or FTPS session holds at most, besides one per mount of its user: the
/// control socket; the probe's duplicate of it; two data sockets (the passive listener and
/// the connection it accepts, which coexist until the accept returns; or, while the reply to
/// `PASV` is held for a nearby client, the new listener and the timer that holds it: a
/// listener still waiting from an earlier `PASV` is closed first); and two for storage (an upload
/// holds its temporary file and the folder it is published into; a download, its file; a
/// listing, its folder; a command such as `RNTO`, the two parent folders cap-std opens for a
/// moment). Other commands wait while a transfer runs, so storage never holds more at once.
pub const DESCRIPTORS_PER_SESSION: usize = 6;

/// Why the FTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    /// A control listener could not be bound.
    #[error("cannot listen for FTP on {addr}: {source}")]
    Bind {
        /// The address from `listen`.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The configuration names an identity for anonymous login that does not exist or is not
    /// passwordless.
    #[error("ftp.anonymous_user `{0}` must be an existing user with `passwordless: true`")]
    AnonymousUser(String),
}

/// What every session of a server shares.
pub(crate) struct ServerContext {
    pub(crate) config: FtpConfig,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) passive_ports: PassivePorts,
    pub(crate) admission: Admission,
    pub(crate) tls: Option<TlsSetup>,
}

/// A control connection handed to [`FtpService::serve`].
pub struct ControlConnection {
    /// The connection: plain TCP, or already TLS (implicit FTPS).
    pub stream: BoxedStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the client connected to (passive listeners bind to it).
    pub local: SocketAddr,
    /// For a connection that is already protected (implicit FTPS): the TLS state its
    /// handshake used, which its data connections must resume. `None` for plain FTP.
    pub tls: Option<Arc<dyn FtpTlsConnection>>,
    /// What this connection's listener demands.
    pub policy: TlsPolicy,
    /// A second handle on the control socket, through which an upload that ends asks the
    /// kernel whether the client has closed it (`PeerProbe::of`). `None` for streams that are
    /// not sockets.
    pub probe: Option<PeerProbe>,
}

impl ControlConnection {
    /// A plain TCP control connection from `peer` (the client: the socket's peer, or the
    /// address a load balancer's PROXY header gave).
    pub fn plain(
        stream: TcpStream,
        peer: SocketAddr,
        policy: TlsPolicy,
    ) -> io::Result<ControlConnection> {
        let local = stream.local_addr()?;
        // Replies are small and answer requests: send them without delay.
        stream.set_nodelay(true)?;
        let probe = Some(PeerProbe::of(&stream)?);
        Ok(ControlConnection { stream: Box::new(stream), peer, local, tls: None, policy, probe })
    }
}

impl std::fmt::Debug for ControlConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlConnection")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("tls", &self.tls.is_some())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Runs FTP sessions. Cheap to clone; clones share the session caps and passive ports, so
/// the implicit-FTPS listener of `wharf-ftps` and the plain listeners count together.
#[derive(Clone)]
pub struct FtpService {
    context: Arc<ServerContext>,
}

impl std::fmt::Debug for FtpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpService").field("config", &self.context.config).finish_non_exhaustive()
    }
}

impl FtpService {
    /// A service for `config` over `gateway`, with TLS when `tls` is given.
    pub fn new(
        config: FtpConfig,
        gateway: Arc<Gateway>,
        tls: Option<TlsSetup>,
    ) -> Result<FtpService, FtpError> {
        if let Some(name) = &config.anonymous_user {
            let users = gateway.authenticator.users();
            if !users.get(name).is_some_and(|user| user.passwordless) {
                return Err(FtpError::AnonymousUser(name.clone()));
            }
        }
        let passive_ports = PassivePorts::new(config.passive_ports, gateway.proxy.clone());
        let admission =
            Admission::new("FTP", gateway.clone(), config.limits, DESCRIPTORS_PER_SESSION);
        let context = ServerContext { config, gateway, passive_ports, admission, tls };
        Ok(FtpService { context: Arc::new(context) })
    }

    /// The configuration.
    pub fn config(&self) -> &FtpConfig {
        &self.context.config
    }

    /// The TLS provider, if one is installed.
    pub fn tls_provider(&self) -> Option<&Arc<dyn FtpTls>> {
        self.context.tls.as_ref().map(|setup| &setup.provider)
    }

    /// The admission step of this service's listeners (the defender, the session caps shared
    /// by every listener of the service, the descriptor budget). Call it in the accept loop,
    /// before anything else is done for the connection.
    pub fn admit(&self, peer: IpAddr) -> Result<AdmissionPermit, Refusal> {
        self.context.admission.admit(peer)
    }

    /// Runs one session on `connection`, admitted with `permit`, until it ends. Spawn the
    /// future with `gateway.shutdown.spawn` so shutdown waits for it.
    pub fn serve(
        &self,
        connection: ControlConnection,
        permit: AdmissionPermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        let context = self.context.clone();
        let span = tracing::info_span!("ftp", peer = %connection.peer);
        async move {
            // The session's place across a cluster, if places are counted there.
            let place = match context.admission.admit_shared(connection.peer.ip()).await {
                Ok(place) => place,
                Err(refusal) => {
                    if let Some(text) = refusal.client_text() {
                        let mut stream = connection.stream;
                        let reply = Reply::new(421, format!("{text}."));
                        let _ = stream.write_all(&reply.to_bytes()).await;
                        let _ = stream.flush().await;
                    }
                    return;
                }
            };
            tracing::debug!("session started");
            FtpSession::new(context, connection).run().await;
            drop(place);
            drop(permit);
        }
        .instrument(span)
    }
}

/// The FTP server: its control listeners and the service behind them.
#[derive(Debug)]
pub struct FtpServer {
    service: FtpService,
    listeners: Vec<std::net::TcpListener>,
    policy: TlsPolicy,
}

impl FtpServer {
    /// Binds every `listen` address of `config` (plain FTP, no TLS). Works outside a Tokio
    /// runtime; [`FtpServer::run`] needs one.
    pub fn bind(config: FtpConfig, gateway: Arc<Gateway>) -> Result<FtpServer, FtpError> {
        Self::bind_with_tls(config, gateway, None)
    }

    /// Like [`FtpServer::bind`], with a TLS provider: `AUTH TLS` is offered on the listeners
    /// and `tls.policy` applies to them.
    pub fn bind_with_tls(
        config: FtpConfig,
        gateway: Arc<Gateway>,
        tls: Option<TlsSetup>,
    ) -> Result<FtpServer, FtpError> {
        let policy = tls.as_ref().map(|setup| setup.policy).unwrap_or_default();
        let listeners = config
            .listen
            .iter()
            .map(|&addr| bind_listener(addr).map_err(|source| FtpError::Bind { addr, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let service = FtpService::new(config, gateway, tls)?;
        Ok(FtpServer { service, listeners, policy })
    }

    /// The addresses actually bound (with the ports chosen for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|listener| listener.local_addr().ok()).collect()
    }

    /// The service behind the listeners, for more listeners (implicit FTPS) that share its
    /// session caps.
    pub fn service(&self) -> FtpService {
        self.service.clone()
    }

    /// Binds one control listener as [`FtpServer::bind`] binds its own (IPv6 listeners are
    /// IPv6-only, addresses are reused, a deep backlog), for other listeners serving the same
    /// sessions (implicit FTPS). Works outside a Tokio runtime.
    pub fn bind_control_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        bind_listener(addr)
    }

    /// Accepts control connections until `gateway.shutdown` starts draining. Sessions run on
    /// `gateway.shutdown.spawn`: an idle session closes with `421` when draining starts, a
    /// transfer in progress may finish until termination.
    pub async fn run(self) {
        let FtpServer { service, listeners, policy } = self;
        let mut accept_loops = tokio::task::JoinSet::new();
        for listener in listeners {
            let addr = listener.local_addr().ok();
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    accept_loops.spawn(accept_loop(listener, service.clone(), policy));
                }
                Err(err) => tracing::error!(?addr, error = %err, "cannot serve FTP listener"),
            }
        }
        while accept_loops.join_next().await.is_some() {}
    }
}

async fn accept_loop(listener: TcpListener, service: FtpService, policy: TlsPolicy) {
    let shutdown = service.context.gateway.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            () = shutdown.draining() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let proxy = service.context.gateway.proxy.clone();
                let service = service.clone();
                // `client` is `peer`, or the address a load balancer's PROXY header gives.
                proxy.accept("FTP", stream, peer, move |stream, client| {
                    let permit = match service.admit(client.ip()) {
                        Ok(permit) => permit,
                        Err(refusal) => return refuse(&stream, refusal),
                    };
                    match ControlConnection::plain(stream, client, policy) {
                        Ok(connection) => {
                            let shutdown = &service.context.gateway.shutdown;
                            shutdown.spawn(service.serve(connection, permit));
                        }
                        Err(err) => {
                            tracing::debug!(error = %err, "control connection lost at accept");
                        }
                    }
                });
            }
            Err(err) => {
                // Out of descriptors, say: back off instead of spinning.
                tracing::warn!(error = %err, "accepting an FTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Tells a client over a cap why it is refused (`421`), without waiting: a full socket buffer
/// just loses the courtesy. A banned or deny-listed client is told nothing. The connection
/// closes when the caller drops it.
fn refuse(stream: &TcpStream, refusal: Refusal) {
    if let Some(text) = refusal.client_text() {
        let _ = stream.try_write(&Reply::new(421, format!("{text}.")).to_bytes());
    }
}

/// A listening socket for `addr`. IPv6 listeners are IPv6-only, so `0.0.0.0:21` and
/// `[::]:21` can both be configured.
fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let socket = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&socket, true)?;
    }
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, LISTEN_BACKLOG)?;
    Ok(std::net::TcpListener::from(socket))
}
