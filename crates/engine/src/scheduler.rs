//! Continuous batching: many requests on one loaded model, each a llama.cpp
//! sequence in a shared batch, with a prompt cache per slot.
//!
//! One worker thread owns the llama.cpp context. Every step it takes new
//! requests into free slots, builds one batch from every generating slot's
//! next token plus as much pending prompt as fits, decodes it, and samples
//! each slot's next token. A request joins between two steps; a cancelled
//! request frees its slot at once. Each request has its own reply channel.
//!
//! Greedy sequences draft their next tokens by prompt lookup (`draft.rs`)
//! and verify them in the same step, so repetitive text takes several
//! tokens per decode.
//!
//! Prompt cache: a finished slot keeps its tokens' KV. A new request goes to
//! the free slot sharing the longest prefix with its prompt, and only the
//! rest of the prompt is computed (clients resend the whole chat history
//! every turn). `Completion::cached_tokens` says how many were reused.
//! When another slot, even a busy one, shares a longer prefix (one system
//! prompt, many users), its KV is copied in first (`borrow_prefix`).
//!
//! Prompt filling: waiting prompts are computed in admission order, a
//! group per step (`prefill_rows`), so on hardware where a prompt row costs
//! about as much in any batch the first requests start generating before
//! the last prompts are computed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::draft::{
    lookup, DraftBudget, Explore, Shadow, StepCost, StepTimes, FREE_ROWS, MAX_DRAFT,
};
use crate::error::{EngineError, Result};
use crate::generate::{backend_err, default_threads, ContextOptions};
use crate::model::Model;
use crate::request::{CancelToken, Completion, FinishReason, GenerateRequest, Piece};
use crate::sequence::Sequence;
use crate::step_cost::{measure_step_cost, prefill_rows};

/// How a [`Scheduler`] is shaped.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Sequences decoded together (and prompt-cache slots).
    pub slots: u32,
    /// Context per sequence; None = the training context capped at
    /// [`crate::DEFAULT_MAX_CTX`].
    pub n_ctx_per_slot: Option<u32>,
    pub threads: Option<u32>,
    /// Most tokens decoded per step.
    pub n_batch: u32,
    /// Reuse cached prompt prefixes.
    pub prompt_cache: bool,
    /// Most tokens a greedy sequence drafts per step (prompt lookup), at
    /// most [`MAX_DRAFT`] (the default); 0 turns drafting off. Drafts are
    /// decoded only while they pay on this model and machine: the
    /// scheduler times a 1-row and a wide step when it starts, and each
    /// sequence's guesses must be confirmed often enough (see `draft.rs`).
    pub draft_max: usize,
    /// Decode drafts whether or not they pay (for tests and measurements).
    pub draft_always: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            slots: 4,
            n_ctx_per_slot: None,
            threads: None,
            n_batch: 512,
            prompt_cache: true,
            draft_max: MAX_DRAFT,
            draft_always: false,
        }
    }
}

/// What a request's reply channel carries, in order: `Started`, any number
/// of `Piece`s, then exactly one `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    /// The request has a slot; `cached_tokens` of its prompt come from cache.
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
    },
    Piece(Piece),
    Done(Completion),
    Failed(EngineError),
}

/// A submitted request: its events and the way to cancel it.
#[derive(Debug)]
pub struct RequestHandle {
    pub events: Receiver<Event>,
    pub cancel: CancelToken,
}

