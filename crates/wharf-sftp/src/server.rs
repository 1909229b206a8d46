//! The SFTP server: listeners, admission, and the life of each connection.
//!
//! Each accepted connection is admitted in the accept loop (the defender, the session caps,
//! the descriptor budget: [`wharf_access::Admission`]) before anything is spent on it, then
//! run by russh with an [`SshHandler`] in a task spawned through the gateway's
//! [`wharf_access::Shutdown`]. The connection task enforces what russh does not: the time
//! allowed to authenticate, and shutdown (an idle connection closes when draining starts, one
//! with an SFTP session once the session has no file open, everything when the grace period
//! ends).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::server::{Config, RunningSession};
use russh::{Disconnect, MethodSet, SshId};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use wharf_access::{Admission, AdmissionPermit, Gateway};

use crate::algorithms;
use crate::auth::OFFERED_METHODS;
use crate::config::SftpConfig;
use crate::errors::SftpError;
use crate::host_keys::HostKeys;
use crate::sftp::SubsystemSettings;
use crate::ssh::SshHandler;
use crate::stream::{Cut, severable};

/// Our identification string (no version number, to give scanners less to go on).
const SERVER_ID: &str = "SSH-2.0-Wharf";

/// Outgoing messages russh queues per connection before a sender waits; room for a few
/// hundred KiB of replies keeps the reply writer from waiting on every packet.
const EVENT_BUFFER: usize = 64;

/// Messages russh queues per channel for the request loop before it stops reading the
/// connection: with packets of at most `sftp.max_packet_size` (64 KiB), 1 MiB per channel.
/// (russh's default, 100, let one client park 6.4 MiB per channel there.)
const CHANNEL_BUFFER: usize = 16;

/// How long russh is given to say goodbye before the socket is cut.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Told (before the SSH identification) to a client over the session limits.
const TOO_MANY_SESSIONS: &str = "Too many SFTP sessions; try again later\r\n";

/// What every connection task needs.
struct Shared {
    gateway: Arc<Gateway>,
    ssh: Arc<Config>,
    admission: Admission,
    auth_timeout: Duration,
    subsystem: SubsystemSettings,
}

/// A bound SFTP server, ready to [`run`](SftpServer::run).
pub struct SftpServer {
    listeners: Vec<TcpListener>,
    local_addrs: Vec<SocketAddr>,
    fingerprints: Vec<String>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpServer")
            .field("local_addrs", &self.local_addrs)
            .field("fingerprints", &self.fingerprints)
            .finish_non_exhaustive()
    }
}

fn ssh_config(config: &SftpConfig, keys: &HostKeys) -> Config {
    Config {
        server_id: SshId::Standard(Cow::Borrowed(SERVER_ID)),
        methods: MethodSet::from(OFFERED_METHODS),
        // The shared login already makes failures slow and uniform (unknown users included).
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: keys.private_keys(),
        window_size: config.window_size,
        maximum_packet_size: config.max_packet_size,
        event_buffer_size: EVENT_BUFFER,
        channel_buffer_size: CHANNEL_BUFFER,
        preferred: algorithms::preferred(&keys.types()),
        max_auth_attempts: config.max_auth_attempts,
        inactivity_timeout: Some(config.idle_timeout),
        keepalive_interval: None,
        nodelay: true,
        ..Config::default()
    }
}

impl SftpServer {
    /// Prepares the host keys (loading them from `config.host_key_dir`, creating missing
    /// ones) and binds every address of `config.listen`. With no address nothing is done and
    /// [`run`](SftpServer::run) returns when the gateway drains.
    pub async fn bind(config: SftpConfig, gateway: Arc<Gateway>) -> Result<SftpServer, SftpError> {
        config.validate()?;
        let subsystem = SubsystemSettings {
            max_open_handles: config.max_open_handles,
            idle_timeout: config.idle_timeout,
            shutdown: gateway.shutdown.clone(),
            descriptors: gateway.descriptors.clone(),
        };
        let (keys, fingerprints) = if config.listen.is_empty() {
            (None, Vec::new())
        } else {
            let dir = config.host_key_dir.clone();
            let types = config.host_key_types.clone();
            let keys =
                tokio::task::spawn_blocking(move || HostKeys::load_or_generate(&dir, &types))
                    .await
                    .map_err(SftpError::Interrupted)??;
            let fingerprints = keys.fingerprints();
            (Some(keys), fingerprints)
        };
        let ssh = match &keys {
            Some(keys) => ssh_config(&config, keys),
            None => Config::default(),
        };
        let mut listeners = Vec::with_capacity(config.listen.len());
        let mut local_addrs = Vec::with_capacity(config.listen.len());
        for &addr in &config.listen {
            let listener =
                TcpListener::bind(addr).await.map_err(|source| SftpError::Bind { addr, source })?;
            let bound = listener.local_addr().map_err(|source| SftpError::Bind { addr, source })?;
            listeners.push(listener);
            local_addrs.push(bound);
        }
        let admission = Admission::new(
            "SFTP",
            gateway.clone(),
            config.limits,
            config.descriptors_per_connection(),
        );
        let shared = Arc::new(Shared {
            gateway,
            ssh: Arc::new(ssh),
            admission,
            auth_timeout: config.auth_timeout,
            subsystem,
        });
        Ok(SftpServer { listeners, local_addrs, fingerprints, shared })
    }

    /// The addresses actually bound (with the ports the system chose for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The host keys' SHA-256 fingerprints (`ED25519 SHA256:...`), for printing at start so
    /// users can check what their client shows.
    pub fn host_key_fingerprints(&self) -> &[String] {
        &self.fingerprints
    }

