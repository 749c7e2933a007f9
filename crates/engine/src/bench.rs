//! `outpost bench`: prompt processing (ppN) and token generation (tgN)
//! throughput, measured the way llama-bench measures it so the two can be
//! put side by side: random tokens, a warm-up run, then `reps` timed runs on
//! an emptied KV cache, reporting mean and standard deviation of tokens/s.

use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::error::{EngineError, Result};
use crate::generate::{backend_err, default_threads};
use crate::model::Model;
use crate::request::{GenerateRequest, Prompt, SamplingParams};
use crate::scheduler::{Scheduler, SchedulerConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchParams {
    /// Prompt tokens for the pp test (0 skips it).
    pub n_prompt: u32,
    /// Generated tokens for the tg test (0 skips it).
    pub n_gen: u32,
    pub reps: u32,
    pub threads: Option<u32>,
}

impl Default for BenchParams {
    fn default() -> Self {
        BenchParams {
            n_prompt: 512,
            n_gen: 128,
            reps: 5,
            threads: None,
        }
    }
}

/// Tokens per second over the repetitions.
#[derive(Debug, Clone)]
pub struct BenchStat {
    /// `pp512`, `tg128`, ...
    pub test: String,
    pub n_tokens: u32,
    pub samples: Vec<f64>,
}

impl BenchStat {
    pub fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }
    pub fn stddev(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.samples.iter().map(|s| (s - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// Results of one bench run.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub threads: u32,
    pub stats: Vec<BenchStat>,
}

impl Model {
    /// Runs the pp and tg tests.
    pub fn bench(&self, p: &BenchParams) -> Result<BenchResult> {
        if p.reps == 0 || (p.n_prompt == 0 && p.n_gen == 0) {
            return Err(EngineError::InvalidParam {
                name: "bench",
                value: format!("reps={} n_prompt={} n_gen={}", p.reps, p.n_prompt, p.n_gen),
                expected: "reps >= 1 and at least one of n_prompt, n_gen > 0",
            });
        }
        let threads = p.threads.unwrap_or_else(default_threads);
        let n_ctx = (p.n_prompt + p.n_gen).max(16);
        if n_ctx > self.info().n_ctx_train {
            return Err(EngineError::InvalidParam {
                name: "bench tokens",
                value: n_ctx.to_string(),
                expected: "n_prompt + n_gen within the model's training context",
            });
        }
        let mut ctx = self.new_context(n_ctx, threads)?;
        let n_batch = ctx.n_batch() as usize;
        let n_vocab = self.info().n_vocab as u32;
        let bos = self
            .info()
            .bos
            .as_ref()
            .filter(|_| self.info().add_bos)
            .map(|b| b.id);
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut batch = LlamaBatch::new(n_batch.max(1), 1);

        let mut prompt = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
                          n: usize,
                          rng: &mut XorShift|
         -> Result<()> {
            let mut done = 0;
            while done < n {
                let take = (n - done).min(n_batch);
                batch.clear();
                for i in 0..take {
                    let t = match (done + i, bos) {
                        (0, Some(b)) => b,
                        _ => rng.below(n_vocab) as i32,
                    };
                    batch
                        .add(LlamaToken(t), (done + i) as i32, &[0], i + 1 == take)
                        .map_err(bench_err)?;
                }
                ctx.decode(&mut batch).map_err(bench_err)?;
                done += take;
            }
            Ok(())
        };
        let mut single = LlamaBatch::new(1, 1);
        let mut gen = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
                       n: usize,
                       rng: &mut XorShift|
         -> Result<()> {
            let mut t = bos.unwrap_or_else(|| rng.below(n_vocab) as i32);
            for pos in 0..n {
                single.clear();
                single
                    .add(LlamaToken(t), pos as i32, &[0], true)
                    .map_err(bench_err)?;
                ctx.decode(&mut single).map_err(bench_err)?;
                ctx.synchronize();
                t = rng.below(n_vocab) as i32;
            }
            Ok(())
        };

        let mut stats = Vec::new();
        if p.n_prompt > 0 {
            ctx.clear_kv_cache();
            prompt(
                &mut ctx,
                (p.n_prompt as usize).min(n_batch).min(32),
                &mut rng,
            )?; // warm-up
            let mut samples = Vec::new();
            for _ in 0..p.reps {
                ctx.clear_kv_cache();
                let t = Instant::now();
                prompt(&mut ctx, p.n_prompt as usize, &mut rng)?;
                ctx.synchronize();
                samples.push(f64::from(p.n_prompt) / t.elapsed().as_secs_f64());
            }
            stats.push(BenchStat {
                test: format!("pp{}", p.n_prompt),
                n_tokens: p.n_prompt,
                samples,
            });
        }
        if p.n_gen > 0 {
            ctx.clear_kv_cache();
            gen(&mut ctx, 1, &mut rng)?; // warm-up
            let mut samples = Vec::new();
            for _ in 0..p.reps {
                ctx.clear_kv_cache();
                let t = Instant::now();
                gen(&mut ctx, p.n_gen as usize, &mut rng)?;
                samples.push(f64::from(p.n_gen) / t.elapsed().as_secs_f64());
            }
            stats.push(BenchStat {
                test: format!("tg{}", p.n_gen),
                n_tokens: p.n_gen,
                samples,
            });
        }
        Ok(BenchResult { threads, stats })
    }
}

fn bench_err(e: impl std::fmt::Display) -> EngineError {
    backend_err("benchmarking", e)
}

/// Aggregate decode speed of concurrent sequences.
#[derive(Debug, Clone)]
pub struct ParallelStat {
    pub sequences: u32,
    /// Tokens generated by all sequences together.
    pub generated: u64,
    pub seconds: f64,
}

impl ParallelStat {
    /// Generated tokens per second, all sequences together.
    pub fn aggregate_tps(&self) -> f64 {
        self.generated as f64 / self.seconds
    }
}

/// The prompt of concurrent request `i` in [`bench_parallel`] (also used by
/// `cargo xtask bench` for llama-server, so both decode the same work).
pub fn parallel_bench_prompt(i: u32) -> String {
    format!("Story {i}: Once upon a time, a lighthouse keeper found a message in a bottle. It said")
}

/// Runs `sequences` greedy requests of `n_gen` tokens at once on a
/// [`Scheduler`] with as many slots (end-of-generation ignored, so every
/// sequence makes exactly `n_gen` tokens) and measures the wall time from
/// the first submission to the last token.
pub fn bench_parallel(
    model: &Arc<Model>,
    sequences: u32,
    n_gen: u32,
    threads: Option<u32>,
    draft_max: usize,
) -> Result<ParallelStat> {
    if sequences == 0 || n_gen == 0 {
        return Err(EngineError::InvalidParam {
            name: "parallel bench",
            value: format!("sequences={sequences} tokens={n_gen}"),
            expected: "at least 1 sequence and 1 token",
        });
    }
    let sched = Scheduler::start(
        model.clone(),
        SchedulerConfig {
            slots: sequences,
            n_ctx_per_slot: Some(256.max(n_gen + 64)),
            threads,
            draft_max,
            ..SchedulerConfig::default()
        },
    )?;
    let started = Instant::now();
    let handles = (0..sequences)
        .map(|i| {
            let mut r = GenerateRequest::new(Prompt::Text(parallel_bench_prompt(i)));
            r.sampling = SamplingParams::greedy();
            r.max_tokens = Some(n_gen);
            r.ignore_eos = true;
            sched.submit(r)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut generated = 0;
    for h in handles {
        generated += h.wait(|_| {})?.tokens.len() as u64;
    }
    Ok(ParallelStat {
        sequences,
        generated,
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n.max(1))) as u32
    }
}
