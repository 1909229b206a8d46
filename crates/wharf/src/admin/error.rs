//! The API's errors: one JSON shape, `{"code": ..., "message": ...}`, with a stable code a
//! script can test and an HTTP status that goes with it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `bad_request`, `conflict`,
    /// `reload_failed`, `unavailable`, `storage_failed`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or not a token of this server.
    #[error("a valid API token is needed (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The token's scope does not allow the call.
    #[error("this token may only read")]
    Forbidden,
    /// Nothing at that path, or no such thing.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request cannot be done in the server's present state.
    #[error("{0}")]
    Conflict(String),
    /// A reload was refused; the previous configuration stays.
    #[error("reload failed; the previous configuration stays: {0}")]
    ReloadFailed(String),
    /// The server is stopping.
    #[error("the server is stopping")]
    Unavailable,
    /// Where users are kept could not be used (the users file, the database).
    #[error("{0}")]
    Storage(String),
}

impl ApiError {
    /// The stable code and the HTTP status.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::Forbidden => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST),
            ApiError::Conflict(_) => ("conflict", StatusCode::CONFLICT),
            ApiError::ReloadFailed(_) => ("reload_failed", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Storage(_) => ("storage_failed", StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let mut response =
            (status, Json(ErrorBody { code: code.to_owned(), message: self.to_string() }))
                .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// axum's own refusals (a body that is not the JSON asked for, a path parameter that does not
/// parse) in the same shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}
