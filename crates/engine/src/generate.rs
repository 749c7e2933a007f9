//! Single-sequence generation: prompt in, streamed pieces out.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use crate::error::{EngineError, Result};
use crate::model::{backend, Model};
use crate::stream::TextAssembler;
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

/// Threads to use when none are asked for.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(4, |n| n.get() as u32)
}

impl Model {
    /// Resolves a prompt to tokens (chat messages through the template).
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<i32>> {
        let tokens = match prompt {
            Prompt::Text(t) => self.tokenize(t, true),
            Prompt::Chat { messages, template } => {
                let text = self.render_chat(messages, template.as_deref(), true)?;
                self.tokenize_chat_prompt(&text)
            }
            Prompt::Tokens(t) => t.clone(),
        };
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let n_vocab = self.info().n_vocab;
        if let Some(bad) = tokens.iter().find(|&&t| t < 0 || t >= n_vocab) {
            return Err(EngineError::InvalidParam {
                name: "prompt token",
                value: bad.to_string(),
                expected: "a token id in [0, vocabulary size)",
            });
        }
        Ok(tokens)
    }

    /// The context size a request gets.
    pub fn context_size(&self, asked: Option<u32>) -> Result<u32> {
        let train = self.info().n_ctx_train;
        match asked {
            None => Ok(train.min(DEFAULT_MAX_CTX)),
            Some(n) if n < 16 || n > train => Err(EngineError::InvalidParam {
                name: "context size",
                value: n.to_string(),
                expected:
                    "at least 16 and at most the model's training context (see `outpost info`)",
            }),
            Some(n) => Ok(n),
        }
    }

    /// Creates a llama.cpp context for one sequence.
    pub(crate) fn new_context(&self, n_ctx: u32, threads: u32) -> Result<LlamaContext<'_>> {
        let threads = i32::try_from(threads.max(1)).unwrap_or(1);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_ctx.min(2048))
            .with_n_ubatch(n_ctx.min(512))
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let _one_at_a_time = self
            .context_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.inner
            .new_context(backend()?, params)
            .map_err(|e| EngineError::Backend {
                during: "creating a context",
                problem: format!("{e} (context size {n_ctx}; is there enough memory?)"),
            })
    }

    /// Generates a completion, calling `on_piece` for every token as it is
    /// produced. The prompt must fit in the context; generation stops at
    /// end-of-generation, a stop sequence, `max_tokens`, a full context, or
    /// cancellation, and says which.
    pub fn generate(
        &self,
        req: &GenerateRequest,
        cancel: &CancelToken,
        mut on_piece: impl FnMut(&Piece),
    ) -> Result<Completion> {
        req.sampling.validate()?;
        if req.max_tokens == Some(0) {
            return Err(EngineError::InvalidParam {
                name: "max_tokens",
                value: "0".into(),
                expected: "at least 1 (or leave it unset to run until the model stops)",
            });
        }
        let n_ctx = self.context_size(req.n_ctx)?;
        let tokens = self.prompt_tokens(&req.prompt)?;
        if tokens.len() + 1 > n_ctx as usize {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: tokens.len(),
                n_ctx,
                reserve: 1,
                n_ctx_train: self.info().n_ctx_train,
            });
        }
        let threads = req.threads.unwrap_or_else(default_threads);
        let mut ctx = self.new_context(n_ctx, threads)?;
        let seed = req.sampling.seed.unwrap_or_else(random_seed);
        let mut sampler = build_sampler(&req.sampling, seed, self.info().n_vocab);
        let recent = match req.sampling.repeat_last_n {
            -1 => tokens.len(),
            n => (n as usize).min(tokens.len()),
        };
        if req.sampling.repeat_penalty != 1.0 {
            sampler.accept_many(
                tokens[tokens.len() - recent..]
                    .iter()
                    .map(|&t| LlamaToken(t)),
            );
        }

        // Prefill, in batches of n_batch tokens.
        let started = Instant::now();
        let n_batch = ctx.n_batch() as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let mut pos: i32 = 0;
        for chunk in tokens.chunks(n_batch) {
            if cancel.is_cancelled() {
                return Ok(cancelled(tokens.len(), seed, n_ctx, started));
            }
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let last = pos as usize + i + 1 == tokens.len();
                batch
                    .add(LlamaToken(t), pos + i as i32, &[0], last)
                    .map_err(|e| backend_err("filling a batch", e))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| backend_err("reading the prompt", e))?;
            pos += chunk.len() as i32;
        }
        let prompt_ms = started.elapsed().as_secs_f64() * 1e3;

        let gen_started = Instant::now();
        let mut text = TextAssembler::new(&req.stop);
        let mut generated = Vec::new();
        let mut logits_idx = batch.n_tokens() - 1;
        let finish = loop {
            if cancel.is_cancelled() {
                break FinishReason::Cancelled;
            }
            let (logprob, top) = match req.top_logprobs {
                Some(n) => {
                    let lp = logprobs_of(ctx.get_logits_ith(logits_idx), n);
                    (Some(lp), true)
                }
                None => (None, false),
            };
            let token = sampler.sample(&ctx, logits_idx);
            if self.is_end_of_generation(token.0) {
                break FinishReason::Stop;
            }
            generated.push(token.0);
            let pushed = text.push(&self.token_bytes(token.0, false));
            let (chosen, alts) = match (&logprob, top) {
                (Some(lp), true) => (Some(lp.logprob_of(token.0)), lp.top.clone()),
                _ => (None, Vec::new()),
            };
            on_piece(&Piece {
                token: token.0,
                text: pushed.text,
                logprob: chosen,
                top: alts,
            });
            if pushed.stopped {
                break FinishReason::Stop;
            }
            if req
                .max_tokens
                .is_some_and(|m| generated.len() >= m as usize)
            {
                break FinishReason::Length;
            }
            // Prompt plus generated tokens never exceed the context: the
            // next token would need a slot that does not exist.
            if pos as u32 + 1 >= n_ctx {
                break FinishReason::ContextFull;
            }
            batch.clear();
            batch
                .add(token, pos, &[0], true)
                .map_err(|e| backend_err("filling a batch", e))?;
            ctx.decode(&mut batch)
                .map_err(|e| backend_err("generating", e))?;
            pos += 1;
            logits_idx = 0;
        };
        let tail = text.finish();
        if !tail.is_empty() {
            on_piece(&Piece {
                token: -1,
                text: tail,
                logprob: None,
                top: Vec::new(),
            });
        }
        Ok(Completion {
            text: text.text().to_string(),
            tokens: generated,
            prompt_tokens: tokens.len(),
            finish_reason: finish,
            seed,
            n_ctx,
            prompt_ms,
            generate_ms: gen_started.elapsed().as_secs_f64() * 1e3,
        })
    }
}

