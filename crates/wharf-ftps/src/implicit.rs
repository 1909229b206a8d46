//! Implicit FTPS listeners: TLS from the first byte (conventionally port 990), then the same
//! FTP sessions as everywhere else.
//!
//! Each accepted connection is admitted first, in the accept loop, against the FTP service's
//! caps (shared with the FTP listeners): a refused one is closed at once, before a task or a
//! handshake is spent on it. An admitted one gets the TLS state of a new control connection,
//! runs the handshake (bounded by the FTP login timeout, abandoned when shutdown starts) and
//! is handed to [`FtpService::serve`] already protected, with `PBSZ 0` and `PROT P` in force.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use wharf_access::{AdmissionPermit, Gateway};
use wharf_ftp::{ControlConnection, FtpService, FtpTlsConnection, PeerProbe, TlsPolicy};

use crate::provider::FtpsTls;

/// What every implicit connection of a server shares.
#[derive(Debug, Clone)]
pub(crate) struct ImplicitSessions {
    /// Runs the FTP sessions.
    pub(crate) service: FtpService,
    /// Makes each connection's TLS state.
    pub(crate) tls: Arc<FtpsTls>,
    /// What the implicit listeners demand.
    pub(crate) policy: TlsPolicy,
    /// How long a client may take to complete the handshake.
    pub(crate) handshake_timeout: Duration,
    /// Shutdown (connection tasks are spawned on it).
    pub(crate) gateway: Arc<Gateway>,
}

/// How an implicit connection's handshake ended.
enum Handshake {
    Done(Box<dyn wharf_ftp::FtpStream>),
    Failed(std::io::Error),
    TimedOut,
    ShuttingDown,
}

impl ImplicitSessions {
    /// Accepts connections on `listener` until shutdown starts draining.
    pub(crate) async fn accept_loop(self, listener: TcpListener) {
        let shutdown = self.gateway.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                () = shutdown.draining() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let sessions = self.clone();
                    // `client` is `peer`, or the address a load balancer's PROXY header gives.
                    let proxy = self.gateway.proxy.clone();
                    proxy.accept("implicit FTPS", tcp, peer, move |tcp, client| {
                        match sessions.service.admit(client.ip()) {
                            Ok(permit) => {
                                let shutdown = sessions.gateway.shutdown.clone();
                                shutdown.spawn(sessions.session(tcp, client, permit));
                            }
                            // Refused: closed at once (dropped), without a word, since the
                            // client expects a TLS handshake first.
                            Err(_) => drop(tcp),
                        }
                    });
                }
                Err(err) => {
                    // Out of descriptors, say: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting an implicit FTPS connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// One admitted connection: handshake, then the FTP session.
    async fn session(self, tcp: TcpStream, peer: SocketAddr, permit: AdmissionPermit) {
        let local = match tcp.local_addr() {
            Ok(local) => local,
            Err(err) => {
                tracing::debug!(%peer, error = %err, "implicit FTPS connection lost at accept");
                return;
            }
        };
        // Replies are small and answer requests: send them without delay.
        let _ = tcp.set_nodelay(true);
        let probe = match PeerProbe::of(&tcp) {
            Ok(probe) => probe,
            Err(err) => {
                tracing::warn!(%peer, error = %err, "no descriptor left for an implicit FTPS session");
                return;
            }
        };
        let connection = Arc::new(self.tls.control_connection());
        let handshake = async {
            tokio::select! {
                () = self.gateway.shutdown.draining() => Handshake::ShuttingDown,
                done = tokio::time::timeout(
                    self.handshake_timeout,
                    connection.handshake_control(tcp),
                ) => match done {
                    Ok(Ok(stream)) => Handshake::Done(Box::new(stream)),
                    Ok(Err(err)) => Handshake::Failed(err),
                    Err(_) => Handshake::TimedOut,
                },
            }
        };
        let stream = match handshake.await {
            Handshake::Done(stream) => stream,
            Handshake::Failed(err) => {
                tracing::info!(%peer, error = %err, "implicit FTPS handshake failed");
                return;
            }
            Handshake::TimedOut => {
                tracing::info!(%peer, "implicit FTPS handshake timed out");
                return;
            }
            Handshake::ShuttingDown => return,
        };
        let tls: Arc<dyn FtpTlsConnection> = connection;
        let control = ControlConnection {
            stream,
            peer,
            local,
            tls: Some(tls),
            policy: self.policy,
            probe: Some(probe),
        };
        self.service.serve(control, permit).await;
    }
}
