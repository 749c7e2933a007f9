//! `outpost bench`: prompt processing (ppN) and token generation (tgN)
//! throughput, measured the way llama-bench measures it so the two can be
//! put side by side: random tokens, a warm-up run, then `reps` timed runs on
//! an emptied KV cache, reporting mean and standard deviation of tokens/s.

use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::draft::FREE_ROWS;
use crate::error::{EngineError, Result};
use crate::generate::{backend_err, default_threads};
use crate::model::Model;
use crate::request::{GenerateRequest, Prompt, SamplingParams};
use crate::scheduler::{context_options, Scheduler, SchedulerConfig};

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
    /// Guessed tokens decoded, and those confirmed (timed part only).
    pub drafted: u64,
    pub draft_accepted: u64,
    /// The scheduler's measured step cost, if it measured one.
    pub step_fixed_us: u64,
    pub step_row_us: u64,
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
    draft_always: bool,
) -> Result<ParallelStat> {
    let cfg = SchedulerConfig {
        draft_max,
        draft_always,
        ..parallel_config(sequences, n_gen, threads)?
    };
    let sched = Scheduler::start(model.clone(), cfg)?;
    // Greedy requests of `n` tokens (end-of-generation ignored), one per
    // sequence; their generated token counts.
    let run_all = |prompt: &dyn Fn(u32) -> String, n: u32| -> Result<u64> {
        let handles = (0..sequences)
            .map(|i| {
                let mut r = GenerateRequest::new(Prompt::Text(prompt(i)));
                r.sampling = SamplingParams::greedy();
                r.max_tokens = Some(n);
                r.ignore_eos = true;
                sched.submit(r)
            })
            .collect::<Result<Vec<_>>>()?;
        handles
            .into_iter()
            .map(|h| Ok(h.wait(|_| {})?.tokens.len() as u64))
            .sum()
    };
    // Warm-up, as llama-bench and llama-server do before they are timed:
    // every slot decodes a few tokens, so the first timed steps do not pay
    // for first touches of the KV cache and compute buffers.
    run_all(&|i| format!("Warm-up {i}."), 4)?;
    let stats = sched.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let (drafted0, accepted0) = (load(&stats.drafted), load(&stats.draft_accepted));
    let started = Instant::now();
    let generated = run_all(&parallel_bench_prompt, n_gen)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(ParallelStat {
        sequences,
        generated,
        seconds,
        drafted: load(&stats.drafted) - drafted0,
        draft_accepted: load(&stats.draft_accepted) - accepted0,
        step_fixed_us: load(&stats.step_fixed_us),
        step_row_us: load(&stats.step_row_us),
    })
}

/// The scheduler set-up of [`bench_parallel`] (also the contexts of
/// [`bench_parallel_bound`]), once the counts are checked.
fn parallel_config(sequences: u32, n_gen: u32, threads: Option<u32>) -> Result<SchedulerConfig> {
    if sequences == 0 || n_gen == 0 {
        return Err(EngineError::InvalidParam {
            name: "parallel bench",
            value: format!("sequences={sequences} tokens={n_gen}"),
            expected: "at least 1 sequence and 1 token",
        });
    }
    Ok(SchedulerConfig {
        slots: sequences,
        n_ctx_per_slot: Some(256.max(n_gen + 64)),
        threads,
        ..SchedulerConfig::default()
    })
}

/// The most aggregate decode that any scheduler could reach on the work of
/// [`bench_parallel`] with this build of llama.cpp, on this machine: one
/// ceiling per mode.
///
/// Every generated token but each sequence's first needs one decode row
/// with logits (the row of the token before it), whether a scheduler
/// batches sequences, drafts guesses, or both; and the prompts must be
/// evaluated. So the time is at least: the prompts in one batch, plus
/// those rows at the rate llama.cpp evaluates them in steps of the shapes
/// the mode can make. Without drafting a step holds one row per sequence;
/// with drafting it may hold more per sequence, up to [`FREE_ROWS`] rows in
/// all (the scheduler's own limit), and the ideal is every guess
/// confirmed. Both are measured here with nothing else around them (no
/// sampling, detokenising, channels): random tokens, the same contexts as
/// the scheduler, widths of 1, 2, 4 and 8 rows per sequence while a step
/// stays within that limit.
#[derive(Debug, Clone)]
pub struct DecodeBound {
    pub sequences: u32,
    /// Tokens the work generates, all sequences together.
    pub generated: u64,
    /// Fastest evaluation of all prompts together (last row of each with
    /// logits).
    pub prefill_seconds: f64,
    /// (rows per sequence per step, rows with logits per second); the
    /// first is width 1.
    pub rows_per_s: Vec<(u32, f64)>,
}