fn cancelled(prompt_tokens: usize, seed: u32, n_ctx: u32, started: Instant) -> Completion {
    Completion {
        text: String::new(),
        tokens: Vec::new(),
        prompt_tokens,
        finish_reason: FinishReason::Cancelled,
        seed,
        n_ctx,
        prompt_ms: started.elapsed().as_secs_f64() * 1e3,
        generate_ms: 0.0,
    }
}

pub(crate) fn backend_err(during: &'static str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Backend {
        during,
        problem: e.to_string(),
    }
}

fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    nanos ^ std::process::id().rotate_left(16)
}

/// The sampler chain, in llama.cpp's default order.
pub(crate) fn build_sampler(p: &SamplingParams, seed: u32, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if p.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            p.repeat_last_n,
            p.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if p.top_k > 0 {
            chain.push(LlamaSampler::top_k(p.top_k));
        }
        if p.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(p.top_p, 1));
        }
        if p.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(p.min_p, 1));
        }
        chain.push(LlamaSampler::temp(p.temperature));
        chain.push(LlamaSampler::dist(seed));
    }
    LlamaSampler::chain_simple(chain)
}

/// Log-softmax over a logits row: the top `n` and a way to look up any token.
pub(crate) struct Logprobs {
    log_z: f32,
    max: f32,
    logits: Vec<f32>,
    pub top: Vec<TokenLogprob>,
}

impl Logprobs {
    pub fn logprob_of(&self, token: i32) -> f32 {
        self.logits[token as usize] - self.max - self.log_z
    }
}

pub(crate) fn logprobs_of(logits: &[f32], n: usize) -> Logprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = sum.ln() as f32;
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let n = n.min(logits.len());
    if n > 0 {
        idx.select_nth_unstable_by(n - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
    }
    idx.truncate(n);
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let top = idx
        .into_iter()
        .map(|i| TokenLogprob {
            token: i as i32,
            logprob: logits[i] - max - log_z,
        })
        .collect();
    Logprobs {
        log_z,
        max,
        logits: logits.to_vec(),
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_distribution() {
        let l = logprobs_of(&[1.0, 3.0, 2.0, -1.0], 2);
        assert_eq!(
            l.top.iter().map(|t| t.token).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let total: f32 = (0..4).map(|t| l.logprob_of(t).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        assert!((l.top[0].logprob - l.top[1].logprob - 1.0).abs() < 1e-5);
    }

    #[test]
    fn sampling_ranges_are_checked() {
        let mut p = SamplingParams::default();
        p.top_p = 0.0;
        assert!(p.validate().unwrap_err().to_string().contains("top_p = 0"));
        p = SamplingParams::default();
        p.temperature = f32::NAN;
        assert!(p.validate().is_err());
        assert!(SamplingParams::greedy().validate().is_ok());
    }
}
