//! The admin API: an HTTP listener of its own (off by default) to operate the server without
//! editing files — bans, reload, version, metrics, probes — with API tokens, every call
//! audited, errors as JSON with a stable code, and an OpenAPI document generated from the
//! handlers (`GET /api/v1/openapi.json`).
//!
//! Who may call what is one rule ([`needed_scope`]): the probes and the OpenAPI document need
//! no token, a `GET` needs a token of any scope, anything else an `admin` token.
//!
//! Served like the metrics endpoint (`crate::http_listener`: connections admitted before a
//! task is spawned, bounded request heads); a request head must arrive within
//! [`HEADER_TIMEOUT`], a body is at most [`MAX_BODY`], a connection lives at most
//! [`CONNECTION_LIMIT`].

pub mod error;
pub mod routes;
pub mod sessions;
pub mod tls;
pub mod tokens;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use utoipa::OpenApi;
use wharf_access::{AUDIT_TARGET, Gateway};

use crate::config::MetricsLimits;
use crate::http_listener::{HttpLimits, HttpListener, Peer};
use crate::observe::http::ObserveState;
use crate::observe::metrics::Metrics;
use crate::user_store::{Applied, UserChange, UserStore, UserStoreError};
use error::ApiError;
use tokens::{Scope, Tokens};

/// The most a request body may hold.
pub const MAX_BODY: usize = 64 * 1024;
/// The most a request head may take to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most one connection may live (keep-alive included).
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

/// The `admin` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the API listens (keep it on loopback or a management network).
    pub listen: SocketAddr,
    /// The tokens file (`wharf token create` writes it); relative to the data directory.
    #[serde(default = "default_tokens_file")]
    pub tokens_file: PathBuf,
    /// Connections at once, in total and per address.
    #[serde(default)]
    pub limits: MetricsLimits,
    /// HTTPS with this certificate; plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<tls::AdminTlsConfig>,
}

fn default_tokens_file() -> PathBuf {
    PathBuf::from("api-tokens.yaml")
}

/// What the API asks of the server's signal loop, which carries it out between signals, one
/// at a time, so a change never races a reload.
pub enum Control {
    /// Reload, as SIGHUP does; answered with what the server said, or why not.
    Reload(oneshot::Sender<Result<String, String>>),
    /// Change a user; answered with what the change did and the user after it.
    Users(UserChange, oneshot::Sender<Result<(Applied, serde_json::Value), UserStoreError>>),
}

impl ApiState {
    /// Hands a request made by `request` to the server's signal loop and waits for its answer.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.control.send(request(reply)).await.map_err(|_| ApiError::Unavailable)?;
        answer.await.map_err(|_| ApiError::Unavailable)
    }
}

/// Password hashes made at once for the API (each argon2id takes ~19 MiB).
const CONCURRENT_HASHES: usize = 2;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    gateway: Arc<Gateway>,
    observe: ObserveState,
    tokens: Arc<RwLock<Tokens>>,
    control: mpsc::Sender<Control>,
    /// Where users are kept.
    users: UserStore,
    /// Bounds the password hashes made for the API at once.
    hashing: Arc<tokio::sync::Semaphore>,
}

impl FromRef<ApiState> for ObserveState {
    fn from_ref(state: &ApiState) -> ObserveState {
        state.observe.clone()
    }
}

/// The OpenAPI document, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Wharf admin API", description = "Operate a Wharf server: users, quotas, live sessions, bans, reload, version, metrics, probes."),
    paths(
        crate::observe::http::health,
        crate::observe::http::ready,
        routes::openapi,
        crate::observe::http::metrics,
        routes::version,
        routes::list_bans,
        routes::add_ban,
        routes::lift_ban,
        routes::reload,
        users::list,
        users::get,
        users::put,
        users::patch,
        users::delete,
        users::quota,
        users::reset_quota,
        sessions::list_sessions,
        sessions::get_session,
        sessions::end_session,
    ),
    components(schemas(error::ErrorBody, routes::Version, routes::BanView, routes::NewBan, routes::Reloaded, users::UserDefinition, users::QuotaView, sessions::SessionView, sessions::TransferView)),
    modifiers(&BearerToken),
)]
struct ApiDoc;

/// Declares the bearer token every secured call names.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token made by `wharf token create`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// The scope a call needs: `None` for the probes and the OpenAPI document, a read token for
/// any other `GET`, an admin token for everything else.
pub fn needed_scope(method: &Method, path: &str) -> Option<Scope> {
    match (method, path) {
        (&Method::GET, "/health" | "/ready" | "/api/v1/openapi.json") => None,
        (&Method::GET | &Method::HEAD, _) => Some(Scope::Read),
        _ => Some(Scope::Admin),
    }
}

