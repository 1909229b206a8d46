//! The HTTP listeners — the metrics endpoint and the admin API — served the one way: axum
//! routers on hyper's HTTP/1.1 connections.
//!
//! Each connection is admitted like every other listener's ([`Admission`]: the defender, then
//! the caps in total and per address, then the descriptor budget) before a task is spawned
//! for it, so the caps bound the tasks too; a refused connection is closed at once. A request
//! head must arrive within [`HttpLimits::header_timeout`] and fit in [`MAX_HEAD`] (431
//! otherwise); a connection lives at most [`HttpLimits::connection_time`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use wharf_access::{Admission, Gateway};

/// The most a request head may hold (hyper's smallest read buffer).
pub const MAX_HEAD: usize = 8 * 1024;

/// Descriptors one connection holds: its socket (the answers come from memory).
pub const DESCRIPTORS_PER_CONNECTION: usize = 1;

/// The client's address, put into each request by the connection that carries it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Whether the connection that carries a request is TLS, put into each request.
#[derive(Debug, Clone, Copy)]
pub struct Encrypted(pub bool);

/// How long a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// The most a request head may take to arrive.
    pub header_timeout: Duration,
    /// The most one connection may live.
    pub connection_time: Duration,
    /// Whether a connection may carry more than one request.
    pub keep_alive: bool,
}

/// A bound HTTP listener.
pub struct HttpListener {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    gateway: Arc<Gateway>,
    admission: Admission,
    limits: HttpLimits,
    /// TLS handshakes first, when the listener speaks HTTPS.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl HttpListener {
    /// Binds `addr` for `router`, admitting connections under `caps` (named `name` in
    /// logs and admission).
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        caps: wharf_access::SessionLimits,
        limits: HttpLimits,
        router: Router,
        gateway: Arc<Gateway>,
    ) -> std::io::Result<HttpListener> {
        let listener = TcpListener::bind(addr).await?;
        let admission = Admission::new(name, gateway.clone(), caps, DESCRIPTORS_PER_CONNECTION)
            .without_logins();
        Ok(HttpListener { name, listener, router, gateway, admission, limits, tls: None })
    }

    /// This listener speaking HTTPS: each connection begins with a TLS handshake, which must
    /// end within [`HttpLimits::header_timeout`].
    pub fn with_tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown's grace period is over (through the drain, so that `/ready`
    /// can say the node is draining).
    pub async fn run(self) {
        let shutdown = self.gateway.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.terminated() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Refused: dropped, so closed at once.
                        let Ok(permit) = self.admission.admit(peer.ip()) else { continue };
                        let (router, limits) = (self.router.clone(), self.limits);
                        let tls = self.tls.clone();
                        tokio::spawn(async move {
                            match tls {
                                None => serve_connection(stream, peer, false, router, limits).await,
                                Some(tls) => {
                                    let handshake = tls.accept(stream);
                                    if let Ok(Ok(stream)) = tokio::time::timeout(limits.header_timeout, handshake).await {
                                        serve_connection(stream, peer, true, router, limits).await;
                                    }
                                }
                            }
                            drop(permit);
                        });
                    }
                    Err(err) => {
                        tracing::warn!(listener = self.name, error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }
}

/// Serves the requests of one connection (`encrypted`: a TLS stream), within `limits`.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    encrypted: bool,
    router: Router,
    limits: HttpLimits,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(Peer(peer));
        request.extensions_mut().insert(Encrypted(encrypted));
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD)
        .keep_alive(limits.keep_alive)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let _ = tokio::time::timeout(limits.connection_time, connection).await;
}
