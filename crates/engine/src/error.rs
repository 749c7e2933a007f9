//! The engine's one error type: every message names what was wrong, with
//! which value, and what to do about it.

use std::path::PathBuf;

/// Everything the engine can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file does not exist or cannot be read.
    #[error("cannot open model file {path}: {source}. Check the path, or fetch the test models with scripts/fetch-models.sh")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a valid GGUF.
    #[error("{path} is not a usable GGUF model: {problem}")]
    BadGguf { path: PathBuf, problem: String },
    /// The GGUF is well-formed but llama.cpp refused it (e.g. unknown architecture).
    #[error("llama.cpp could not load {path}: {problem}")]
    Load { path: PathBuf, problem: String },
    /// A model short name that is not known.
    #[error("unknown model {name:?}: give a path to a .gguf file or one of the fetched models ({known})")]
    UnknownModel { name: String, known: String },
    /// The model has no chat template and none was given.
    #[error("model {model} has no chat template, so chat messages cannot be turned into a prompt. Use a raw completion (--raw), or give a template with --chat-template NAME|FILE (built-in names: {builtins})")]
    NoChatTemplate { model: String, builtins: String },
    /// A chat template failed to parse or render.
    #[error("chat template {name}: {problem}")]
    Template { name: String, problem: String },
    /// The prompt does not fit in the context window.
    #[error("prompt is {prompt_tokens} tokens but the context holds {n_ctx} (and {reserve} more are needed to generate at least one token). Shorten the prompt or raise the context size (--ctx-size, at most the model's training context {n_ctx_train})")]
    ContextOverflow {
        prompt_tokens: usize,
        n_ctx: u32,
        reserve: usize,
        n_ctx_train: u32,
    },
    /// A request parameter is out of range.
    #[error("invalid {name} = {value}: {expected}")]
    InvalidParam {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    /// The prompt was empty after templating/tokenization.
    #[error("the prompt is empty: give at least one token of input")]
    EmptyPrompt,
    /// An embedding input is longer than the model's context.
    #[error("an input is {tokens} tokens but this embedding model takes at most {max}. Split the text, or ask for truncation (OpenAI: split it yourself; Ollama: \"truncate\": true)")]
    InputTooLong { tokens: usize, max: usize },
    /// Embeddings asked of a model that generates.
    #[error("model {model} generates text; it has no pooling, so it does not serve embeddings. Use an embedding model (for example one made by `outpost convert`)")]
    NotEmbedding { model: String },
    /// Generation asked of an embedding model.
    #[error("model {model} is an embedding model; it does not generate text. Use /v1/embeddings or /api/embed with it")]
    NotGenerative { model: String },
    /// llama.cpp failed while creating a context or decoding.
    #[error("llama.cpp failed while {during}: {problem}")]
    Backend {
        during: &'static str,
        problem: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
