//! Single-sequence generation: prompt in, streamed pieces out.

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::error::{EngineError, Result};
use crate::model::{backend, Model};
use crate::request::{
    CancelToken, Completion, FinishReason, GenerateRequest, Piece, Prompt, DEFAULT_MAX_CTX,
};
use crate::sequence::Sequence;

/// Threads to use when none are asked for.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(4, |n| n.get() as u32)
}

impl Model {
    /// Resolves a prompt to tokens (chat messages through the template).
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<i32>> {
        let tokens = match prompt {
            Prompt::Text(t) => self.tokenize(t, true),
            Prompt::Chat {
                messages,
                template,
                tools,
            } => {
                let text =
                    self.render_chat_with_tools(messages, tools, template.as_deref(), true)?;
                self.tokenize_chat_prompt(&text)
            }
            Prompt::Tokens(t) => t.clone(),
        };
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        self.check_tokens(&tokens)?;
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

    /// Creates a llama.cpp context: `n_ctx` cells shared by `n_seq`
    /// sequences (see [`ContextOptions`]).
    pub(crate) fn new_context_with(&self, o: &ContextOptions) -> Result<LlamaContext<'_>> {
        let threads = i32::try_from(o.threads.max(1)).unwrap_or(1);
        let n_batch = o.n_batch.min(o.n_ctx).max(1);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(o.n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch.min(512))
            .with_n_seq_max(o.n_seq.max(1))
            .with_kv_unified(o.kv_unified)
            .with_swa_full(o.swa_full)
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
                problem: format!("{e} (context size {}; is there enough memory?)", o.n_ctx),
            })
    }

    /// Creates a llama.cpp context for one sequence.
    pub(crate) fn new_context(&self, n_ctx: u32, threads: u32) -> Result<LlamaContext<'_>> {
        self.new_context_with(&ContextOptions {
            n_ctx,
            threads,
            ..ContextOptions::default()
        })
    }

    /// Checks a request and resolves its prompt to tokens that fit in a
    /// context of `n_ctx` tokens per sequence.
    pub(crate) fn prepare(&self, req: &GenerateRequest, n_ctx: u32) -> Result<Vec<i32>> {
        if self.info().embedding.is_some() {
            return Err(EngineError::NotGenerative {
                model: self.display_name(),
            });
        }
        req.sampling.validate()?;
        if req.max_tokens == Some(0) {
            return Err(EngineError::InvalidParam {
                name: "max_tokens",
                value: "0".into(),
                expected: "at least 1 (or leave it unset to run until the model stops)",
            });
        }
        if let Some(g) = &req.grammar {
            crate::sequence::grammar_sampler(self, g, &req.grammar_triggers)?;
        }
        let tokens = self.prompt_tokens(&req.prompt)?;
        if tokens.len() + 1 > n_ctx as usize {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: tokens.len(),
                n_ctx,
                reserve: 1,
                n_ctx_train: self.info().n_ctx_train,
            });
        }
        Ok(tokens)
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
        let n_ctx = self.context_size(req.n_ctx)?;
        let tokens = self.prepare(req, n_ctx)?;
        let threads = req.threads.unwrap_or_else(default_threads);
        let mut ctx = self.new_context(n_ctx, threads)?;
        let mut seq = Sequence::new(self, req, &tokens)?;
        let mut emit = |p: Piece| on_piece(&p);

        // Prefill, in batches of n_batch tokens.
        let started = Instant::now();
        let n_batch = ctx.n_batch() as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let mut pos: i32 = 0;
        for chunk in tokens.chunks(n_batch) {
            if cancel.is_cancelled() {
                return Ok(cancelled(tokens.len(), seq.seed, n_ctx, started));
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
        let mut logits_idx = batch.n_tokens() - 1;
        let finish = loop {
            if cancel.is_cancelled() {
                break FinishReason::Cancelled;
            }
            match seq.step(self, &ctx, logits_idx, pos as usize, n_ctx, &mut emit) {
                Err(finish) => break finish,
                Ok(token) => {
                    batch.clear();
                    batch
                        .add(token, pos, &[0], true)
                        .map_err(|e| backend_err("filling a batch", e))?;
                    ctx.decode(&mut batch)
                        .map_err(|e| backend_err("generating", e))?;
                    pos += 1;
                    logits_idx = 0;
                }
            }
        };
        seq.flush(&mut emit);
        Ok(Completion {
            text: seq.text().to_string(),
            tokens: std::mem::take(&mut seq.generated),
            prompt_tokens: tokens.len(),
            cached_tokens: 0,
            finish_reason: finish,
            seed: seq.seed,
            n_ctx,
            prompt_ms,
            generate_ms: gen_started.elapsed().as_secs_f64() * 1e3,
        })
    }
}

/// How to shape a llama.cpp context.
#[derive(Debug, Clone)]
pub(crate) struct ContextOptions {
    /// Total KV cells.
    pub n_ctx: u32,
    pub threads: u32,
    /// Most tokens decoded in one call.
    pub n_batch: u32,
    /// Sequences that share the context.
    pub n_seq: u32,
    /// One KV buffer for all sequences (else n_ctx / n_seq cells each).
    pub kv_unified: bool,
    /// Keep the whole KV for sliding-window layers (needed to reuse a
    /// cached prefix on models such as Gemma 3).
    pub swa_full: bool,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            n_ctx: 2048,
            threads: default_threads(),
            n_batch: 2048,
            n_seq: 1,
            kv_unified: false,
            swa_full: false,
        }
    }
}

fn cancelled(prompt_tokens: usize, seed: u32, n_ctx: u32, started: Instant) -> Completion {
    Completion {
        text: String::new(),
        tokens: Vec::new(),
        prompt_tokens,
        cached_tokens: 0,
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
