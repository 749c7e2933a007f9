//! Embeddings: a worker thread that owns one llama.cpp context with
//! embeddings on, and packs the inputs of every request waiting for it into
//! as few encoder passes as fit (several clients, one decode).
//!
//! Encoder models attend in both directions, so llama.cpp must see a whole
//! sequence in one micro-batch (it aborts otherwise): the context's batch
//! and micro-batch are the same size, at least the model's training
//! context, and inputs are checked against that length before they are
//! queued. Pooling is the model's own (`ARCH.pooling_type`);
//! normalisation follows [`EmbeddingInfo::normalize`].

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::error::{EngineError, Result};
use crate::model::{backend, EmbeddingInfo, Model};

/// How the embedding worker batches.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    pub threads: u32,
    /// Tokens per encoder pass (at least the model's training context).
    pub batch_tokens: u32,
    /// Inputs per encoder pass (llama.cpp allows at most 256 sequences).
    pub batch_inputs: u32,
}

impl Default for EmbedConfig {
    fn default() -> EmbedConfig {
        EmbedConfig {
            threads: crate::default_threads(),
            batch_tokens: 2048,
            batch_inputs: 64,
        }
    }
}

/// Counters, for metrics and for tests that check batching.
#[derive(Debug, Default)]
pub struct EmbedStats {
    /// Encoder passes run.
    pub passes: AtomicU64,
    /// Inputs embedded.
    pub inputs: AtomicU64,
    /// Tokens encoded.
    pub tokens: AtomicU64,
    /// Requests served.
    pub requests: AtomicU64,
    /// Passes that held inputs of more than one request.
    pub shared_passes: AtomicU64,
}

struct Job {
    inputs: Vec<Vec<i32>>,
    reply: Sender<Result<Vec<Vec<f32>>>>,
}

/// An embedding model's worker. Dropping it stops the worker.
pub struct Embedder {
    tx: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    model: Arc<Model>,
    info: EmbeddingInfo,
    stats: Arc<EmbedStats>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Starts the worker. A model that generates is refused by name.
    pub fn start(model: Arc<Model>, cfg: EmbedConfig) -> Result<Embedder> {
        let info = model
            .info()
            .embedding
            .ok_or_else(|| EngineError::NotEmbedding {
                model: model.display_name(),
            })?;
        let n_ctx = model.info().n_ctx_train;
        if cfg.batch_tokens < n_ctx || cfg.batch_inputs == 0 || cfg.batch_inputs > 256 {
            return Err(EngineError::InvalidParam {
                name: "embedding batch",
                value: format!("{} tokens, {} inputs", cfg.batch_tokens, cfg.batch_inputs),
                expected: "at least the model's training context in tokens, and 1 to 256 inputs",
            });
        }
        let stats = Arc::new(EmbedStats::default());
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker = {
            let model = model.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("outpost-embed".into())
                .spawn(move || worker(&model, &cfg, info, &rx, &ready_tx, &stats))
                .map_err(|e| EngineError::Backend {
                    during: "starting the embedding thread",
                    problem: e.to_string(),
                })?
        };
        ready_rx.recv().map_err(|_| EngineError::Backend {
            during: "starting the embedding worker",
            problem: "the worker thread died".into(),
        })??;
        Ok(Embedder {
            tx: Some(tx),
            worker: Some(worker),
            model,
            info,
            stats,
        })
    }

    pub fn stats(&self) -> &EmbedStats {
        &self.stats
    }

    /// Width of every vector.
    pub fn dimensions(&self) -> usize {
        usize::try_from(self.model.info().n_embd).unwrap_or(0)
    }

    /// The most tokens one input may have (the model's training context).
    pub fn max_tokens(&self) -> usize {
        self.model.info().n_ctx_train as usize
    }

    /// Tokens of `text` with the model's special tokens (`[CLS]`..`[SEP]`).
    /// Longer than [`max_tokens`](Self::max_tokens): an error naming the
    /// length, or with `truncate` the head kept and the closing special
    /// token put back.
    pub fn tokenize(&self, text: &str, truncate: bool) -> Result<Vec<i32>> {
        let tokens = self.model.tokenize(text, true);
        self.fit(tokens, truncate)
    }

    /// Tokens of `text` without special tokens (for chunking by tokens).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.model.tokenize(text, false).len()
    }

    /// Checks (or truncates) ready-made tokens the same way.
    pub fn fit(&self, mut tokens: Vec<i32>, truncate: bool) -> Result<Vec<i32>> {
        let max = self.max_tokens();
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        self.model.check_tokens(&tokens)?;
        if tokens.len() > max {
            if !truncate {
                return Err(EngineError::InputTooLong {
                    tokens: tokens.len(),
                    max,
                });
            }
            let last = tokens[tokens.len() - 1];
            tokens.truncate(max - 1);
            tokens.push(last);
        }
        Ok(tokens)
    }

    /// The vector of one text (a search query), cut to the context if longer.
    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let tokens = self.tokenize(text, true)?;
        Ok(self.embed(vec![tokens])?.pop().unwrap_or_default())
    }

    /// Embeds every input (token lists from [`tokenize`](Self::tokenize) or
    /// [`fit`](Self::fit)), blocking until done; vectors in input order.
    pub fn embed(&self, inputs: Vec<Vec<i32>>) -> Result<Vec<Vec<f32>>> {
        let max = self.max_tokens();
        if let Some(t) = inputs.iter().find(|t| t.is_empty() || t.len() > max) {
            return Err(EngineError::InputTooLong {
                tokens: t.len(),
                max,
            });
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = mpsc::channel();
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(Job { inputs, reply }).ok())
            .ok_or_else(stopped)?;
        rx.recv().map_err(|_| stopped())?
    }
}

