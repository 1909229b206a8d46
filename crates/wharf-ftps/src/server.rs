//! The FTPS server: the FTP listeners with `AUTH TLS`, the implicit listeners, and the
//! certificate they share.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use wharf_access::Gateway;
use wharf_ftp::{FtpConfig, FtpServer, FtpService, FtpTls, TlsSetup};

use crate::certificates::{CertificateSource, Fingerprint};
use crate::config::FtpsConfig;
use crate::errors::{CertificateError, FtpsError};
use crate::implicit::ImplicitSessions;
use crate::provider::{DataTls, FtpsTls};

/// How a listener of [`FtpsServer`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// FTP, where TLS starts with `AUTH TLS` (explicit FTPS).
    Explicit,
    /// FTP without TLS (`ftps.explicit.control: off`).
    PlainOnly,
    /// Implicit FTPS: TLS from the first byte.
    Implicit,
}

/// A bound listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundListener {
    /// How it speaks.
    pub kind: ListenerKind,
    /// The address actually bound (with the port chosen for port 0).
    pub addr: SocketAddr,
}

/// FTP with TLS: the `ftp` section's listeners (offering `AUTH TLS` unless
/// `ftps.explicit.control` is `off`) and the implicit FTPS listeners, serving the same
/// sessions with one certificate.
#[derive(Debug)]
pub struct FtpsServer {
    ftp: FtpServer,
    explicit_tls: bool,
    implicit_listeners: Vec<std::net::TcpListener>,
    implicit: ImplicitSessions,
    tls: Arc<FtpsTls>,
}

impl FtpsServer {
    /// Loads the certificate (generating the self-signed one on first start when none is
    /// configured) and binds the FTP listeners of `ftp` and the implicit listeners of `ftps`.
    /// Paths in `ftps` must be absolute or relative to the working directory. Works outside a
    /// Tokio runtime; [`FtpsServer::run`] needs one. Blocking (file I/O).
    pub fn bind(
        ftps: FtpsConfig,
        ftp: FtpConfig,
        gateway: Arc<Gateway>,
    ) -> Result<FtpsServer, FtpsError> {
        ftps.validate()?;
        let source = CertificateSource::from_config(&ftps);
        let data = DataTls {
            require_session_reuse: ftps.require_session_reuse,
            tls13_tickets_on_uploads: ftps.tls13_tickets_on_uploads,
        };
        let tls = Arc::new(FtpsTls::new(source, data)?);
        let provider: Arc<dyn FtpTls> = tls.clone();
        let handshake_timeout = ftp.login_timeout;
        let implicit_policy = ftps.implicit_policy();
        let (ftp, service, explicit_tls) = match ftps.explicit_policy() {
            Some(policy) => {
                let setup = TlsSetup { provider, policy };
                let server = FtpServer::bind_with_tls(ftp, gateway.clone(), Some(setup))?;
                let service = server.service();
                (server, service, true)
            }
            None => {
                // The FTP listeners must not offer AUTH, so the implicit sessions need a
                // service of their own (with its own session caps).
                let implicit_config = FtpConfig { listen: Vec::new(), ..ftp.clone() };
                let setup = TlsSetup { provider, policy: implicit_policy };
                let service = FtpService::new(implicit_config, gateway.clone(), Some(setup))?;
                (FtpServer::bind(ftp, gateway.clone())?, service, false)
            }
        };
        let implicit_listeners = ftps
            .implicit_listen
            .iter()
            .map(|&addr| {
                FtpServer::bind_control_listener(addr)
                    .map_err(|source| FtpsError::Bind { addr, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let implicit = ImplicitSessions {
            service,
            tls: tls.clone(),
            policy: implicit_policy,
            handshake_timeout,
            gateway,
        };
        Ok(FtpsServer { ftp, explicit_tls, implicit_listeners, implicit, tls })
    }

    /// Every bound listener with how it speaks: the FTP listeners first, then the implicit ones.
    pub fn local_addrs(&self) -> Vec<BoundListener> {
        let ftp_kind =
            if self.explicit_tls { ListenerKind::Explicit } else { ListenerKind::PlainOnly };
        let ftp =
            self.ftp.local_addrs().into_iter().map(|addr| BoundListener { kind: ftp_kind, addr });
        let implicit = self
            .implicit_addrs()
            .into_iter()
            .map(|addr| BoundListener { kind: ListenerKind::Implicit, addr });
        ftp.chain(implicit).collect()
    }

    /// The addresses of the FTP listeners (explicit FTPS unless `ftps.explicit.control` is
    /// `off`).
    pub fn ftp_addrs(&self) -> Vec<SocketAddr> {
        self.ftp.local_addrs()
    }

    /// The addresses of the implicit FTPS listeners.
    pub fn implicit_addrs(&self) -> Vec<SocketAddr> {
        self.implicit_listeners.iter().filter_map(|listener| listener.local_addr().ok()).collect()
    }

    /// The SHA-256 fingerprint of the certificate new connections get, for printing at start.
    pub fn fingerprint(&self) -> Fingerprint {
        self.tls.fingerprint()
    }

    /// Re-reads the certificate and key for new connections; running sessions keep theirs.
    /// See [`FtpsTls::reload`]; to reload after [`FtpsServer::run`] took the server, keep
    /// [`FtpsServer::tls`].
    pub fn reload(&self) -> Result<Fingerprint, CertificateError> {
        self.tls.reload()
    }

    /// The TLS provider, which outlives [`FtpsServer::run`]: call [`FtpsTls::reload`] on it
    /// (on `SIGHUP`) and read [`FtpsTls::fingerprint`].
    pub fn tls(&self) -> Arc<FtpsTls> {
        self.tls.clone()
    }

    /// Serves every listener until `gateway.shutdown` starts draining. Sessions run on
    /// `gateway.shutdown.spawn`: an idle session closes with `421` when draining starts, a
    /// transfer in progress may finish until termination.
    pub async fn run(self) {
        let FtpsServer { ftp, implicit_listeners, implicit, .. } = self;
        let mut accept_loops = tokio::task::JoinSet::new();
        accept_loops.spawn(ftp.run());
        for listener in implicit_listeners {
            let addr = listener.local_addr().ok();
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    accept_loops.spawn(implicit.clone().accept_loop(listener));
                }
                Err(err) => {
                    tracing::error!(?addr, error = %err, "cannot serve implicit FTPS listener");
                }
            }
        }
        while accept_loops.join_next().await.is_some() {}
    }
}