impl RequestHandle {
    /// Waits for the end, calling `on_piece` for every streamed piece.
    pub fn wait(self, mut on_piece: impl FnMut(&Piece)) -> Result<Completion> {
        for ev in self.events.iter() {
            match ev {
                Event::Started { .. } => {}
                Event::Piece(p) => on_piece(&p),
                Event::Done(c) => return Ok(c),
                Event::Failed(e) => return Err(e),
            }
        }
        Err(EngineError::Backend {
            during: "waiting for a result",
            problem: "the scheduler stopped".into(),
        })
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub requests: AtomicU64,
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens taken from the prompt cache instead of computed.
    pub cached_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// Decode calls (steps).
    pub steps: AtomicU64,
    /// Drafted tokens decoded, and those greedy sampling then confirmed.
    pub drafted: AtomicU64,
    pub draft_accepted: AtomicU64,
    /// Requests waiting for a free slot (a gauge, updated every step).
    pub queued: AtomicU64,
    /// Slots serving a request (a gauge, updated every step).
    pub active: AtomicU64,
    /// The step cost measured at start (microseconds; 0 if the probe
    /// failed): `fixed + per_row * rows`.
    pub step_fixed_us: AtomicU64,
    pub step_row_us: AtomicU64,
}

struct Submission {
    req: GenerateRequest,
    tokens: Vec<i32>,
    events: Sender<Event>,
    cancel: CancelToken,
}

/// Many requests, one model, one batch. Dropping it stops the worker.
pub struct Scheduler {
    tx: Option<Sender<Submission>>,
    worker: Option<JoinHandle<()>>,
    model: Arc<Model>,
    n_ctx_per_slot: u32,
    stats: Arc<SchedulerStats>,
}

impl Scheduler {
    /// Starts the worker thread and its llama.cpp context.
    pub fn start(model: Arc<Model>, cfg: SchedulerConfig) -> Result<Scheduler> {
        if model.info().embedding.is_some() {
            return Err(EngineError::NotGenerative {
                model: model.display_name(),
            });
        }
        if cfg.slots == 0 || cfg.slots > 256 {
            return Err(EngineError::InvalidParam {
                name: "slots",
                value: cfg.slots.to_string(),
                expected: "between 1 and 256",
            });
        }
        if cfg.draft_max > MAX_DRAFT {
            return Err(EngineError::InvalidParam {
                name: "draft_max",
                value: cfg.draft_max.to_string(),
                expected: "between 0 (no drafting) and 8",
            });
        }
        let n_ctx_per_slot = model.context_size(cfg.n_ctx_per_slot)?;
        let stats = Arc::new(SchedulerStats::default());
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker = {
            let model = model.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("outpost-scheduler".into())
                .spawn(move || worker(&model, &cfg, n_ctx_per_slot, &rx, &ready_tx, &stats))
                .map_err(|e| backend_err("starting the scheduler thread", e))?
        };
        ready_rx.recv().map_err(|_| EngineError::Backend {
            during: "starting the scheduler",
            problem: "the worker thread died".into(),
        })??;
        Ok(Scheduler {
            tx: Some(tx),
            worker: Some(worker),
            model,
            n_ctx_per_slot,
            stats,
        })
    }

    /// Context available to each request (prompt + generated tokens).
    pub fn n_ctx_per_slot(&self) -> u32 {
        self.n_ctx_per_slot
    }

    /// The counters.
    pub fn stats(&self) -> &SchedulerStats {
        &self.stats
    }

