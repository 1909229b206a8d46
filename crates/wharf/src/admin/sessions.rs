//! Live sessions through the API: who is logged in on this node, over which protocol, from
//! where, what each is transferring and how far it got; and ending one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wharf_access::{LiveSession, LiveTransfer};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::routes::rfc3339;

/// A session open on this node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// The session number, as in the audit log's `session` field.
    pub id: u64,
    /// The user logged in.
    pub user: String,
    /// `ftp`, `ftps`, `sftp` or `tftp`.
    pub protocol: String,
    /// The client's address and port (the one a PROXY header carried, behind a balancer).
    pub address: String,
    /// When the login succeeded (RFC 3339, UTC).
    pub started: String,
    /// The transfers in progress, oldest first.
    pub transfers: Vec<TransferView>,
}

/// A transfer in progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// `upload` or `download`.
    pub direction: String,
    /// The virtual path.
    pub path: String,
    /// Bytes moved so far.
    pub bytes: u64,
    /// When it began (RFC 3339, UTC).
    pub started: String,
}

fn view(session: LiveSession) -> SessionView {
    SessionView {
        id: session.id,
        user: session.user,
        protocol: session.protocol.as_str().to_owned(),
        address: session.peer.to_string(),
        started: rfc3339(session.started),
        transfers: session.transfers.into_iter().map(transfer_view).collect(),
    }
}

fn transfer_view(transfer: LiveTransfer) -> TransferView {
    TransferView {
        direction: transfer.direction.as_str().to_owned(),
        path: transfer.path.as_str().to_owned(),
        bytes: transfer.bytes,
        started: rfc3339(transfer.started),
    }
}

/// The sessions open on this node, on every protocol, in the order they logged in.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", security(("token" = [])), responses(
    (status = 200, description = "the sessions", body = [SessionView]),
    (status = 401, description = "no valid token", body = ErrorBody),
))]
pub async fn list_sessions(State(state): State<ApiState>) -> Json<Vec<SessionView>> {
    let sessions = state.gateway.authenticator.live_sessions().list();
    Json(sessions.into_iter().map(view).collect())
}

/// One session open on this node.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", security(("token" = [])),
    params(("id" = u64, Path, description = "the session number")),
    responses(
        (status = 200, description = "the session", body = SessionView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such session open", body = ErrorBody),
    ))]
pub async fn get_session(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state.gateway.authenticator.live_sessions().get(id);
    session.map(|s| Json(view(s))).ok_or_else(|| not_open(id))
}

/// Ends a session: its connection closes at once, an upload in progress is abandoned (the
/// file keeps its previous content), a download stops.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", security(("token" = [])),
    params(("id" = u64, Path, description = "the session number")),
    responses(
        (status = 204, description = "ended"),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "no such session open", body = ErrorBody),
    ))]
pub async fn end_session(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    if state.gateway.authenticator.live_sessions().kill(id) {
        tracing::warn!(session = id, "session ended by an operator");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_open(id))
    }
}

fn not_open(id: u64) -> ApiError {
    ApiError::NotFound(format!("no session {id} is open on this node"))
}