/// Checks the token against [`needed_scope`], and audits the call whatever its outcome.
async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request.extensions().get::<Peer>().map(|p| p.0);
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let holder = presented.and_then(|token| {
        let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.check(token).map(|(name, scope)| (name.to_owned(), scope))
    });
    let refusal = match (needed_scope(&method, &path), &holder) {
        (None, _) => None,
        (Some(_), None) => Some(ApiError::Unauthorized),
        (Some(needed), Some((_, scope))) if !scope.allows(needed) => Some(ApiError::Forbidden),
        (Some(_), Some(_)) => None,
    };
    let response = match refusal {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    };
    let status = response.status();
    let outcome = if status.is_success() {
        "ok"
    } else if status.as_u16() == 401 || status.as_u16() == 403 {
        "denied"
    } else {
        "failed"
    };
    // An audit event like the sessions' (same target and fields), so the audit log holds
    // every API call next to the transfers.
    tracing::info!(
        target: AUDIT_TARGET,
        session = 0u64,
        user = holder.as_ref().map_or("-", |(name, _)| name.as_str()),
        protocol = "admin",
        peer = %peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        op = "api",
        path = %path,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        outcome,
        detail = %format!("{method} {path} {}", status.as_u16()),
        "audit"
    );
    response
}

/// The API's routes.
fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(crate::observe::http::health))
        .route("/ready", get(crate::observe::http::ready))
        .route("/api/v1/openapi.json", get(routes::openapi))
        .route("/metrics", get(crate::observe::http::metrics))
        .route("/api/v1/version", get(routes::version))
        .route("/api/v1/bans", get(routes::list_bans).post(routes::add_ban))
        .route("/api/v1/bans/{address}", delete(routes::lift_ban))
        .route("/api/v1/reload", post(routes::reload))
        .route("/api/v1/users", get(users::list))
        .route(
            "/api/v1/users/{name}",
            get(users::get).put(users::put).patch(users::patch).delete(users::delete),
        )
        .route("/api/v1/users/{name}/quota", get(users::quota))
        .route("/api/v1/users/{name}/quota/reset", post(users::reset_quota))
        .route("/api/v1/sessions", get(sessions::list_sessions))
        .route("/api/v1/sessions/{id}", get(sessions::get_session).delete(sessions::end_session))
        .fallback(|| async { ApiError::NotFound("no such call".to_owned()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// What the server keeps of its admin API: the tokens to replace at a reload, and the reloads
/// asked for.
pub struct AdminHandles {
    /// The tokens the API accepts.
    pub tokens: Arc<RwLock<Tokens>>,
    /// What the API asks of the server's signal loop (taken by the loop).
    pub control: Option<mpsc::Receiver<Control>>,
}

/// Binds the admin API on `addr` (from `config`) with `tokens`, changing the users of
/// `users`.
pub async fn bind(
    config: &AdminConfig,
    addr: SocketAddr,
    tokens: Tokens,
    metrics: Arc<Metrics>,
    gateway: Arc<Gateway>,
    users: UserStore,
) -> std::io::Result<(HttpListener, AdminHandles)> {
    let tokens = Arc::new(RwLock::new(tokens));
    // One request is carried out at a time; a few more wait, the rest wait to be queued.
    let (control_requests, control) = mpsc::channel(8);
    let state = ApiState {
        gateway: gateway.clone(),
        observe: ObserveState { gateway: gateway.clone(), metrics },
        tokens: tokens.clone(),
        control: control_requests,
        users,
        hashing: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HASHES)),
    };
    let limits = HttpLimits {
        header_timeout: HEADER_TIMEOUT,
        connection_time: CONNECTION_LIMIT,
        keep_alive: true,
    };
    let mut listener =
        HttpListener::bind("admin", addr, config.limits.into(), limits, router(state), gateway)
            .await?;
    if let Some(tls) = &config.tls {
        listener = listener
            .with_tls(tls::acceptor(tls).map_err(|err| std::io::Error::other(format!("{err:#}")))?);
    }
    Ok((listener, AdminHandles { tokens, control: Some(control) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_call_what_is_one_rule() {
        assert_eq!(needed_scope(&Method::GET, "/health"), None);
        assert_eq!(needed_scope(&Method::GET, "/api/v1/openapi.json"), None);
        assert_eq!(needed_scope(&Method::GET, "/api/v1/bans"), Some(Scope::Read));
        assert_eq!(needed_scope(&Method::GET, "/metrics"), Some(Scope::Read));
        assert_eq!(needed_scope(&Method::POST, "/api/v1/bans"), Some(Scope::Admin));
        assert_eq!(needed_scope(&Method::DELETE, "/api/v1/bans/10.0.0.1"), Some(Scope::Admin));
        assert_eq!(needed_scope(&Method::POST, "/health"), Some(Scope::Admin));
    }

    #[test]
    fn the_openapi_document_names_every_route() {
        let document: serde_json::Value =
            serde_json::from_str(&openapi_json()).expect("the document is JSON");
        assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{document}");
        let paths = document["paths"].as_object().expect("paths");
        for path in [
            "/health",
            "/ready",
            "/metrics",
            "/api/v1/openapi.json",
            "/api/v1/version",
            "/api/v1/bans",
            "/api/v1/bans/{address}",
            "/api/v1/reload",
            "/api/v1/users",
            "/api/v1/users/{name}",
            "/api/v1/users/{name}/quota",
            "/api/v1/users/{name}/quota/reset",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        assert!(document["components"]["securitySchemes"]["token"].is_object());
    }
}
