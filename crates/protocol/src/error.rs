//! OpenAI's error shape, and what was wrong with a request.

use serde::{Deserialize, Serialize};

/// `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ApiErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// A request that cannot be served as sent: which parameter, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid value for '{param}': {message}")]
    Invalid { param: String, message: String },
    #[error("'{param}' is not supported by Outpost: {message}")]
    Unsupported { param: String, message: String },
}

impl ProtocolError {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ProtocolError::Invalid {
            param: param.to_string(),
            message: message.into(),
        }
    }
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        ProtocolError::Unsupported {
            param: param.to_string(),
            message: message.into(),
        }
    }
    /// The parameter at fault.
    pub fn param(&self) -> &str {
        match self {
            ProtocolError::Invalid { param, .. } | ProtocolError::Unsupported { param, .. } => {
                param
            }
        }
    }
    /// As OpenAI's error body (HTTP 400).
    pub fn body(&self) -> ApiErrorBody {
        ApiErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: "invalid_request_error".into(),
                param: Some(self.param().to_string()),
                code: Some(
                    match self {
                        ProtocolError::Invalid { .. } => "invalid_value",
                        ProtocolError::Unsupported { .. } => "unsupported_parameter",
                    }
                    .into(),
                ),
            },
        }
    }
}