    /// Queues a request. Bad parameters and prompts that cannot fit are
    /// refused here, before they take a slot.
    pub fn submit(&self, req: GenerateRequest) -> Result<RequestHandle> {
        let tokens = self.model.prepare(&req, self.n_ctx_per_slot)?;
        let (events, rx) = mpsc::channel();
        let cancel = CancelToken::new();
        let sub = Submission {
            req,
            tokens,
            events,
            cancel: cancel.clone(),
        };
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(sub).ok())
            .ok_or_else(|| EngineError::Backend {
                during: "submitting a request",
                problem: "the scheduler has stopped".into(),
            })?;
        Ok(RequestHandle { events: rx, cancel })
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// A request being served.
struct Active {
    tokens: Vec<i32>,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    seq: Sequence,
    /// Token sampled last, to decode next.
    next: Option<LlamaToken>,
    events: Sender<Event>,
    cancel: CancelToken,
    cached_tokens: usize,
    started: Instant,
    prompt_ms: f64,
    /// Admission order: prompts are filled first come, first served.
    order: u64,
}

struct Slot {
    /// Tokens whose KV this sequence holds, in position order.
    kv: Vec<i32>,
    active: Option<Active>,
    /// Batch row whose logits belong to this slot after the current decode.
    logits_at: Option<i32>,
    /// Drafted tokens in the current batch and their rows.
    drafts: Vec<(i32, i32)>,
    budget: DraftBudget,
    /// A guess not decoded, checked against the next tokens.
    shadow: Shadow,
}

/// When greedy sequences decode their guesses.
enum Gate {
    Never,
    Always,
    WhenItPays(StepCost),
}

/// The llama.cpp context a scheduler with `cfg` runs on.
pub(crate) fn context_options(
    model: &Model,
    cfg: &SchedulerConfig,
    n_ctx_per_slot: u32,
) -> ContextOptions {
    ContextOptions {
        n_ctx: n_ctx_per_slot * cfg.slots,
        threads: cfg.threads.unwrap_or_else(default_threads),
        n_batch: cfg.n_batch.max(cfg.slots),
        n_seq: cfg.slots,
        // Each sequence gets its own n_ctx_per_slot cells: attention then
        // spans one sequence's cells, not every sequence's.
        kv_unified: false,
        swa_full: cfg.prompt_cache && model.info().sliding_window.is_some(),
    }
}

fn worker(
    model: &Model,
    cfg: &SchedulerConfig,
    n_ctx_per_slot: u32,
    rx: &Receiver<Submission>,
    ready: &Sender<Result<()>>,
    stats: &SchedulerStats,
) {
    let mut ctx = match model.new_context_with(&context_options(model, cfg, n_ctx_per_slot)) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let n_batch = ctx.n_batch() as usize;
    let mut batch = LlamaBatch::new(n_batch, cfg.slots as i32);
    // Rejected drafts must be dropped from the KV cache: recurrent state
    // cannot lose a suffix, so those models do not draft.
    let draft_max = if model.inner.is_recurrent() || model.inner.is_hybrid() {
        0
    } else {
        cfg.draft_max
    };
    // The step cost at start: drafting weighs guesses by it until steps are
    // timed, and prompt filling groups short prompts by it.
    let cost = measure_step_cost(&mut ctx, &mut batch);
    if let Some(c) = cost {
        stats
            .step_fixed_us
            .store((c.fixed * 1e6) as u64, Ordering::Relaxed);
        stats
            .step_row_us
            .store((c.per_row * 1e6) as u64, Ordering::Relaxed);
    }
    let gate = match cost {
        _ if draft_max == 0 => Gate::Never,
        _ if cfg.draft_always => Gate::Always,
        Some(c) => Gate::WhenItPays(c),
        None => Gate::Never,
    };
    let prefill_rows = prefill_rows(cost, n_batch);
    let _ = ready.send(Ok(()));
    let mut times = StepTimes::default();
    let mut slots: Vec<Slot> = (0..cfg.slots)
        .map(|_| Slot {
            kv: Vec::new(),
            active: None,
            logits_at: None,
            drafts: Vec::new(),
            budget: DraftBudget::new(draft_max),
            shadow: Shadow::default(),
        })
        .collect();
    let mut queue: VecDeque<Submission> = VecDeque::new();
    let mut open = true;
    let mut admitted = 0u64;
    // Another slot's prefix is copied in as a whole stream and trimmed
    // after, which recurrent state cannot do.
    let can_borrow = !(model.inner.is_recurrent() || model.inner.is_hybrid());
    loop {
        // 1. Take new requests: block only when there is nothing to do.
        let busy = slots.iter().any(|s| s.active.is_some());
        if !busy && queue.is_empty() {
            stats.queued.store(0, Ordering::Relaxed);
            stats.active.store(0, Ordering::Relaxed);
            match rx.recv() {
                Ok(s) => queue.push_back(s),
                Err(_) => return,
            }
        }
        while open {
            match rx.try_recv() {
                Ok(s) => queue.push_back(s),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && queue.is_empty() && slots.iter().all(|s| s.active.is_none()) {
            return;
        }
        // 2. Give queued requests free slots (longest cached prefix first).
        while let Some(sub) = queue.pop_front() {
            if sub.cancel.is_cancelled() {
                finish_cancelled(sub, stats);
                continue;
            }
            let Some(i) = pick_slot(&slots, &sub.tokens, cfg.prompt_cache) else {
                queue.push_front(sub);
                break;
            };
            slots[i].budget = DraftBudget::new(draft_max);
            slots[i].shadow.clear();
            if cfg.prompt_cache && can_borrow {
                borrow_prefix(&mut ctx, &mut slots, i, &sub.tokens);
            }
            admitted += 1;
            admit(
                model,
                &mut ctx,
                &mut slots[i],
                i as i32,
                sub,
                cfg.prompt_cache,
                admitted,
                stats,
            );
        }
        // 3. Drop cancelled or abandoned requests: their slots free at once.
        for slot in &mut slots {
            if slot
                .active
                .as_ref()
                .is_some_and(|a| a.cancel.is_cancelled())
            {
                finish(slot, FinishReason::Cancelled, n_ctx_per_slot, stats);
            }
        }
        stats.queued.store(queue.len() as u64, Ordering::Relaxed);
        stats.active.store(
            slots.iter().filter(|s| s.active.is_some()).count() as u64,
            Ordering::Relaxed,
        );
        // 4. One batch: each generating slot's next token, then prompt chunks.
        batch.clear();
        let mut generating = slots
            .iter()
            .filter(|s| s.active.as_ref().is_some_and(|a| a.next.is_some()))
            .count();
        let token_rows = generating;
        // Guessed rows in this step so far, and the tokens they are
        // expected to confirm.
        let (mut guessed, mut gain) = (0usize, 0.0f64);
        let explore = match gate {
            Gate::WhenItPays(_) if token_rows > 0 => times.explore(token_rows),
            _ => Explore::No,
        };
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.logits_at = None;
            slot.drafts.clear();
            let Some(a) = slot.active.as_ref() else {
                continue;
            };
            let Some(tok) = a.next else { continue };
            slot.logits_at = Some(batch.n_tokens());
            let _ = batch.add(tok, slot.kv.len() as i32, &[i as i32], true);
            slot.kv.push(tok.0);
            generating -= 1;
            if !a.seq.greedy || slot.shadow.is_pending() || matches!(gate, Gate::Never) {
                continue;
            }
            // Room: the context (one cell stays free for the next token)
            // and FREE_ROWS (every other generating slot needs a row).
            let room = (n_ctx_per_slot as usize)
                .saturating_sub(slot.kv.len() + 2)
                .min(FREE_ROWS.saturating_sub(batch.n_tokens() as usize + generating));
            let k = slot.budget.now();
            let decode_guesses = k.min(room) > 0
                && match (&gate, explore) {
                    (_, Explore::Without) => false,
                    (_, Explore::With) => slot.budget.rate() > 0.0,
                    (Gate::WhenItPays(cost), Explore::No) => times.pays(
                        cost,
                        slot.budget.rate(),
                        token_rows,
                        guessed,
                        gain,
                        k.min(room),
                    ),
                    _ => true,
                };
            if !decode_guesses {
                // Not decoded: checked against the next tokens instead.
                let guess = lookup(&slot.kv, k);
                if !guess.is_empty() {
                    slot.shadow.start(guess);
                }
                continue;
            }
            let guess = lookup(&slot.kv, k.min(room)).to_vec();
            guessed += guess.len();
            gain += slot.budget.rate() * guess.len() as f64;
            for d in guess {
                slot.drafts.push((d, batch.n_tokens()));
                let _ = batch.add(LlamaToken(d), slot.kv.len() as i32, &[i as i32], true);
                slot.kv.push(d);
            }
        }
        // Prompts in admission order, a prompt begun first; once a step
        // holds `prefill_rows` prompt rows no further prompt joins it, so
        // the first requests get their first token without waiting for
        // every later prompt (see `prefill_rows`).
        let mut pending: Vec<(u64, usize)> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let a = s.active.as_ref()?;
                (a.prefilled < a.tokens.len()).then_some((a.order, i))
            })
            .collect();
        pending.sort_unstable();
        let mut prompt_rows = 0;
        for (_, i) in pending {
            let room = n_batch - batch.n_tokens() as usize;
            if room == 0 || prompt_rows >= prefill_rows {
                break;
            }
            let slot = &mut slots[i];
            let Some(a) = slot.active.as_mut() else {
                continue;
            };
            let take = room.min(a.tokens.len() - a.prefilled);
            for k in 0..take {
                let t = a.tokens[a.prefilled + k];
                let last = a.prefilled + k + 1 == a.tokens.len();
                if last {
                    slot.logits_at = Some(batch.n_tokens());
                }
                let _ = batch.add(LlamaToken(t), slot.kv.len() as i32, &[i as i32], last);
                slot.kv.push(t);
            }
            a.prefilled += take;
            prompt_rows += take;
        }
        if batch.n_tokens() == 0 {
            continue;
        }
        stats.steps.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let decoded = ctx.decode(&mut batch);
        ctx.synchronize();
        // A generating step (no prompt rows) is timed by its shape.
        if decoded.is_ok() && batch.n_tokens() as usize == token_rows + guessed {
            times.record(token_rows, guessed, started.elapsed().as_secs_f64());
        }
        if let Err(e) = decoded {
            // Nothing of this batch can be trusted: fail its requests.
            for (i, slot) in slots.iter_mut().enumerate() {
                if slot.logits_at.is_some() || slot.active.as_ref().is_some_and(|a| a.prefilled > 0)
                {
                    if let Some(a) = slot.active.take() {
                        let _ = a
                            .events
                            .send(Event::Failed(backend_err("decoding a batch", &e)));
                    }
                    let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
                    slot.kv.clear();
                }
            }
            continue;
        }
        // 5. Sample each slot whose logits are ready; a drafted token
        //    counts only if sampling picks it, then its own logits give
        //    the next sample.
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(mut idx) = slot.logits_at else {
                continue;
            };
            let drafts = std::mem::take(&mut slot.drafts);
            let base = slot.kv.len() - drafts.len();
            let Some(a) = slot.active.as_mut() else {
                continue;
            };
            if a.prompt_ms == 0.0 {
                a.prompt_ms = a.started.elapsed().as_secs_f64() * 1e3;
            }
            let events = a.events.clone();
            let mut alive = true;
            let mut accepted = 0;
            let outcome = loop {
                let step = a.seq.step(
                    model,
                    &ctx,
                    idx,
                    base + accepted,
                    n_ctx_per_slot,
                    &mut |p| {
                        alive &= events.send(Event::Piece(p)).is_ok();
                    },
                );
                match step {
                    Ok(tok) if alive => match drafts.get(accepted) {
                        Some(&(d, row)) if d == tok.0 => {
                            idx = row;
                            accepted += 1;
                        }
                        _ => break Ok(tok),
                    },
                    Ok(_) => break Err(FinishReason::Cancelled),
                    Err(reason) => break Err(reason),
                }
            };
            if !drafts.is_empty() {
                stats
                    .drafted
                    .fetch_add(drafts.len() as u64, Ordering::Relaxed);
                stats
                    .draft_accepted
                    .fetch_add(accepted as u64, Ordering::Relaxed);
                slot.budget.update(drafts.len(), accepted);
            }
            if accepted < drafts.len() {
                // The rejected guesses' KV goes; what was confirmed stays.
                let keep = base + accepted;
                if ctx
                    .kv_cache_seq_rm(i as i32, Some(keep as u32), None)
                    .is_err()
                {
                    let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
                    slot.kv.clear();
                    if let Some(a) = slot.active.take() {
                        let _ = a.events.send(Event::Failed(EngineError::Backend {
                            during: "dropping rejected draft tokens",
                            problem: "this model's memory cannot drop a suffix".into(),
                        }));
                    }
                    continue;
                }
                slot.kv.truncate(keep);
            }
            match outcome {
                Ok(tok) => {
                    if let Some((guessed, confirmed)) = slot.shadow.next(tok.0) {
                        slot.budget.update(guessed, confirmed);
                    }
                    if let Some(a) = slot.active.as_mut() {
                        a.next = Some(tok);
                    }
                }
                Err(reason) => finish(slot, reason, n_ctx_per_slot, stats),
            }
        }
    }
}

