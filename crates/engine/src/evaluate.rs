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