fn stopped() -> EngineError {
    EngineError::Backend {
        during: "embedding",
        problem: "the embedding worker has stopped".into(),
    }
}

impl Drop for Embedder {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// One input of one job, waiting for its pass.
struct Item {
    job: usize,
    index: usize,
    tokens: Vec<i32>,
}

fn worker(
    model: &Model,
    cfg: &EmbedConfig,
    info: EmbeddingInfo,
    rx: &Receiver<Job>,
    ready: &Sender<Result<()>>,
    stats: &EmbedStats,
) {
    let threads = i32::try_from(cfg.threads.max(1)).unwrap_or(1);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(cfg.batch_tokens))
        .with_n_batch(cfg.batch_tokens)
        .with_n_ubatch(cfg.batch_tokens)
        .with_n_seq_max(cfg.batch_inputs)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Unspecified)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = {
        let _one = model
            .context_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        backend().and_then(|b| {
            model
                .inner
                .new_context(b, params)
                .map_err(|e| EngineError::Backend {
                    during: "creating an embedding context",
                    problem: e.to_string(),
                })
        })
    };
    let mut ctx = match ctx {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let dims = usize::try_from(model.info().n_embd).unwrap_or(0);
    let mut batch = LlamaBatch::new(cfg.batch_tokens as usize, cfg.batch_inputs as i32);
    while let Ok(first) = rx.recv() {
        // Everything already waiting joins this round.
        let mut jobs = vec![first];
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
        }
        let mut results: Vec<Result<Vec<Vec<f32>>>> = jobs
            .iter()
            .map(|j| Ok(vec![Vec::new(); j.inputs.len()]))
            .collect();
        let mut items: Vec<Item> = jobs
            .iter_mut()
            .enumerate()
            .flat_map(|(job, j)| {
                std::mem::take(&mut j.inputs)
                    .into_iter()
                    .enumerate()
                    .map(move |(index, tokens)| Item { job, index, tokens })
            })
            .collect();
        let mut start = 0;
        while start < items.len() {
            // Fill one pass: as many inputs as fit in tokens and sequences.
            let mut end = start;
            let mut used = 0usize;
            while end < items.len()
                && end - start < cfg.batch_inputs as usize
                && used + items[end].tokens.len() <= cfg.batch_tokens as usize
            {
                used += items[end].tokens.len();
                end += 1;
            }
            let pass = &mut items[start..end];
            let outcome = encode(&mut ctx, &mut batch, pass, dims, info.normalize);
            stats.passes.fetch_add(1, Ordering::Relaxed);
            stats.inputs.fetch_add(pass.len() as u64, Ordering::Relaxed);
            stats.tokens.fetch_add(used as u64, Ordering::Relaxed);
            if pass.iter().any(|i| i.job != pass[0].job) {
                stats.shared_passes.fetch_add(1, Ordering::Relaxed);
            }
            match outcome {
                Ok(vectors) => {
                    for (item, v) in pass.iter().zip(vectors) {
                        if let Ok(out) = &mut results[item.job] {
                            out[item.index] = v;
                        }
                    }
                }
                Err(e) => {
                    let problem = e.to_string();
                    for item in pass.iter() {
                        results[item.job] = Err(EngineError::Backend {
                            during: "embedding",
                            problem: problem.clone(),
                        });
                    }
                }
            }
            start = end;
        }
        for (job, result) in jobs.into_iter().zip(results) {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(result);
        }
    }
}

/// One encoder pass over `pass`, one sequence each; pooled vectors out.
fn encode(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    batch: &mut LlamaBatch,
    pass: &mut [Item],
    dims: usize,
    normalize: bool,
) -> Result<Vec<Vec<f32>>> {
    batch.clear();
    for (seq, item) in pass.iter().enumerate() {
        let seq = seq as i32;
        for (pos, &t) in item.tokens.iter().enumerate() {
            // Pooled models output one vector per sequence; every token
            // takes part in the pooling.
            batch
                .add(LlamaToken(t), pos as i32, &[seq], true)
                .map_err(|e| EngineError::Backend {
                    during: "building an embedding batch",
                    problem: e.to_string(),
                })?;
        }
    }
    ctx.encode(batch).map_err(|e| EngineError::Backend {
        during: "encoding",
        problem: e.to_string(),
    })?;
    (0..pass.len())
        .map(|seq| {
            let v = ctx
                .embeddings_seq_ith(seq as i32)
                .map_err(|e| EngineError::Backend {
                    during: "reading pooled embeddings",
                    problem: e.to_string(),
                })?;
            let mut v = v[..dims.min(v.len())].to_vec();
            if normalize {
                l2_normalize(&mut v);
            }
            Ok(v)
        })
        .collect()
}

/// Scales `v` to unit length (a zero vector stays zero).
fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

/// Cosine similarity of two vectors of the same length.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}
