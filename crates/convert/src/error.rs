//! What can go wrong in a conversion, each with the file or value at fault
//! and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: cannot read: {io} (a checkpoint folder needs config.json, tokenizer.json and model.safetensors)")]
    Read { path: PathBuf, io: std::io::Error },
    #[error("{path}: not valid JSON: {problem}")]
    Json { path: PathBuf, problem: String },
    #[error("{path}: {problem}")]
    Safetensors { path: PathBuf, problem: String },
    #[error("{path}: `{key}` is missing or not {expected}")]
    Config {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
    #[error("{path}: architecture `{found}` is not supported; supported: {supported}")]
    Architecture {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("{path}: tokenizer model `{found}` is not supported for {arch} (expected {expected})")]
    Tokenizer {
        path: PathBuf,
        found: String,
        arch: &'static str,
        expected: &'static str,
    },
    #[error("{path}: vocabulary: {problem}")]
    Vocab { path: PathBuf, problem: String },
    #[error("tensor `{tensor}` is missing from the checkpoint (a {arch} model needs it)")]
    MissingTensor { tensor: String, arch: &'static str },
    #[error(
        "tensor `{tensor}` is not one the {arch} table knows; converting it would lose it silently"
    )]
    UnknownTensor { tensor: String, arch: &'static str },
    #[error("tensor `{tensor}` has dtype {dtype}; supported: F32, F16, BF16")]
    Dtype { tensor: String, dtype: String },
    #[error("tensor `{tensor}` has shape {shape:?} but {elements} elements")]
    Shape {
        tensor: String,
        shape: Vec<u64>,
        elements: u64,
    },
    #[error("tensor `{tensor}` has shape {shape:?}; config.json implies {expected:?}")]
    ShapeMismatch {
        tensor: String,
        shape: Vec<u64>,
        expected: Vec<u64>,
    },
    #[error("tensor `{tensor}` is written twice")]
    DuplicateTensor { tensor: String },
    #[error("output type `{0}` is not supported; use f32 or f16 (quantize further with `outpost variants build`)")]
    OutType(String),
    #[error("{path}: cannot write: {io}")]
    Write { path: PathBuf, io: std::io::Error },
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
