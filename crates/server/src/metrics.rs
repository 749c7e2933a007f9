//! `GET /metrics`: the server's Prometheus exposition (OpenMetrics text via
//! `prometheus-client`). HTTP counts and latency per endpoint come from
//! `outpost-web`; this module adds the time-to-first-token and inter-token
//! histograms, cancelled streams, and what is read at scrape time: memory,
//! model loads, per loaded model its scheduler's counters, and the user
//! feedback taken.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use outpost_web::metrics::{Labels, Scrape};
use outpost_web::Metrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::AppState;

/// The registry behind one router's /metrics.
pub(crate) fn exposition(state: &Arc<AppState>) -> Metrics {
    let mut m = Metrics::new("outpost");
    let r = m.registry();
    r.register(
        "outpost_streams_cancelled",
        "Streams whose client went away mid-answer",
        state.metrics.streams_cancelled.clone(),
    );
    r.register(
        "outpost_time_to_first_token_seconds",
        "Request arrival to first generated token",
        state.metrics.ttft.clone(),
    );
    r.register(
        "outpost_inter_token_seconds",
        "Time between consecutive generated tokens",
        state.metrics.inter_token.clone(),
    );
    m.collect(Live(state.clone()));
    m
}

/// Values read from the registry, the schedulers and the router per scrape.
struct Live(Arc<AppState>);

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

/// Resident set size, from /proc (Linux); None elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Per-model scheduler values: (name without `_total`, help, counter?).
/// Counters of embedding models.
const EMBED_PER_MODEL: [(&str, &str); 5] = [
    ("outpost_embedding_requests", "Embedding requests served"),
    ("outpost_embedding_inputs", "Inputs embedded"),
    ("outpost_embedding_tokens", "Tokens encoded for embeddings"),
    ("outpost_embedding_passes", "Encoder passes run"),
    (
        "outpost_embedding_shared_passes",
        "Encoder passes that carried inputs of more than one request",
    ),
];

const PER_MODEL: [(&str, &str, bool); 10] = [
    (
        "outpost_queued_requests",
        "Requests waiting for a free sequence slot",
        false,
    ),
    (
        "outpost_active_sequences",
        "Sequences being generated",
        false,
    ),
    ("outpost_prompt_tokens", "Prompt tokens received", true),
    (
        "outpost_cached_tokens",
        "Prompt tokens reused from the prompt cache",
        true,
    ),
    ("outpost_generated_tokens", "Tokens generated", true),
    ("outpost_decode_steps", "Batched decode steps", true),
    (
        "outpost_drafted_tokens",
        "Tokens guessed by prompt lookup (--draft-max) and checked",
        true,
    ),
    (
        "outpost_draft_accepted_tokens",
        "Guessed tokens that greedy sampling confirmed",
        true,
    ),
    ("outpost_model_bytes", "Size of the model file", false),
    (
        "outpost_model_memory_bytes",
        "Memory the model holds: weights, KV cache, compute (estimated)",
        false,
    ),
];

impl Collector for Live {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let state = &self.0;
        let reg = &state.registry;
        let loaded = reg.loaded();
        let mut out = Scrape::new(encoder);
        if let Some(rss) = resident_bytes() {
            out.gauge(
                "outpost_resident_memory_bytes",
                "Resident memory of the server process (models are memory-mapped)",
                rss,
            )?;
        }
        out.gauge(
            "outpost_models_loaded",
            "Models in memory",
            loaded.len() as u64,
        )?;
        out.gauge(
            "outpost_memory_budget_bytes",
            "Memory all loaded models may hold (--memory-budget)",
            reg.budget(),
        )?;
        out.gauge(
            "outpost_memory_used_bytes",
            "Memory the loaded models hold (estimated)",
            reg.memory_used(),
        )?;
        let stats = &reg.stats;
        for (name, help, v) in [
            ("outpost_model_loads", "Model loads", &stats.loads),
            (
                "outpost_model_unloads",
                "Model unloads (keep-alive expiry, eviction, keep_alive 0)",
                &stats.unloads,
            ),
            (
                "outpost_queue_full",
                "Requests refused with 503 because a model's queue was full",
                &stats.queue_full,
            ),
            (
                "outpost_memory_refused",
                "Loads refused because they would exceed the memory budget",
                &stats.memory_refused,
            ),
        ] {
            out.counter(name, help, v.load(Ordering::Relaxed))?;
        }
        for (name, help, counter) in PER_MODEL {
            let rows: Vec<(Labels, u64)> = loaded
                .iter()
                .filter_map(|l| {
                    let m = &l.model;
                    let sized =
                        matches!(name, "outpost_model_memory_bytes" | "outpost_model_bytes");
                    let s = match m.scheduler() {
                        Ok(s) => s.stats(),
                        // Embedding models have their own counters below.
                        Err(_) if !sized => return None,
                        Err(_) => &outpost_engine::SchedulerStats::default(),
                    };
                    let v = match name {
                        "outpost_queued_requests" => s.queued.load(Ordering::Relaxed),
                        "outpost_active_sequences" => s.active.load(Ordering::Relaxed),
                        "outpost_prompt_tokens" => s.prompt_tokens.load(Ordering::Relaxed),
                        "outpost_cached_tokens" => s.cached_tokens.load(Ordering::Relaxed),
                        "outpost_generated_tokens" => s.generated_tokens.load(Ordering::Relaxed),
                        "outpost_decode_steps" => s.steps.load(Ordering::Relaxed),
                        "outpost_drafted_tokens" => s.drafted.load(Ordering::Relaxed),
                        "outpost_draft_accepted_tokens" => s.draft_accepted.load(Ordering::Relaxed),
                        "outpost_model_memory_bytes" => l.spec.memory.total(),
                        _ => m.model.info().file_size,
                    };
                    Some((vec![("model", m.name.clone())], v))
                })
                .collect();
            if counter {
                out.counters(name, help, &rows)?;
            } else {
                out.gauges(name, help, &rows)?;
            }
        }
        for (name, help) in EMBED_PER_MODEL {
            let rows: Vec<(Labels, u64)> = loaded
                .iter()
                .filter_map(|l| {
                    let s = l.model.embedder().ok()?.stats();
                    let v = match name {
                        "outpost_embedding_requests" => &s.requests,
                        "outpost_embedding_inputs" => &s.inputs,
                        "outpost_embedding_tokens" => &s.tokens,
                        "outpost_embedding_passes" => &s.passes,
                        _ => &s.shared_passes,
                    };
                    Some((
                        vec![("model", l.model.name.clone())],
                        v.load(Ordering::Relaxed),
                    ))
                })
                .collect();
            out.counters(name, help, &rows)?;
        }
        let rows: Vec<(Labels, u64)> = state
            .answers
            .counts()
            .map(|(s, n)| (vec![("signal", s.as_str().to_string())], n))
            .collect();
        out.counters(
            "outpost_feedback",
            "User feedback taken by POST /v1/feedback, once per answer and signal",
            &rows,
        )?;
        if let Some(router) = &state.router {
            let rows: Vec<(Labels, u64)> = router
                .decisions()
                .into_iter()
                .map(|(t, r, n)| (vec![("route", t.to_string()), ("reason", r.to_string())], n))
                .collect();
            out.counters(
                "outpost_route_decisions",
                "Requests routed, by route and reason",
                &rows,
            )?;
            for (name, help, v) in router.estimates() {
                out.gauge(&format!("outpost_{name}"), help, v)?;
            }
        }
        Ok(())
    }
}
