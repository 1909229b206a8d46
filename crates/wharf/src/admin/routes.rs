//! The API's calls, one handler each, each described for the OpenAPI document.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::user_store::UserStore;

/// The server's version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Version {
    /// Wharf's version.
    pub version: String,
}

/// A ban in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BanView {
    /// The banned address.
    pub address: String,
    /// When the ban ends (RFC 3339, UTC).
    pub until: String,
    /// The score that brought it.
    pub score: u32,
}

/// A ban to make.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewBan {
    /// The address to ban.
    pub address: String,
    /// For how long, in seconds (the defender's `ban_time` when absent).
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

/// What a reload did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reloaded {
    /// What the server said.
    pub message: String,
}

/// The longest ban the API makes (a year); a longer one is a deny-list entry.
const LONGEST_BAN: Duration = Duration::from_secs(366 * 24 * 3600);

/// `time` in RFC 3339 (UTC), as every time the API answers.
pub(super) fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time).format(&Rfc3339).unwrap_or_default()
}

fn view(ban: &wharf_access::Ban) -> BanView {
    let until = rfc3339(UNIX_EPOCH + Duration::from_secs(ban.until_unix));
    BanView { address: ban.address.to_string(), until, score: ban.score }
}

fn address(text: &str) -> Result<IpAddr, ApiError> {
    text.parse().map_err(|_| ApiError::BadRequest(format!("{text:?} is not an IP address")))
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi_json())
}

/// The server's version.
#[utoipa::path(get, path = "/api/v1/version", tag = "meta", security(("token" = [])), responses(
    (status = 200, description = "the version", body = Version),
    (status = 401, description = "no valid token", body = ErrorBody),
))]
pub async fn version() -> Json<Version> {
    Json(Version { version: env!("CARGO_PKG_VERSION").to_owned() })
}

/// The bans in force, the soonest to end first.
#[utoipa::path(get, path = "/api/v1/bans", tag = "bans", security(("token" = [])), responses(
    (status = 200, description = "the bans", body = [BanView]),
    (status = 401, description = "no valid token", body = ErrorBody),
))]
pub async fn list_bans(State(state): State<ApiState>) -> Json<Vec<BanView>> {
    Json(state.gateway.defender().bans().iter().map(view).collect())
}

/// Bans an address on every protocol (and, in a cluster, on every node).
#[utoipa::path(post, path = "/api/v1/bans", tag = "bans", security(("token" = [])), request_body = NewBan, responses(
    (status = 201, description = "banned", body = BanView),
    (status = 400, description = "not an address, or too long", body = ErrorBody),
    (status = 401, description = "no valid token", body = ErrorBody),
    (status = 403, description = "a read-only token", body = ErrorBody),
))]
pub async fn add_ban(
    State(state): State<ApiState>,
    body: Result<Json<NewBan>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<BanView>), ApiError> {
    let Json(new) = body?;
    let address = address(&new.address)?;
    let defender = state.gateway.defender();
    let ban_time = new.duration_secs.map_or(defender.settings().ban_time, Duration::from_secs);
    if ban_time.is_zero() || ban_time > LONGEST_BAN {
        return Err(ApiError::BadRequest(
            "duration_secs: from 1 s to a year (use defender.deny for longer)".to_owned(),
        ));
    }
    let ban = defender.ban_by_hand(address, ban_time);
    Ok((StatusCode::CREATED, Json(view(&ban))))
}

/// Lifts the ban of an address and forgets its score (on every node, in a cluster).
#[utoipa::path(delete, path = "/api/v1/bans/{address}", tag = "bans", security(("token" = [])),
    params(("address" = String, Path, description = "the banned address")),
    responses(
        (status = 204, description = "lifted"),
        (status = 400, description = "not an address", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "not banned", body = ErrorBody),
        (status = 503, description = "the cluster's database cannot be reached", body = ErrorBody),
    ))]
pub async fn lift_ban(
    State(state): State<ApiState>,
    Path(text): Path<String>,
) -> Result<StatusCode, ApiError> {
    let address = address(&text)?;
    let lifted_here = state.gateway.defender().lift(address);
    // In a cluster the ban is lifted in the database, and every node is told to forget it.
    let lifted_shared = match &state.users {
        UserStore::Database(database) => {
            database.lift_ban(address).await.map_err(|err| ApiError::Storage(err.to_string()))?
        }
        UserStore::File(_) | UserStore::Inline => false,
    };
    if lifted_here || lifted_shared {
        tracing::warn!(%address, "ban lifted by an operator");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("{address} is not banned")))
    }
}

/// Reloads the configuration, as SIGHUP does (users, rules, defender settings, the FTPS
/// certificate, the API tokens): all or nothing.
#[utoipa::path(post, path = "/api/v1/reload", tag = "server", security(("token" = [])), responses(
    (status = 200, description = "reloaded", body = Reloaded),
    (status = 401, description = "no valid token", body = ErrorBody),
    (status = 403, description = "a read-only token", body = ErrorBody),
    (status = 422, description = "refused; the previous configuration stays", body = ErrorBody),
    (status = 503, description = "the server is stopping", body = ErrorBody),
))]
pub async fn reload(State(state): State<ApiState>) -> Result<Json<Reloaded>, ApiError> {
    match state.ask(super::Control::Reload).await? {
        Ok(message) => Ok(Json(Reloaded { message })),
        Err(reason) => Err(ApiError::ReloadFailed(reason)),
    }
}
