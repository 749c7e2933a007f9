//! The variant pipeline: one GGUF checkpoint in, N quantization tiers out,
//! each measured against the source on the same text (llama-perplexity's
//! method: perplexity, KL divergence, same-top-token %, RMS Δp), with its
//! cost on this host, canary fingerprints, and a recommended tier per
//! device class. Offline only.
//!
//! Output folder: the tier files, `variants.json`
//! ([`outpost_protocol::variants::VariantsFile`]), `report.md` and
//! `quality-vs-size.svg`.

pub mod chart;
pub mod cost;
pub mod devices;
pub mod embedding;
pub mod fingerprint;
pub mod pipeline;
pub mod quality;
pub mod report;
pub mod tiers;

use std::path::{Path, PathBuf};

pub use pipeline::{build, BuildOptions, Step};

/// Everything that can go wrong, with the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum VariantsError {
    #[error(transparent)]
    Engine(#[from] outpost_engine::EngineError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown tier {name:?}; valid tiers: {valid}")]
    UnknownTier { name: String, valid: String },
    #[error("the evaluation text is too short: {tokens} tokens, and {chunks} chunks of {n_ctx} need {needed}; give a longer text, or fewer --chunks or a smaller --ctx")]
    TextTooShort {
        tokens: usize,
        needed: usize,
        chunks: usize,
        n_ctx: u32,
    },
    #[error("{0}")]
    Other(String),
}

impl VariantsError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        VariantsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
