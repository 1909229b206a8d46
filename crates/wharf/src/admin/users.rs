//! Users through the API: read, create or replace, change some keys (disable), delete. A
//! user is its users-file entry as JSON; answers leave out the password hash.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorBody};
use super::{ApiState, Control};
use crate::http_listener::{Encrypted, Peer};
use crate::user_store::{Applied, UserChange, UserStore, UserStoreError};
use wharf_access::QuotaReading;

/// A user: its users-file entry as a JSON object (the keys of `access.users` in
/// config/wharf.example.yaml); answers leave out `password` and say `has_password`.
#[derive(utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct UserDefinition(pub Value);

/// The key of a request body that carries a password in the clear, hashed by the server
/// (argon2id) into `password` before anything is stored.
const PLAINTEXT_KEY: &str = "password_plaintext";

impl From<UserStoreError> for ApiError {
    fn from(err: UserStoreError) -> Self {
        match err {
            UserStoreError::NotFound(_) => ApiError::NotFound(err.to_string()),
            UserStoreError::Invalid(_) => ApiError::BadRequest(err.to_string()),
            UserStoreError::Inline => ApiError::Conflict(err.to_string()),
            UserStoreError::ReloadFailed(reason) => ApiError::ReloadFailed(reason),
            UserStoreError::Io { .. } | UserStoreError::Database(_) => {
                ApiError::Storage(err.to_string())
            }
        }
    }
}

/// What answers show of a user: the definition without its hash, and whether it has one.
fn view(mut definition: Value) -> Value {
    if let Value::Object(entry) = &mut definition {
        let has_password = entry.remove("password").is_some_and(|p| !p.is_null());
        entry.insert("has_password".to_owned(), Value::Bool(has_password));
    }
    definition
}

/// Hashes a plaintext password of `body` into its `password`. A password crosses the
/// network only encrypted: over the API's TLS, or not at all (from this host).
async fn hash_plaintext(
    state: &ApiState,
    (peer, encrypted): (Peer, Encrypted),
    body: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let Some(plaintext) = body.remove(PLAINTEXT_KEY) else { return Ok(()) };
    if !encrypted.0 && !peer.0.ip().is_loopback() {
        return Err(ApiError::BadRequest(format!(
            "`{PLAINTEXT_KEY}` is taken in the clear only over TLS (`admin.tls`) or from this \
             host: send a hash as `password` (wharf hash-password) instead"
        )));
    }
    let Value::String(plaintext) = plaintext else {
        return Err(ApiError::BadRequest(format!("`{PLAINTEXT_KEY}` must be a string")));
    };
    if plaintext.is_empty() {
        return Err(ApiError::BadRequest(format!("`{PLAINTEXT_KEY}` is empty")));
    }
    // argon2id costs ~19 MiB and tens of milliseconds: a bounded number at once, off the
    // async workers.
    let _permit = state.hashing.acquire().await.map_err(|_| ApiError::Unavailable)?;
    let hash = tokio::task::spawn_blocking(move || {
        wharf_access::hash_password(&wharf_access::Password::new(plaintext))
    })
    .await
    .map_err(|_| ApiError::Unavailable)?
    .map_err(|err| ApiError::BadRequest(format!("the password could not be hashed: {err}")))?;
    body.insert("password".to_owned(), Value::String(hash));
    Ok(())
}

/// Whether a change also ends the user's open sessions.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndSessions {
    /// End the user's open sessions too, on every node (a disabled or removed user's
    /// sessions otherwise go on until they end).
    #[serde(default)]
    pub kill_sessions: bool,
}

impl EndSessions {
    fn of(query: Result<Query<EndSessions>, QueryRejection>) -> Result<EndSessions, ApiError> {
        query.map(|Query(asked)| asked).map_err(|err| ApiError::BadRequest(err.body_text()))
    }

    /// Ends `user`'s sessions if asked: on this node at once, and through the database on
    /// every node of a cluster.
    async fn apply(&self, state: &ApiState, user: &str) -> Result<(), ApiError> {
        if !self.kill_sessions {
            return Ok(());
        }
        let ended = state.gateway.authenticator.live_sessions().kill_user(user);
        tracing::warn!(%user, ended, "sessions ended by an operator");
        if let UserStore::Database(database) = &state.users {
            database
                .end_sessions_of(user)
                .await
                .map_err(|err| ApiError::Storage(err.to_string()))?;
        }
        Ok(())
    }
}

/// Hands `change` to the server's loop and waits for what it did.
async fn change(state: &ApiState, change: UserChange) -> Result<(Applied, Value), ApiError> {
    Ok(state.ask(|reply| Control::Users(change, reply)).await??)
}

/// The request's JSON object, its plaintext password (if any) replaced by a hash.
async fn prepared(
    state: &ApiState,
    connection: (Peer, Encrypted),
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(mut map) = body?.0 else {
        return Err(ApiError::BadRequest("the body must be a JSON object".to_owned()));
    };
    hash_plaintext(state, connection, &mut map).await?;
    Ok(map)
}

/// Every user, ordered by name.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("token" = [])), responses(
    (status = 200, description = "the users (users-file entries, without password hashes)", body = [UserDefinition]),
    (status = 401, description = "no valid token", body = ErrorBody),
    (status = 409, description = "the users are inline in the configuration", body = ErrorBody),
))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(state.users.definitions().await?.into_iter().map(view).collect()))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users", security(("token" = [])),
    params(("name" = String, Path, description = "the login name")),
    responses(
        (status = 200, description = "the user (its users-file entry, without the password hash)", body = UserDefinition),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let found = state.users.definitions().await?.into_iter().find(|u| u["name"] == name.as_str());
    found
        .map(|user| Json(view(user)))
        .ok_or_else(|| ApiError::NotFound(format!("no user named {name:?}")))
}

