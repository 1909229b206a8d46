//! The metrics endpoint: `GET /metrics` (Prometheus text format), `GET /bans` (JSON), and the
//! probes of load balancers and orchestrators on its own listener, meant for loopback or a
//! management network:
//!
//! - `GET /health` answers 200 while the process serves requests at all (liveness);
//! - `GET /ready` answers 200 while the node takes new sessions and 503 from the moment it
//!   starts draining (SIGTERM), so a load balancer stops sending clients to it while the
//!   transfers it holds finish. The endpoint keeps answering until the grace period ends.
//!
//! Two read-only routes do not justify an HTTP framework's weight in the build, so this is a
//! deliberately small HTTP/1.1 responder: one request per connection, a bounded request head,
//! a timeout, `Connection: close`. Connections are admitted like every other listener's
//! ([`Admission`]: the defender, then caps in total and per address, then the descriptor
//! budget) before a task is spawned for them, so the caps bound the tasks too; a refused
//! connection is closed at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use wharf_access::{Admission, Gateway, SessionLimits};

use super::metrics::Metrics;

const MAX_REQUEST_HEAD: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Descriptors one connection holds: its socket (the answers come from memory).
pub const DESCRIPTORS_PER_CONNECTION: usize = 1;

/// A bound metrics endpoint.
pub struct MetricsEndpoint {
    listener: TcpListener,
    metrics: Arc<Metrics>,
    gateway: Arc<Gateway>,
    admission: Admission,
}

impl MetricsEndpoint {
    /// Binds `addr`; at most `limits` connections are served at once.
    pub async fn bind(
        addr: SocketAddr,
        limits: SessionLimits,
        metrics: Arc<Metrics>,
        gateway: Arc<Gateway>,
    ) -> std::io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr).await?;
        let admission =
            Admission::new("metrics", gateway.clone(), limits, DESCRIPTORS_PER_CONNECTION)
                .without_logins();
        Ok(MetricsEndpoint { listener, metrics, gateway, admission })
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers requests until the shutdown's grace period is over (through the drain, so
    /// that `/ready` can say the node is draining).
    pub async fn run(self) {
        let shutdown = self.gateway.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.terminated() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Refused: dropped, so closed at once.
                        let Ok(permit) = self.admission.admit(peer.ip()) else { continue };
                        let (metrics, gateway) = (self.metrics.clone(), self.gateway.clone());
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &metrics, &gateway)).await;
                            drop(permit);
                        });
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    gateway: &Gateway,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "too large\n",
            )
            .await;
        }
    }
    let request_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => {
            let body = metrics.render(gateway.defender().bans().len());
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        (Some("GET"), Some("/bans")) => {
            let body =
                serde_json::to_string_pretty(&gateway.defender().bans()).unwrap_or_default() + "\n";
            respond(&mut stream, "200 OK", "application/json", &body).await
        }
        (Some("GET"), Some("/health")) => {
            respond(&mut stream, "200 OK", "text/plain", "ok\n").await
        }
        (Some("GET"), Some("/ready")) => match gateway.shutdown.is_draining() {
            false => respond(&mut stream, "200 OK", "text/plain", "ready\n").await,
            true => {
                respond(&mut stream, "503 Service Unavailable", "text/plain", "draining\n").await
            }
        },
        (Some("GET"), Some(_)) => {
            respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await
        }
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
