//! Scoring text without generating: prompt logprobs, and the full logits
//! row at every position for evaluation code (perplexity, KL divergence).

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::error::{EngineError, Result};
use crate::generate::{backend_err, default_threads};
use crate::model::Model;
use crate::sequence::logprobs_of;

impl Model {
    /// Calls `f(i, logits)` with the full-vocabulary logits after tokens
    /// `0..=i`, for every position `i`. The tokens must fit in the model's
    /// training context.
    pub fn eval_logits(
        &self,
        tokens: &[i32],
        threads: Option<u32>,
        mut f: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let n_ctx_train = self.info().n_ctx_train;
        if tokens.len() > n_ctx_train as usize {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: tokens.len(),
                n_ctx: n_ctx_train,
                reserve: 0,
                n_ctx_train,
            });
        }
        self.check_tokens(tokens)?;
        let n_ctx = (tokens.len() as u32).max(16);
        let mut ctx = self.new_context(n_ctx, threads.unwrap_or_else(default_threads))?;
        let n_batch = ctx.n_batch() as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        for (c, chunk) in tokens.chunks(n_batch).enumerate() {
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                batch
                    .add(LlamaToken(t), (c * n_batch + i) as i32, &[0], true)
                    .map_err(|e| backend_err("filling a batch", e))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| backend_err("scoring", e))?;
            for i in 0..chunk.len() {
                f(c * n_batch + i, ctx.get_logits_ith(i as i32));
            }
        }
        Ok(())
    }

    /// Log-probability (natural log) of each token given the ones before
    /// it: `result[i]` scores `tokens[i + 1]`.
    pub fn score(&self, tokens: &[i32], threads: Option<u32>) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(tokens.len().saturating_sub(1));
        self.eval_logits(tokens, threads, |i, logits| {
            if let Some(&next) = tokens.get(i + 1) {
                out.push(logprobs_of(logits, 0).logprob_of(logits, next));
            }
        })?;
        Ok(out)
    }
}

/// llama-perplexity's windowed evaluation on one model: each chunk of
/// `n_ctx` tokens is decoded from an empty cache with its first token
/// replaced by BOS (when the model adds one), and the logits of the second
/// half are handed out: positions `n_ctx/2 ..= n_ctx-2`, each predicting the
/// token after it. Several `ChunkEval`s (one per model) can walk the same
/// chunks in lockstep.
pub struct ChunkEval<'m> {
    model: &'m Model,
    ctx: llama_cpp_2::context::LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    n_ctx: usize,
}

impl<'m> ChunkEval<'m> {
    pub fn new(model: &'m Model, n_ctx: u32, threads: Option<u32>) -> Result<Self> {
        if n_ctx < 16 || n_ctx > model.info().n_ctx_train {
            return Err(EngineError::InvalidParam {
                name: "n_ctx",
                value: n_ctx.to_string(),
                expected: "at least 16 and at most the model's training context",
            });
        }
        let ctx = model.new_context_with(&crate::generate::ContextOptions {
            n_ctx,
            threads: threads.unwrap_or_else(default_threads),
            n_batch: n_ctx,
            ..crate::generate::ContextOptions::default()
        })?;
        Ok(ChunkEval {
            model,
            ctx,
            batch: LlamaBatch::new(n_ctx as usize, 1),
            n_ctx: n_ctx as usize,
        })
    }

    /// First scored position of a chunk.
    pub fn first(&self) -> usize {
        self.n_ctx / 2
    }

    /// Evaluates one chunk (exactly `n_ctx` tokens) and calls
    /// `f(pos, logits)` for every scored position.
    pub fn chunk(&mut self, tokens: &[i32], mut f: impl FnMut(usize, &[f32])) -> Result<()> {
        if tokens.len() != self.n_ctx {
            return Err(EngineError::InvalidParam {
                name: "chunk",
                value: tokens.len().to_string(),
                expected: "exactly n_ctx tokens",
            });
        }
        self.model.check_tokens(tokens)?;
        let bos = self
            .model
            .info()
            .bos
            .as_ref()
            .filter(|_| self.model.info().add_bos)
            .map(|b| b.id);
        let first = self.first();
        self.ctx.clear_kv_cache();
        let n_batch = self.ctx.n_batch() as usize;
        let mut rows: Vec<(usize, i32)> = Vec::new();
        for (c, part) in tokens.chunks(n_batch).enumerate() {
            self.batch.clear();
            rows.clear();
            for (i, &t) in part.iter().enumerate() {
                let pos = c * n_batch + i;
                let t = if pos == 0 { bos.unwrap_or(t) } else { t };
                let want = pos >= first && pos + 1 < self.n_ctx;
                self.batch
                    .add(LlamaToken(t), pos as i32, &[0], want)
                    .map_err(|e| backend_err("filling a batch", e))?;
                if want {
                    rows.push((pos, i as i32));
                }
            }
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| backend_err("scoring", e))?;
            for &(pos, row) in &rows {
                f(pos, self.ctx.get_logits_ith(row));
            }
        }
        Ok(())
    }
}
