//! The request and result types of generation: what to generate from, how
//! to sample, what streams back, and why it ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::template::{ChatTemplate, Message};

/// Default context size when none is asked for: the training context, capped
/// so that a model trained on 128k tokens does not reserve gigabytes of KV
/// cache for a short chat.
pub const DEFAULT_MAX_CTX: u32 = 8192;

/// Sampling settings. `temperature == 0` means greedy decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: i32,
    /// 1.0 disables top-p.
    pub top_p: f32,
    /// 0.0 disables min-p.
    pub min_p: f32,
    /// 1.0 disables the repetition penalty.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: i32,
    /// Same seed, same settings, same prompt → same text. None picks one.
    pub seed: Option<u32>,
}

impl Default for SamplingParams {
    /// llama.cpp's defaults.
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: String, expected| {
            Err(EngineError::InvalidParam {
                name,
                value,
                expected,
            })
        };
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(
                "temperature",
                self.temperature.to_string(),
                "a number >= 0 (0 = greedy)",
            );
        }
        if self.top_k < 0 {
            return bad("top_k", self.top_k.to_string(), "an integer >= 0 (0 = off)");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(
                "top_p",
                self.top_p.to_string(),
                "a number in (0, 1] (1 = off)",
            );
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(
                "min_p",
                self.min_p.to_string(),
                "a number in [0, 1] (0 = off)",
            );
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad(
                "repeat_penalty",
                self.repeat_penalty.to_string(),
                "a number > 0 (1 = off)",
            );
        }
        if self.repeat_last_n < -1 {
            return bad(
                "repeat_last_n",
                self.repeat_last_n.to_string(),
                "an integer >= -1 (-1 = whole context)",
            );
        }
        Ok(())
    }
}

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Plain text completion (BOS added as the model's metadata says).
    Text(String),
    /// Chat messages, rendered with a chat template.
    Chat {
        messages: Vec<Message>,
        /// None: the model's own template.
        template: Option<Arc<ChatTemplate>>,
        /// OpenAI `tools[]` objects for templates that render tools
        /// themselves (empty: none).
        tools: Vec<crate::TemplateValue>,
    },
    /// Already tokenized.
    Tokens(Vec<i32>),
}

/// One generation request.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub sampling: SamplingParams,
    /// Stop after this many generated tokens (finish reason `length`).
    pub max_tokens: Option<u32>,
    /// Stop (before the match) when the text contains one of these.
    pub stop: Vec<String>,
    /// Context size; None = the training context capped at [`DEFAULT_MAX_CTX`].
    pub n_ctx: Option<u32>,
    /// CPU threads; None = all cores.
    pub threads: Option<u32>,
    /// Report the logprob of each chosen token and this many alternatives.
    pub top_logprobs: Option<usize>,
    /// Keep generating past end-of-generation tokens (benchmarks).
    pub ignore_eos: bool,
    /// Constrain the output to this GBNF grammar (rule `root`); see
    /// [`crate::json_schema_grammar`] for JSON schemas.
    pub grammar: Option<String>,
    /// Non-empty: the grammar is lazy, free text until one of these
    /// regular expressions (ECMAScript) matches the output, constrained
    /// from the match (or its first capture group) on.
    pub grammar_triggers: Vec<String>,
    /// Special (control) tokens written into the text when generated,
    /// which are otherwise left out: a tool-call opener such as Mistral's
    /// `[TOOL_CALLS]` must reach the parser.
    pub preserved_tokens: Vec<String>,
}

impl GenerateRequest {
    /// A request with default settings.
    pub fn new(prompt: Prompt) -> Self {
        GenerateRequest {
            prompt,
            sampling: SamplingParams::default(),
            max_tokens: None,
            stop: Vec::new(),
            n_ctx: None,
            threads: None,
            top_logprobs: None,
            ignore_eos: false,
            grammar: None,
            grammar_triggers: Vec::new(),
            preserved_tokens: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The context window is full (never shifted silently).
    ContextFull,
    /// Cancelled through a [`CancelToken`].
    Cancelled,
}

impl FinishReason {
    /// The OpenAI-style name: `stop` or `length` (context full counts as
    /// length; cancelled as stop).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::Cancelled => "stop",
            FinishReason::Length | FinishReason::ContextFull => "length",
        }
    }
}

/// A token id with its log-probability (natural log, from the raw logits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    pub token: i32,
    pub logprob: f32,
}

/// One streamed step.
#[derive(Debug, Clone)]
pub struct Piece {
    pub token: i32,
    /// Text that became final with this token (may be empty while UTF-8 or a
    /// possible stop sequence is held back).
    pub text: String,
    /// The chosen token's logprob, when asked for.
    pub logprob: Option<f32>,
    /// The most likely tokens at this step, best first, when asked for.
    pub top: Vec<TokenLogprob>,
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    /// Generated token ids (the end-of-generation token excluded).
    pub tokens: Vec<i32>,
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the prompt cache (not recomputed).
    pub cached_tokens: usize,
    pub finish_reason: FinishReason,
    /// The seed the sampler used.
    pub seed: u32,
    pub n_ctx: u32,
    pub prompt_ms: f64,
    pub generate_ms: f64,
}

/// Cancels a running generation from any thread.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the generation to stop at its next step.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
