//! Wire types of Outpost's HTTP APIs and their validation. No I/O, not
//! async: servers parse into these, check them, and convert them to engine
//! types. A change to a type here is a compatibility event.
//!
//! Besides the OpenAI bodies: [`Digest`] (the only way to name a blob),
//! the signed model [`Manifest`], and its Ed25519 verification
//! ([`signing::verify`]), which is pure and so lives here.
//!
//! ```
//! use outpost_protocol::openai::ChatCompletionRequest;
//! let req: ChatCompletionRequest = serde_json::from_str(
//!     r#"{"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}]}"#,
//! ).unwrap();
//! assert!(req.validate().is_ok());
//!
//! use outpost_protocol::Digest;
//! assert!(Digest::parse("sha256:../../etc/passwd").is_err());
//! ```

pub mod digest;
pub mod embeddings;
pub mod error;
pub mod feedback;
pub mod fleet;
mod keep_alive;
pub mod manifest;
pub mod ollama;
pub mod openai;
pub mod retrieval;
mod schema;
pub mod signing;
pub mod telemetry;
pub mod time;
pub mod tool_native;
pub mod tool_stream;
pub mod tools;
pub mod variants;

pub use digest::{Digest, DigestError};
pub use error::{ApiErrorBody, ErrorDetail, ProtocolError};
pub use manifest::{Encryption, Manifest, ManifestError, ModelName, SealScheme};
pub use signing::{Accepted, Keyring, SignedManifest, Verified, VerifyError};
pub use time::Timestamp;
