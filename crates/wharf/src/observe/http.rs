//! The metrics endpoint: `GET /metrics` (Prometheus text format), `GET /bans` (JSON), and the
//! probes of load balancers and orchestrators on its own listener, meant for loopback or a
//! management network (not authenticated):
//!
//! - `GET /health` answers 200 while the process serves requests at all (liveness);
//! - `GET /ready` answers 200 while the node takes new sessions and 503 from the moment it
//!   starts draining (SIGTERM), so a load balancer stops sending clients to it while the
//!   transfers it holds finish. The endpoint keeps answering until the grace period ends.
//!
//! The handlers of `/metrics`, `/health` and `/ready` are the admin API's too (behind its
//! tokens for `/metrics`). One request per connection, each within [`REQUEST_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use wharf_access::{Gateway, SessionLimits};

use super::metrics::Metrics;
use crate::http_listener::{HttpLimits, HttpListener};

/// The most one connection (one request) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the observing handlers read.
#[derive(Clone)]
pub struct ObserveState {
    /// The shared layer (bans, the drain).
    pub gateway: Arc<Gateway>,
    /// The counters.
    pub metrics: Arc<Metrics>,
}

/// Liveness: 200 while the process answers at all.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, description = "alive", body = String)))]
pub async fn health() -> &'static str {
    "ok\n"
}

/// Readiness: 200 while the node takes new sessions, 503 from the moment it starts draining.
#[utoipa::path(get, path = "/ready", tag = "probes", responses(
    (status = 200, description = "takes new sessions", body = String),
    (status = 503, description = "draining", body = String),
))]
pub async fn ready(State(state): State<ObserveState>) -> impl IntoResponse {
    if state.gateway.shutdown.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "meta", security(("token" = [])), responses(
    (status = 200, description = "the metrics", body = String, content_type = "text/plain"),
    (status = 401, description = "no valid token", body = crate::admin::error::ErrorBody),
))]
pub async fn metrics(State(state): State<ObserveState>) -> impl IntoResponse {
    let body = state.metrics.render(state.gateway.defender().bans().len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The bans in force, as JSON.
async fn bans(State(state): State<ObserveState>) -> impl IntoResponse {
    let body = serde_json::to_string_pretty(&state.gateway.defender().bans()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body + "\n")
}

/// Binds the metrics endpoint on `addr`; at most `limits` connections are served at once.
pub async fn bind(
    addr: std::net::SocketAddr,
    limits: SessionLimits,
    metrics: Arc<Metrics>,
    gateway: Arc<Gateway>,
) -> std::io::Result<HttpListener> {
    let state = ObserveState { gateway: gateway.clone(), metrics };
    let router = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/bans", get(bans))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state);
    let http = HttpLimits {
        header_timeout: REQUEST_TIMEOUT,
        connection_time: REQUEST_TIMEOUT,
        keep_alive: false,
    };
    HttpListener::bind("metrics", addr, limits, http, router, gateway).await
}