/// The free slot for `tokens`: the longest shared cached prefix, else the
/// emptiest one.
fn pick_slot(slots: &[Slot], tokens: &[i32], prompt_cache: bool) -> Option<usize> {
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.active.is_none())
        .max_by_key(|(_, s)| {
            let shared = if prompt_cache {
                common_prefix(&s.kv, tokens)
            } else {
                0
            };
            (shared, std::cmp::Reverse(s.kv.len()))
        })
        .map(|(i, _)| i)
}

fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Fewest prompt tokens another slot must save before its KV is copied:
/// a copy moves the whole per-sequence cache, not just the prefix.
const BORROW_MIN: usize = 16;

/// Gives slot `i` the KV of whichever other slot (busy or free) shares the
/// longest prefix with `tokens`, when that saves at least [`BORROW_MIN`]
/// tokens over what slot `i` holds: concurrent requests with one system
/// prompt then compute it once, not once per slot. `admit` then trims the
/// copy to the shared prefix.
fn borrow_prefix(ctx: &mut LlamaContext<'_>, slots: &mut [Slot], i: usize, tokens: &[i32]) {
    let usable = tokens.len().saturating_sub(1);
    let own = common_prefix(&slots[i].kv, tokens).min(usable);
    let Some((j, shared)) = slots
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(j, s)| (j, common_prefix(&s.kv, tokens).min(usable)))
        .max_by_key(|&(j, n)| (n, std::cmp::Reverse(j)))
    else {
        return;
    };
    if shared < own + BORROW_MIN {
        return;
    }
    // llama.cpp copies the cells' bookkeeping now and the buffers before
    // the next decode, before that decode writes anything.
    if ctx
        .copy_kv_cache_seq(j as i32, i as i32, None, None)
        .is_ok()
    {
        slots[i].kv = slots[j].kv.clone();
    }
}

