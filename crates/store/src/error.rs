//! `StoreError`: what went wrong in the store, with the digest, path or
//! sizes involved and what to do about it.

use std::io;
use std::path::PathBuf;

use outpost_protocol::{Digest, ModelName, VerifyError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("data expected to be {expected} hashes to {actual} ({bytes} bytes); it was deleted and not stored: download it again")]
    HashMismatch {
        expected: Digest,
        actual: Digest,
        bytes: u64,
    },
    /// `blob` is the digest, or "the blob being written" when none was given.
    #[error("{blob} must be {expected} bytes but {actual} arrived; {what}")]
    LengthMismatch {
        blob: String,
        expected: u64,
        actual: u64,
        what: &'static str,
    },
    #[error("storing {needed} more bytes{for_what} would use {would_use} bytes of the {budget}-byte disk budget ({used} already used): free space with gc or raise the budget")]
    OverBudget {
        for_what: String,
        needed: u64,
        used: u64,
        would_use: u64,
        budget: u64,
    },
    #[error("{digest} is not in the store ({path}): download it first")]
    Missing { digest: Digest, path: PathBuf },
    #[error("stored blob {digest} is corrupt: its bytes hash to {actual}; download it again (a finished download replaces it)")]
    Corrupt { digest: Digest, actual: Digest },
    #[error("{model} has no previous version to roll back to")]
    NoPrevious { model: ModelName },
    #[error("{path} is damaged ({problem}); nothing was changed: repair or remove it by hand")]
    Damaged { path: PathBuf, problem: String },
    #[error(transparent)]
    Manifest(#[from] VerifyError),
    #[error("sealed blob {path} could not be opened: {source}")]
    Sealed {
        path: PathBuf,
        #[source]
        source: outpost_seal::SealError,
    },
    #[error("sealed blob {path} opened to plaintext {actual}, but its manifest says {expected}: not the model it was published as")]
    PlaintextMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches the action and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, io::Error> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
