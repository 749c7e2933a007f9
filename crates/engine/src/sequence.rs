//! One sequence's generation state: its sampler, its text, and the rules
//! that end it. Shared by `Model::generate` (one sequence, own context) and
//! the `Scheduler` (many sequences in one batch).

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::request::{FinishReason, GenerateRequest, Piece, SamplingParams, TokenLogprob};
use crate::stream::TextAssembler;

/// Generation state of one request.
pub(crate) struct Sequence {
    sampler: LlamaSampler,
    /// Kept out of the chain: checked against the chain's pick first, and
    /// applied to the whole vocabulary only when it refuses that pick.
    grammar: Option<LlamaSampler>,
    text: TextAssembler,
    pub generated: Vec<i32>,
    max_tokens: Option<u32>,
    top_logprobs: Option<usize>,
    ignore_eos: bool,
    pub seed: u32,
    /// Greedy without a grammar: the scheduler may draft its next tokens.
    pub greedy: bool,
    /// Control tokens whose text is kept (see `GenerateRequest`).
    preserved: Vec<String>,
    /// Greedy with nothing else in the chain: the pick is the logits'
    /// argmax, taken straight from the row (llama.cpp's sampler would first
    /// copy the whole vocabulary into a candidate array).
    argmax: bool,
}

impl Sequence {
    /// State for `req`, whose prompt is `prompt` (the last
    /// `repeat_last_n` prompt tokens feed the repetition penalty).
    pub fn new(model: &Model, req: &GenerateRequest, prompt: &[i32]) -> Result<Sequence> {
        let seed = req.sampling.seed.unwrap_or_else(random_seed);
        let grammar = req
            .grammar
            .as_deref()
            .map(|g| grammar_sampler(model, g, &req.grammar_triggers))
            .transpose()?;
        let mut sampler = build_sampler(&req.sampling, seed, model.info().n_vocab);
        // The last prompt tokens feed the repetition penalty.
        if req.sampling.repeat_penalty != 1.0 {
            let recent = match req.sampling.repeat_last_n {
                -1 => prompt.len(),
                n => (n.max(0) as usize).min(prompt.len()),
            };
            sampler.accept_many(
                prompt[prompt.len() - recent..]
                    .iter()
                    .map(|&t| LlamaToken(t)),
            );
        }
        let greedy = req.sampling.temperature <= 0.0 && req.grammar.is_none();
        Ok(Sequence {
            sampler,
            grammar,
            text: TextAssembler::new(&req.stop),
            generated: Vec::new(),
            max_tokens: req.max_tokens,
            top_logprobs: req.top_logprobs,
            ignore_eos: req.ignore_eos,
            seed,
            greedy,
            argmax: greedy && req.sampling.repeat_penalty == 1.0,
            preserved: req.preserved_tokens.clone(),
        })
    }

    /// Samples the next token from the logits at batch index `idx`.
    /// `kv_len` is how many tokens of this sequence are in the KV cache and
    /// `n_ctx` how many it may hold. Returns the token to decode next, or
    /// why the sequence ended.
    pub fn step(
        &mut self,
        model: &Model,
        ctx: &LlamaContext<'_>,
        idx: i32,
        kv_len: usize,
        n_ctx: u32,
        on_piece: &mut dyn FnMut(Piece),
    ) -> Result<LlamaToken, FinishReason> {
        let logits = ctx.get_logits_ith(idx);
        let logprobs = self.top_logprobs.map(|n| logprobs_of(logits, n));
        let token = match self.grammar.as_mut() {
            None if self.argmax => LlamaToken(argmax(logits)),
            None => self.sampler.sample(ctx, idx),
            Some(grammar) => sample_with_grammar(&mut self.sampler, grammar, ctx, idx)
                .ok_or(FinishReason::Stop)?,
        };
        if model.is_end_of_generation(token.0) && !self.ignore_eos {
            return Err(FinishReason::Stop);
        }
        self.generated.push(token.0);
        let mut bytes = model.token_bytes(token.0, false);
        if bytes.is_empty() && !self.preserved.is_empty() {
            let special = model.token_bytes(token.0, true);
            if self.preserved.iter().any(|p| p.as_bytes() == special) {
                bytes = special;
            }
        }
        let pushed = self.text.push(&bytes);
        on_piece(Piece {
            token: token.0,
            text: pushed.text,
            logprob: logprobs.as_ref().map(|l| l.logprob_of(logits, token.0)),
            top: logprobs.map(|l| l.top).unwrap_or_default(),
        });
        if pushed.stopped {
            return Err(FinishReason::Stop);
        }
        if self
            .max_tokens
            .is_some_and(|m| self.generated.len() >= m as usize)
        {
            return Err(FinishReason::Length);
        }
        // Prompt plus generated tokens never exceed the context: the next
        // token would need a slot that does not exist.
        if kv_len + 1 >= n_ctx as usize {
            return Err(FinishReason::ContextFull);
        }
        Ok(token)
    }

    /// Text still held back (an unfinished stop-sequence prefix or UTF-8
    /// bytes), emitted as a last piece with token -1.
    pub fn flush(&mut self, on_piece: &mut dyn FnMut(Piece)) {
        let tail = self.text.finish();
        if !tail.is_empty() {
            on_piece(Piece {
                token: -1,
                text: tail,
                logprob: None,
                top: Vec::new(),
            });
        }
    }

    /// The whole text so far.
    pub fn text(&self) -> &str {
        self.text.text()
    }
}

fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    nanos ^ std::process::id().rotate_left(16)
}