impl DecodeBound {
    /// Generated tokens per second with no overhead beyond llama.cpp's,
    /// decoding rows at `rows_per_s`.
    fn tps_at(&self, rows_per_s: f64) -> f64 {
        let rows = self.generated - u64::from(self.sequences);
        let decode = if rows == 0 {
            0.0
        } else {
            rows as f64 / rows_per_s
        };
        self.generated as f64 / (self.prefill_seconds + decode)
    }

    /// The ceiling without drafting: one row per sequence per step.
    pub fn no_drafting_tps(&self) -> f64 {
        self.rows_per_s
            .first()
            .map_or(0.0, |&(_, r)| self.tps_at(r))
    }

    /// The ceiling with ideal drafting (every guess confirmed) at the
    /// fastest step width the scheduler may use; never below
    /// [`Self::no_drafting_tps`], since not drafting is one of its choices.
    pub fn ideal_drafting_tps(&self) -> f64 {
        let best = self.rows_per_s.iter().map(|r| r.1).fold(0.0, f64::max);
        self.tps_at(best)
    }
}

/// Measures the [`DecodeBound`] of `bench_parallel(model, sequences,
/// n_gen, threads, ..)`.
pub fn bench_parallel_bound(
    model: &Arc<Model>,
    sequences: u32,
    n_gen: u32,
    threads: Option<u32>,
) -> Result<DecodeBound> {
    let cfg = parallel_config(sequences, n_gen, threads)?;
    let n_ctx_per_slot = model.context_size(cfg.n_ctx_per_slot)?;
    let mut ctx = model.new_context_with(&context_options(model, &cfg, n_ctx_per_slot))?;
    let n_batch = ctx.n_batch() as usize;
    let prompts = (0..sequences)
        .map(|i| model.prompt_tokens(&Prompt::Text(parallel_bench_prompt(i))))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<(i32, i32, i32, bool)> = prompts
        .iter()
        .enumerate()
        .flat_map(|(s, p)| {
            p.iter()
                .enumerate()
                .map(move |(i, &t)| (t, i as i32, s as i32, i + 1 == p.len()))
        })
        .collect();
    let n_vocab = model.info().n_vocab as u32;
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut batch = LlamaBatch::new(n_batch, sequences as i32);
    let mut bound = DecodeBound {
        sequences,
        generated: u64::from(sequences) * u64::from(n_gen),
        prefill_seconds: f64::INFINITY,
        rows_per_s: Vec::new(),
    };
    for width in [1u32, 2, 4, 8] {
        let step_rows = (sequences * width) as usize;
        if width > 1 && (step_rows > FREE_ROWS || step_rows > n_batch) {
            break;
        }
        ctx.clear_kv_cache();
        let t = Instant::now();
        for chunk in rows.chunks(n_batch) {
            batch.clear();
            for &(tok, pos, seq, logits) in chunk {
                batch
                    .add(LlamaToken(tok), pos, &[seq], logits)
                    .map_err(bench_err)?;
            }
            ctx.decode(&mut batch).map_err(bench_err)?;
        }
        ctx.synchronize();
        bound.prefill_seconds = bound.prefill_seconds.min(t.elapsed().as_secs_f64());
        let mut pos: Vec<i32> = prompts.iter().map(|p| p.len() as i32).collect();
        let steps = (n_gen - 1).div_ceil(width);
        let t = Instant::now();
        for _ in 0..steps {
            batch.clear();
            for (s, p) in pos.iter_mut().enumerate() {
                for _ in 0..width {
                    let tok = LlamaToken(rng.below(n_vocab) as i32);
                    batch.add(tok, *p, &[s as i32], true).map_err(bench_err)?;
                    *p += 1;
                }
            }
            ctx.decode(&mut batch).map_err(bench_err)?;
            ctx.synchronize();
        }
        let evaluated = u64::from(steps) * u64::from(width) * u64::from(sequences);
        if evaluated > 0 {
            bound
                .rows_per_s
                .push((width, evaluated as f64 / t.elapsed().as_secs_f64()));
        }
    }
    Ok(bound)
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