/// Creates or replaces a user: the body is its whole users-file entry as JSON (`password` a
/// hash, or `password_plaintext` from this host). Applied at once (a reload of the users
/// file, or on every node through the database).
#[utoipa::path(put, path = "/api/v1/users/{name}", tag = "users", security(("token" = [])),
    params(("name" = String, Path, description = "the login name")),
    request_body(content = UserDefinition, description = "the users-file entry, e.g. {\"home\": \"partners/acme\", \"password_plaintext\": \"...\"}"),
    responses(
        (status = 201, description = "created", body = UserDefinition),
        (status = 200, description = "replaced", body = UserDefinition),
        (status = 400, description = "not a valid user", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 409, description = "the users are inline in the configuration", body = ErrorBody),
        (status = 422, description = "saved, but the reload applying it failed", body = ErrorBody),
    ))]
pub async fn put(
    State(state): State<ApiState>,
    Extension(peer): Extension<Peer>,
    Extension(encrypted): Extension<Encrypted>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let definition = prepared(&state, (peer, encrypted), body).await?;
    let (applied, user) = change(&state, UserChange::Put { name, definition }).await?;
    let status = if applied == Applied::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view(user))))
}

/// Changes some keys of a user's entry (`null` removes a key): `{"disabled": true}` disables
/// it, `{"password_plaintext": "..."}` sets its password; `?kill_sessions=true` also ends its
/// open sessions.
#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "users", security(("token" = [])),
    params(("name" = String, Path, description = "the login name"), EndSessions),
    request_body(content = UserDefinition, description = "the keys to change, e.g. {\"disabled\": true}"),
    responses(
        (status = 200, description = "changed", body = UserDefinition),
        (status = 400, description = "not a valid user after the change", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 409, description = "the users are inline in the configuration", body = ErrorBody),
        (status = 422, description = "saved, but the reload applying it failed", body = ErrorBody),
    ))]
pub async fn patch(
    State(state): State<ApiState>,
    Extension(peer): Extension<Peer>,
    Extension(encrypted): Extension<Encrypted>,
    Path(name): Path<String>,
    query: Result<Query<EndSessions>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let end_sessions = EndSessions::of(query)?;
    let changes = prepared(&state, (peer, encrypted), body).await?;
    let (_, user) = change(&state, UserChange::Patch { name: name.clone(), changes }).await?;
    end_sessions.apply(&state, &name).await?;
    Ok(Json(view(user)))
}

/// Removes a user: it cannot log in any more; its open sessions finish, or end at once with
/// `?kill_sessions=true`.
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users", security(("token" = [])),
    params(("name" = String, Path, description = "the login name"), EndSessions),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 409, description = "the users are inline in the configuration", body = ErrorBody),
        (status = 422, description = "saved, but the reload applying it failed", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<EndSessions>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let end_sessions = EndSessions::of(query)?;
    change(&state, UserChange::Delete { name: name.clone() }).await?;
    end_sessions.apply(&state, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's quota and what its home uses.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuotaView {
    /// Whether the user has a quota; its usage is kept only then.
    pub limited: bool,
    /// The most bytes the home may hold.
    pub bytes_limit: Option<u64>,
    /// The most files the home may hold.
    pub files_limit: Option<u64>,
    /// Bytes the home holds (uploads in progress not counted).
    pub used_bytes: Option<u64>,
    /// Files the home holds.
    pub used_files: Option<u64>,
}

async fn read_quota(
    state: &ApiState,
    name: &str,
    measure_again: bool,
) -> Result<Json<QuotaView>, ApiError> {
    let reading = state
        .gateway
        .authenticator
        .quota_of(name, measure_again)
        .await
        .map_err(|err| ApiError::Storage(format!("measuring {name:?}'s home: {err}")))?;
    let view = match reading {
        QuotaReading::NoSuchUser => {
            return Err(ApiError::NotFound(format!("no user named {name:?}")));
        }
        QuotaReading::Unlimited => QuotaView {
            limited: false,
            bytes_limit: None,
            files_limit: None,
            used_bytes: None,
            used_files: None,
        },
        QuotaReading::Limited { limits, used_bytes, used_files } => QuotaView {
            limited: true,
            bytes_limit: limits.bytes.map(|bytes| bytes.0),
            files_limit: limits.files,
            used_bytes: Some(used_bytes),
            used_files: Some(used_files),
        },
    };
    Ok(Json(view))
}

/// A user's quota and its home's usage (measured first if no session has since the start).
#[utoipa::path(get, path = "/api/v1/users/{name}/quota", tag = "users", security(("token" = [])),
    params(("name" = String, Path, description = "the login name")),
    responses(
        (status = 200, description = "the quota and the usage", body = QuotaView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 503, description = "the home could not be measured", body = ErrorBody),
    ))]
pub async fn quota(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<QuotaView>, ApiError> {
    read_quota(&state, &name, false).await
}

/// Measures a user's home again (after files changed behind the server's back) and answers
/// the quota and the new usage; uploads in progress keep their reservations.
#[utoipa::path(post, path = "/api/v1/users/{name}/quota/reset", tag = "users", security(("token" = [])),
    params(("name" = String, Path, description = "the login name")),
    responses(
        (status = 200, description = "measured again", body = QuotaView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 503, description = "the home could not be measured", body = ErrorBody),
    ))]
pub async fn reset_quota(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<QuotaView>, ApiError> {
    read_quota(&state, &name, true).await
}