#[allow(clippy::too_many_arguments)]
fn admit(
    model: &Model,
    ctx: &mut LlamaContext<'_>,
    slot: &mut Slot,
    seq_id: i32,
    sub: Submission,
    prompt_cache: bool,
    order: u64,
    stats: &SchedulerStats,
) {
    // Keep the shared prefix, but always compute at least the last prompt
    // token: its logits give the first generated token.
    let mut keep = if prompt_cache {
        common_prefix(&slot.kv, &sub.tokens).min(sub.tokens.len() - 1)
    } else {
        0
    };
    if ctx
        .kv_cache_seq_rm(seq_id, Some(keep as u32), None)
        .is_err()
    {
        // This memory cannot drop a suffix (e.g. recurrent state): start over.
        let _ = ctx.clear_kv_cache_seq(Some(seq_id as u32), None, None);
        keep = 0;
    }
    slot.kv.truncate(keep);
    stats.requests.fetch_add(1, Ordering::Relaxed);
    stats
        .prompt_tokens
        .fetch_add(sub.tokens.len() as u64, Ordering::Relaxed);
    stats
        .cached_tokens
        .fetch_add(keep as u64, Ordering::Relaxed);
    let _ = sub.events.send(Event::Started {
        prompt_tokens: sub.tokens.len(),
        cached_tokens: keep,
    });
    let seq = match Sequence::new(model, &sub.req, &sub.tokens) {
        Ok(s) => s,
        Err(e) => {
            let _ = sub.events.send(Event::Failed(e));
            return;
        }
    };
    slot.active = Some(Active {
        prefilled: keep,
        tokens: sub.tokens,
        seq,
        next: None,
        events: sub.events,
        cancel: sub.cancel,
        cached_tokens: keep,
        started: Instant::now(),
        prompt_ms: 0.0,
        order,
    });
}