    /// Serves until the gateway starts draining. Connections are tasks of the gateway's
    /// [`wharf_access::Shutdown`], which waits for them.
    pub async fn run(self) {
        let mut accept_loops = Vec::with_capacity(self.listeners.len());
        for listener in self.listeners {
            accept_loops.push(tokio::spawn(accept_loop(listener, self.shared.clone())));
        }
        for accept_loop in accept_loops {
            if let Err(err) = accept_loop.await {
                tracing::error!(error = %err, "an SFTP accept loop failed");
            }
        }
        // No listener at all: still return only when the server stops, like the others.
        self.shared.gateway.shutdown.draining().await;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let shutdown = shared.gateway.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            () = shutdown.draining() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let admitting = shared.clone();
                // `client` is `peer`, or the address a load balancer's PROXY header gives.
                shared.gateway.proxy.accept("SFTP", socket, peer, move |socket, client| {
                    admit(socket, client, &admitting);
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "accepting an SFTP connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

fn admit(socket: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let permit = match shared.admission.admit(peer.ip()) {
        Ok(permit) => permit,
        Err(refusal) => {
            // A banned or deny-listed address learns nothing. A client over a cap is told:
            // text before the identification line is allowed (RFC 4253, 4.2) and shown by
            // clients; a full socket buffer just loses the courtesy. Dropping the socket
            // closes it.
            if refusal.client_text().is_some() {
                let _ = socket.try_write(TOO_MANY_SESSIONS.as_bytes());
            }
            return;
        }
    };
    if let Err(err) = socket.set_nodelay(true) {
        tracing::debug!(%peer, error = %err, "could not disable Nagle's algorithm");
    }
    shared.gateway.shutdown.spawn(connection(socket, peer, permit, shared.clone()));
}

/// Ends the connection: asks russh to send a disconnect message (so the client sees why) and,
/// unless russh is done within [`DISCONNECT_GRACE`] (it does not look at the request during a
/// key exchange), cuts the socket.
async fn disconnect(
    running: &mut std::pin::Pin<&mut RunningSession<SshHandler>>,
    handle: &russh::server::Handle,
    cut: &Cut,
    reason: &str,
) {
    let asked = handle.disconnect(Disconnect::ByApplication, reason.to_owned(), "en".to_owned());
    let polite = tokio::time::timeout(DISCONNECT_GRACE, async {
        let _ = asked.await;
        let _ = running.as_mut().await;
    })
    .await;
    if polite.is_err() {
        cut.cut();
        let _ = tokio::time::timeout(DISCONNECT_GRACE, running.as_mut()).await;
    }
}

async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    permit: AdmissionPermit,
    shared: Arc<Shared>,
) {
    // The session's place across a cluster, if places are counted there.
    let mut socket = socket;
    let place = match shared.admission.admit_shared(peer.ip()).await {
        Ok(place) => place,
        Err(refusal) => {
            if refusal.client_text().is_some() {
                let _ = socket.write_all(TOO_MANY_SESSIONS.as_bytes()).await;
            }
            return;
        }
    };
    let shutdown = shared.gateway.shutdown.clone();
    let deadline = Instant::now() + shared.auth_timeout;
    let (authenticated_tx, mut authenticated) = watch::channel(None);
    let subsystems = TaskTracker::new();
    let handler = SshHandler::new(
        shared.gateway.clone(),
        peer,
        subsystems.clone(),
        shared.subsystem.clone(),
        authenticated_tx,
    );
    let (socket, cut) = severable(socket);
    let started = tokio::time::timeout_at(
        deadline,
        russh::server::run_stream(shared.ssh.clone(), socket, handler),
    )
    .await;
    let running = match started {
        Ok(Ok(running)) => running,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "SSH connection failed before key exchange");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no SSH identification before the authentication timeout");
            return;
        }
    };
    let handle = running.handle();
    tokio::pin!(running);
    let mut draining = false;
    let mut handler_gone = false;
    loop {
        let session = authenticated.borrow().clone();
        let authenticating = session.is_none();
        let killed = async {
            match &session {
                Some(session) => session.killed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = running.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "SSH connection ended with an error");
                }
                break;
            }
            () = tokio::time::sleep_until(deadline), if authenticating => {
                if authenticated.borrow().is_none() {
                    tracing::info!(%peer, "SSH authentication timed out");
                    disconnect(&mut running, &handle, &cut, "authentication timed out").await;
                    break;
                }
            }
            () = shutdown.draining(), if !draining => {
                draining = true;
                subsystems.close();
            }
            () = subsystems.wait(), if draining => {
                disconnect(&mut running, &handle, &cut, "the server is shutting down").await;
                break;
            }
            () = shutdown.terminated() => {
                disconnect(&mut running, &handle, &cut, "the server is shutting down").await;
                break;
            }
            // The client just authenticated: watch its session from the next turn. (An error
            // means the handler is gone, with the connection: stop looking.)
            changed = authenticated.changed(), if authenticating && !handler_gone => {
                handler_gone = changed.is_err();
            }
            () = killed => {
                tracing::info!(%peer, "session ended by an administrator");
                disconnect(&mut running, &handle, &cut, "the session was ended by an administrator").await;
                break;
            }
        }
    }
    // Let SFTP sessions finish their closing work (publishing or abandoning uploads).
    subsystems.close();
    tokio::select! {
        () = subsystems.wait() => {}
        () = shutdown.terminated() => {}
    }
    drop(place);
    drop(permit);
}
