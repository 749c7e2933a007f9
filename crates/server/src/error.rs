//! The server's errors: `ServerError` for what fails outside a request
//! (inspecting, loading and reloading models), and `ApiError`, every
//! failure of a request as OpenAI's error body with the right status;
//! `OpenAiErrors` / `OllamaErrors` describe those answers in the OpenAPI
//! document.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use outpost_engine::EngineError;
use outpost_protocol::{ApiErrorBody, ErrorDetail, ProtocolError};

/// Inspecting a model file, loading it, or reading a device store.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] outpost_store::StoreError),
    #[error(transparent)]
    Spool(#[from] outpost_store::spool::SpoolError),
    #[error("{} has no general.architecture key: it is not a model llama.cpp can load", path.display())]
    NoArchitecture { path: PathBuf },
    #[error(
        "--ctx-size {n} does not suit {name}: give between 16 and its training context, {train}"
    )]
    CtxSize { n: u32, name: String, train: u32 },
    // The causes are in the messages (not `#[source]`s), so that anyhow's
    // `{:#}` at the binary's edge does not print them twice.
    #[error("hashing {}: {io}", path.display())]
    Hash { path: PathBuf, io: std::io::Error },
    #[error("{model}: {inner}")]
    InStore {
        model: String,
        inner: Box<ServerError>,
    },
    #[error("{model}: the active blob {pointer} hashes to {actual}: the store is damaged; the agent re-downloads it")]
    Damaged {
        model: String,
        pointer: String,
        actual: String,
    },
    #[error("{model}: its active blob is sealed and could not be opened: {problem}; the agent installs it again (check `outpost agent` ran with the same --device-key-store)")]
    Sealed { model: String, problem: String },
    #[error("this server was not started with --store; there is nothing to reload")]
    NoStore,
    #[error("the reload stopped before it finished: {0}")]
    Interrupted(String),
}

/// An HTTP error in OpenAI's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ApiErrorBody,
    /// Seconds for a `Retry-After` header (503s).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &str,
        code: &str,
        param: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            body: ApiErrorBody {
                error: ErrorDetail {
                    message: message.into(),
                    kind: kind.into(),
                    param: param.map(str::to_string),
                    code: Some(code.into()),
                },
            },
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Says which input of a request the error is about.
    pub fn at_input(mut self, index: usize) -> Self {
        self.body.error.message = format!("input {index}: {}", self.body.error.message);
        self
    }

    /// A failure on the server's side while `during`.
    pub fn internal(during: &str, problem: String) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal",
            None,
            format!("{during}: {problem}"),
        )
    }

    /// As Ollama's error shape, `{"error": "..."}`, same status and headers.
    pub fn into_ollama(self) -> Response {
        let body = outpost_protocol::ollama::ErrorResponse {
            error: self.body.error.message,
        };
        with_retry_after((self.status, Json(body)).into_response(), self.retry_after)
    }

    pub fn bad_request(param: Option<&str>, code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            param,
            message,
        )
    }

    /// A body that is not JSON, or JSON of the wrong shape.
    pub fn from_json(e: &serde_json::Error) -> Self {
        let msg = e.to_string();
        let param = outpost_protocol::openai::field_of_serde_error(&msg);
        let code = if e.is_syntax() || e.is_eof() {
            "invalid_json"
        } else {
            "invalid_value"
        };
        Self::bad_request(
            param.as_deref(),
            code,
            format!("the request body is not valid: {msg}"),
        )
    }

    pub fn unknown_model(name: &str, known: &[String]) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            Some("model"),
            format!(
                "model {name:?} is not served here; served models: {}",
                known.join(", ")
            ),
        )
    }
}

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: e.body(),
            retry_after: None,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::ContextOverflow { .. } => {
                Self::bad_request(Some("messages"), "context_length_exceeded", e.to_string())
            }
            EngineError::InvalidParam { name, .. } => {
                Self::bad_request(Some(name), "invalid_value", e.to_string())
            }
            EngineError::EmptyPrompt => {
                Self::bad_request(Some("messages"), "invalid_value", e.to_string())
            }
            EngineError::InputTooLong { .. } => {
                Self::bad_request(Some("input"), "context_length_exceeded", e.to_string())
            }
            EngineError::NotGenerative { .. } => {
                Self::bad_request(Some("model"), "model_not_generative", e.to_string())
            }
            EngineError::NotEmbedding { .. } => {
                Self::bad_request(Some("model"), "model_not_embedding", e.to_string())
            }
            EngineError::NoChatTemplate { .. } | EngineError::Template { .. } => {
                Self::bad_request(Some("messages"), "chat_template", e.to_string())
            }
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "engine_error",
                None,
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Inside the request's span, so the line carries its request id.
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = ?self.body.error.code, "{}", self.body.error.message);
        } else {
            tracing::debug!(status = self.status.as_u16(), code = ?self.body.error.code, "{}", self.body.error.message);
        }
        with_retry_after(
            (self.status, Json(self.body)).into_response(),
            self.retry_after,
        )
    }
}

fn with_retry_after(mut res: Response, secs: Option<u64>) -> Response {
    if let Some(secs) = secs {
        res.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    res
}

/// The errors a generation route of the OpenAI API answers.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum OpenAiErrors {
    /// A field is missing, malformed, out of range or not implemented (named in `param`)
    #[response(status = 400)]
    BadRequest(ApiErrorBody),
    /// No served model has that name
    #[response(status = 404)]
    NotFound(ApiErrorBody),
    /// The model's queue is full, or busy models hold the memory (see Retry-After)
    #[response(status = 503)]
    Busy(ApiErrorBody),
    /// The model alone is larger than the memory budget
    #[response(status = 507)]
    TooBig(ApiErrorBody),
}

/// The same for the Ollama API, in Ollama's error shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum OllamaErrors {
    /// A field is missing, malformed, out of range or not implemented
    #[response(status = 400)]
    BadRequest(outpost_protocol::ollama::ErrorResponse),
    /// No served model has that name
    #[response(status = 404)]
    NotFound(outpost_protocol::ollama::ErrorResponse),
    /// The model's queue is full, or busy models hold the memory (see Retry-After)
    #[response(status = 503)]
    Busy(outpost_protocol::ollama::ErrorResponse),
    /// The model alone is larger than the memory budget
    #[response(status = 507)]
    TooBig(outpost_protocol::ollama::ErrorResponse),
}
