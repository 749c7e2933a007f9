//! Local inference over llama.cpp: load a GGUF, describe it, render its chat
//! template, sample, stream, cancel.
//!
//! This crate knows nothing of HTTP, JSON wire types, the artifact store or
//! the fleet; servers and tools convert their types to these.
//!
//! ```no_run
//! use outpost_engine::{CancelToken, GenerateRequest, LoadOptions, Model, Prompt, SamplingParams};
//! let model = Model::load("models/smollm2-135m.gguf".as_ref(), &LoadOptions::default())?;
//! let mut req = GenerateRequest::new(Prompt::Text("The capital of France is".into()));
//! req.sampling = SamplingParams::greedy();
//! req.max_tokens = Some(8);
//! let done = model.generate(&req, &CancelToken::new(), |piece| print!("{}", piece.text))?;
//! println!("\n[{}]", done.finish_reason.as_str());
//! # Ok::<(), outpost_engine::EngineError>(())
//! ```

mod bench;
mod draft;
mod embed;
mod error;
mod evaluate;
mod generate;
pub mod gguf;
mod grammar;
mod logs;
mod memory;
mod model;
mod quantize;
mod request;
mod scheduler;
mod sequence;
mod step_cost;
mod stream;
mod system;
mod template;
mod template_json;

pub use bench::{
    bench_parallel, bench_parallel_bound, parallel_bench_prompt, BenchParams, BenchResult,
    BenchStat, DecodeBound, ParallelStat,
};
pub use draft::MAX_DRAFT;
pub use embed::{cosine, EmbedConfig, EmbedStats, Embedder};
pub use error::{EngineError, Result};
pub use evaluate::ChunkEval;
pub use generate::default_threads;
pub use grammar::json_schema_grammar;
pub use logs::quantize_progress;
pub use memory::{estimate_memory, MemoryEstimate};
/// Values handed to chat templates (tool calls' arguments, `tools`):
/// `TemplateValue::from_serialize(&json)`.
pub use minijinja::Value as TemplateValue;
pub use model::{EmbeddingInfo, LoadOptions, Model, ModelInfo, SpecialToken};
pub use quantize::{quant_ftype, quantize, QUANT_TIERS};
pub use request::{
    CancelToken, Completion, FinishReason, GenerateRequest, Piece, Prompt, SamplingParams,
    TokenLogprob, DEFAULT_MAX_CTX,
};
pub use scheduler::{Event, RequestHandle, Scheduler, SchedulerConfig, SchedulerStats};
pub use system::{build_info, BuildInfo};
pub use template::{builtin_names, ChatTemplate, Message, MessageCall, BUILTIN_TEMPLATES};