fn finish(slot: &mut Slot, reason: FinishReason, n_ctx: u32, stats: &SchedulerStats) {
    let Some(mut a) = slot.active.take() else {
        return;
    };
    // A prompt cut short by cancellation leaves a partial prefix in the KV:
    // still valid for reuse, since kv lists exactly what was decoded.
    let events = a.events.clone();
    a.seq.flush(&mut |p| {
        let _ = events.send(Event::Piece(p));
    });
    stats
        .generated_tokens
        .fetch_add(a.seq.generated.len() as u64, Ordering::Relaxed);
    let prompt_ms = if a.prompt_ms == 0.0 {
        a.started.elapsed().as_secs_f64() * 1e3
    } else {
        a.prompt_ms
    };
    let _ = a.events.send(Event::Done(Completion {
        text: a.seq.text().to_string(),
        tokens: std::mem::take(&mut a.seq.generated),
        prompt_tokens: a.tokens.len(),
        cached_tokens: a.cached_tokens,
        finish_reason: reason,
        seed: a.seq.seed,
        n_ctx,
        prompt_ms,
        generate_ms: a.started.elapsed().as_secs_f64() * 1e3 - prompt_ms,
    }));
}

fn finish_cancelled(sub: Submission, stats: &SchedulerStats) {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let _ = sub.events.send(Event::Done(Completion {
        text: String::new(),
        tokens: Vec::new(),
        prompt_tokens: sub.tokens.len(),
        cached_tokens: 0,
        finish_reason: FinishReason::Cancelled,
        seed: sub.req.sampling.seed.unwrap_or(0),
        n_ctx: 0,
        prompt_ms: 0.0,
        generate_ms: 0.0,
    }));
}
