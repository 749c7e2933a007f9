//! Wire types of Outpost's HTTP APIs and their validation. No I/O, not
//! async: servers parse into these, check them, and convert them to engine
//! types. A change to a type here is a compatibility event.
//!
//! ```
//! use outpost_protocol::openai::ChatCompletionRequest;
//! let req: ChatCompletionRequest = serde_json::from_str(
//!     r#"{"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}]}"#,
//! ).unwrap();
//! assert!(req.validate().is_ok());
//! ```

pub mod error;
pub mod ollama;
pub mod openai;

pub use error::{ApiErrorBody, ErrorDetail, ProtocolError};
