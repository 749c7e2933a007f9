//! `AgentError`: what went wrong in the agent, with the value involved and
//! what to do about it.

use outpost_protocol::{Digest, ModelName};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A setting or profile value that cannot be used.
    #[error("{what}: {problem}")]
    Config { what: String, problem: String },
    /// The fleet could not be reached (offline, refused, timed out).
    #[error("the fleet at {url} could not be reached: {problem}; the agent keeps the installed models and retries")]
    Offline { url: String, problem: String },
    /// The fleet answered with an error status.
    #[error("the fleet answered {status} to {what}: {message}")]
    Fleet {
        what: String,
        status: u16,
        message: String,
    },
    /// The device token was refused: the device was removed at the fleet.
    #[error(
        "the fleet refused this device's token ({message}); remove {identity} to register again"
    )]
    Unauthorized { message: String, identity: String },
    /// A download brought other bytes than the manifest promised.
    #[error("download of {digest} for {model}: {problem}; the current model stays installed")]
    Download {
        model: ModelName,
        digest: Digest,
        problem: String,
    },
    #[error(transparent)]
    Store(#[from] outpost_store::StoreError),
    #[error(transparent)]
    Spool(#[from] outpost_store::spool::SpoolError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// Whether trying again later may help (network trouble, a busy fleet).
    pub fn is_transient(&self) -> bool {
        match self {
            AgentError::Offline { .. } => true,
            AgentError::Fleet { status, .. } => *status >= 500 || *status == 429,
            AgentError::Download { .. } => true,
            _ => false,
        }
    }
}
