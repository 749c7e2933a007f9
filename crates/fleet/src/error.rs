//! `FleetError`: every way a fleet operation fails, each with its HTTP
//! status and a stable code, answered as
//! `{"error": {"code": "...", "message": "..."}}`.

use std::path::Path;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use outpost_protocol::fleet::{FleetErrorBody, FleetErrorDetail};

use crate::db::error::DbError;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Malformed or invalid input; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// Valid input that the current state does not allow.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// Refused by name to this caller (a revoked device, an unentitled one).
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests of one kind from one caller; try again later.
    #[error("{0}")]
    TooManyRequests(String),
    /// A `Range` header that cannot be served; `length` is the blob's size.
    #[error("{message}")]
    BadRange { message: String, length: u64 },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] outpost_store::StoreError),
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The data folder or the configuration is unusable (at start).
    #[error("{0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl FleetError {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> FleetError {
        FleetError::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            FleetError::BadRequest(_) => StatusCode::BAD_REQUEST,
            FleetError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            FleetError::NotFound(_) => StatusCode::NOT_FOUND,
            FleetError::Conflict(_) => StatusCode::CONFLICT,
            FleetError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FleetError::Forbidden(_) => StatusCode::FORBIDDEN,
            FleetError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            FleetError::BadRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            FleetError::Store(
                outpost_store::StoreError::HashMismatch { .. }
                | outpost_store::StoreError::LengthMismatch { .. },
            ) => StatusCode::BAD_REQUEST,
            FleetError::Store(outpost_store::StoreError::OverBudget { .. }) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            FleetError::BadRequest(_) => "bad_request",
            FleetError::Unauthorized(_) => "unauthorized",
            FleetError::NotFound(_) => "not_found",
            FleetError::Conflict(_) => "conflict",
            FleetError::TooLarge(_) => "too_large",
            FleetError::Forbidden(_) => "forbidden",
            FleetError::TooManyRequests(_) => "too_many_requests",
            FleetError::BadRange { .. } => "range_not_satisfiable",
            FleetError::Store(
                outpost_store::StoreError::HashMismatch { .. }
                | outpost_store::StoreError::LengthMismatch { .. },
            ) => "digest_mismatch",
            FleetError::Store(outpost_store::StoreError::OverBudget { .. }) => "store_full",
            _ => "internal",
        }
    }
}

impl IntoResponse for FleetError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = FleetErrorBody {
            error: FleetErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
            },
        };
        // Inside the request's span, so the line carries its request id.
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), code = %body.error.code, "{}", body.error.message);
        } else {
            tracing::debug!(status = status.as_u16(), code = %body.error.code, "{}", body.error.message);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let FleetError::BadRange { length, .. } = self {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub type FleetResult<T> = Result<T, FleetError>;