/// A GBNF grammar sampler (rule `root`), lazy when `triggers` are given
/// (llama.cpp applies it from the first match on), or why the grammar is
/// unusable.
pub(crate) fn grammar_sampler(
    model: &Model,
    grammar: &str,
    triggers: &[String],
) -> Result<LlamaSampler> {
    let sampler = if triggers.is_empty() {
        LlamaSampler::grammar(&model.inner, grammar, "root")
    } else {
        LlamaSampler::grammar_lazy_patterns(&model.inner, grammar, "root", triggers, &[])
    };
    sampler.map_err(|e| EngineError::InvalidParam {
        name: "grammar",
        value: format!("{e}"),
        expected: "a GBNF grammar with a `root` rule (and valid trigger patterns)",
    })
}

/// Samples with a grammar the way llama.cpp's own tools do: let the chain
/// pick from the raw logits, and keep that pick when the grammar allows it
/// (the usual case, and cheap: the grammar checks one token); otherwise
/// mask the whole vocabulary by the grammar and let the chain pick again.
/// Applying the grammar to all 49k tokens every step instead ran at 42 % of
/// unconstrained speed on SmolLM2.
fn sample_with_grammar(
    chain: &mut LlamaSampler,
    grammar: &mut LlamaSampler,
    ctx: &LlamaContext<'_>,
    idx: i32,
) -> Option<LlamaToken> {
    let mut cur = ctx.token_data_array_ith(idx);
    cur.apply_sampler(chain);
    let mut pick = cur.selected_token()?;
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(pick, 0.0, 0.0)], false);
    one.apply_sampler(grammar);
    if !one.data[0].logit().is_finite() {
        let mut cur = ctx.token_data_array_ith(idx);
        cur.apply_sampler(grammar);
        cur.apply_sampler(chain);
        pick = cur.selected_token()?;
    }
    chain.accept(pick);
    grammar.accept(pick);
    Some(pick)
}

/// The first index of the largest value, as llama.cpp's greedy sampler
/// picks it (a strictly larger value replaces the pick, so ties keep the
/// lower token id).
///
/// One pass in independent lanes, each keeping its own largest value and
/// where it was, so the compiler turns the loop into vector compares and
/// blends: the plain loop (each compare waiting on the last pick) took
/// ~0.4 ms per 262k-token row, 7.5 % of a 16-sequence Gemma 3 step on the
/// scheduler's thread while the decode threads waited (`perf`, 2 cores).
fn argmax(logits: &[f32]) -> i32 {
    const LANES: usize = 16;
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut at = [0u32; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        let base = (c * LANES) as u32;
        for l in 0..LANES {
            let x = chunk[l];
            let take = x > best[l];
            best[l] = if take { x } else { best[l] };
            at[l] = if take { base + l as u32 } else { at[l] };
        }
    }
    // Each lane holds its first largest value; the lowest index among the
    // lanes with the overall largest is the first in the row. A row of only
    // -inf (or NaN) keeps token 0, as the plain loop did.
    let (mut pick_v, mut pick_i) = (logits.first().copied().unwrap_or(0.0), 0u32);
    for l in 0..LANES {
        if best[l] > pick_v || (best[l] == pick_v && at[l] < pick_i && best[l] > f32::NEG_INFINITY)
        {
            (pick_v, pick_i) = (best[l], at[l]);
        }
    }
    let start = logits.len() - tail.len();
    for (k, &x) in tail.iter().enumerate() {
        if x > pick_v {
            (pick_v, pick_i) = (x, (start + k) as u32);
        }
    }
    pick_i as i32
}

/// The sampler chain, in llama.cpp's default order.
pub(crate) fn build_sampler(p: &SamplingParams, seed: u32, n_vocab: i32) -> LlamaSampler {
    let mut chain: Vec<LlamaSampler> = Vec::new();
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

/// Log-softmax over a logits row: its normaliser and the top `n` tokens.
/// Nothing is copied: look tokens up in the same row with `logprob_of`.
pub(crate) struct Logprobs {
    /// max + log(sum(exp(logit - max))): logprob = logit - offset.
    offset: f32,
    pub top: Vec<TokenLogprob>,
}

impl Logprobs {
    /// The logprob of `token` in `logits`, the row this was computed from.
    pub fn logprob_of(&self, logits: &[f32], token: i32) -> f32 {
        logits[token as usize] - self.offset
    }
}

pub(crate) fn logprobs_of(logits: &[f32], n: usize) -> Logprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let offset = max + sum.ln() as f32;
    let n = n.min(logits.len());
    let mut top = Vec::with_capacity(n);
    if n > 0 {
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.select_nth_unstable_by(n - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        idx.truncate(n);
        idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        top.extend(idx.into_iter().map(|i| TokenLogprob {
            token: i as i32,
            logprob: logits[i] - offset,
        }));
    }
    Logprobs { offset, top }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_distribution() {
        let logits = [1.0, 3.0, 2.0, -1.0];
        let l = logprobs_of(&logits, 2);
        assert_eq!(
            l.top.iter().map(|t| t.token).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let total: f32 = (0..4).map(|t| l.logprob_of(&logits, t).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        assert!((l.top[0].logprob - l.top[1].logprob - 1.0).abs() < 1e-5);
    }

    #[test]
    fn argmax_picks_what_llama_cpps_greedy_sampler_picks() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Few distinct values, so ties for the top are common.
            (state % 7) as f32 - 3.0
        };
        for n in [1usize, 2, 5, 37, 64, 1000, 49152] {
            for _ in 0..20 {
                let logits: Vec<f32> = (0..n).map(|_| next()).collect();
                let mut cur = LlamaTokenDataArray::from_iter(
                    logits
                        .iter()
                        .enumerate()
                        .map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
                    false,
                );
                cur.apply_sampler(&mut LlamaSampler::greedy());
                assert_eq!(
                    Some(LlamaToken(argmax(&logits))),
                    cur.selected_token(),
                    "{n} logits"
                );
            }
        }
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
