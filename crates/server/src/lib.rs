//! The on-device HTTP daemon behind `outpost serve`: OpenAI-compatible
//! (`/v1`: chat and legacy completions, streaming as SSE, models) and
//! Ollama-compatible (`/api`: chat, generate, tags, show, ps, version,
//! streaming as NDJSON) APIs, health and Prometheus metrics, over each
//! model's batching scheduler. Models load on first use and unload after
//! their keep-alive, within a memory budget (see [`registry`]). Handlers
//! are thin: parse (outpost-protocol) → validate → convert → engine →
//! convert.
//!
//! ```no_run
//! # async fn demo(state: std::sync::Arc<outpost_server::AppState>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! outpost_server::run(listener, state).await
//! # }
//! ```

mod device;
mod error;
mod flow;
mod ollama;
mod openai;
pub mod registry;
mod reqlog;
mod route;
mod state;

use std::fmt::Write;
use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub use device::StoreLink;
pub use error::ApiError;
pub use registry::{ModelSpec, Registry, ReloadReport};
pub use reqlog::RequestLog;
pub use state::{default_memory_budget, AppState, Metrics, ServedModel, ServerConfig};

/// Serves `state` on `listener` until SIGTERM or Ctrl-C, then shuts down
/// gracefully: stops accepting connections, lets requests in flight run
/// for the grace period, cancels what is left (streams end with a final
/// chunk), and returns. A second signal skips the rest of the grace period.
pub async fn run(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    let reaper = {
        let registry = state.registry.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                registry.reap().await;
            }
        })
    };
    let hangup = tokio::spawn(reload_on_sighup(state.clone()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .into_future();
    let mut server = tokio::spawn(server);
    tokio::select! {
        r = &mut server => return flatten(r),
        _ = shutdown_signal() => {}
    }
    hangup.abort();
    state.registry.close();
    let _ = stop_tx.send(true);
    let grace = state.config.grace;
    eprintln!(
        "shutting down: no new connections; {} requests in flight get {:.1} s to finish (signal again to stop them now)",
        state.registry.in_flight(),
        grace.as_secs_f64()
    );
    tokio::select! {
        r = &mut server => { reaper.abort(); return flatten(r) }
        _ = tokio::time::sleep(grace) => {}
        _ = shutdown_signal() => {}
    }
    let n = state.registry.cancel_all();
    eprintln!("cancelled {n} requests still running");
    let r = tokio::select! {
        r = &mut server => flatten(r),
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            eprintln!("some connections did not close within 5 s; leaving them");
            Ok(())
        }
    };
    reaper.abort();
    r
}

fn flatten(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    r.map_err(std::io::Error::other)?
}

/// With `--store`, SIGHUP re-reads the store (like `POST /admin/reload`).
async fn reload_on_sighup(state: Arc<AppState>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            if let Err(e) = device::reload(&state).await {
                eprintln!("SIGHUP: reload refused, the models served stay as they were: {e}");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

/// SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The router, ready for `axum::serve`.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/tags", get(ollama::tags))
        .route("/api/show", post(ollama::show))
        .route("/api/ps", get(ollama::ps))
        .route("/api/version", get(ollama::version))
        .route("/", get(root))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(device::reload_handler))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            reqlog::log_body,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Ollama clients probe `GET /`.
async fn root() -> &'static str {
    "Outpost is running (OpenAI API at /v1, Ollama API at /api)"
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        None,
        format!("no endpoint {} {}; see /v1/models, /v1/chat/completions, /v1/completions, /api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version, /health, /metrics", req.method(), req.uri().path()),
    )
}

/// `Authorization: Bearer KEY` on everything but /health, when a key is set.
async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        let ok = req.uri().path() == "/health"
            || req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|k| k == key);
        if !ok {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                None,
                "missing or wrong API key: send Authorization: Bearer <key>",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Counts requests by endpoint and status for /metrics.
async fn count(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let endpoint = match path.as_str() {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/models"
        | "/health"
        | "/metrics"
        | "/api/chat"
        | "/api/generate"
        | "/api/tags"
        | "/api/show"
        | "/api/ps"
        | "/api/version"
        | "/" => path,
        _ => "other".to_string(),
    };
    let res = next.run(req).await;
    state.metrics.count(&endpoint, res.status().as_u16());
    res
}

/// Resident set size, from /proc (Linux); None elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Prometheus text format.
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut out = String::new();
    let loaded = state.registry.loaded();
    let _ = writeln!(out, "# HELP outpost_requests_total HTTP requests by endpoint and status.\n# TYPE outpost_requests_total counter");
    if let Ok(m) = state.metrics.requests.lock() {
        for ((endpoint, status), n) in m.iter() {
            let _ = writeln!(
                out,
                "outpost_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP outpost_streams_cancelled_total Streams whose client went away mid-answer.\n# TYPE outpost_streams_cancelled_total counter\noutpost_streams_cancelled_total {}",
        state.metrics.streams_cancelled.load(Ordering::Relaxed)
    );
    out.push_str(&state.metrics.ttft.render(
        "outpost_time_to_first_token_seconds",
        "Request arrival to first generated token.",
    ));
    out.push_str(&state.metrics.inter_token.render(
        "outpost_inter_token_seconds",
        "Time between consecutive generated tokens.",
    ));
    if let Some(router) = &state.router {
        out.push_str(&router.render_metrics());
    }
    if let Some(rss) = resident_bytes() {
        let _ = writeln!(out, "# HELP outpost_resident_memory_bytes Resident memory of the server process (models are memory-mapped).\n# TYPE outpost_resident_memory_bytes gauge\noutpost_resident_memory_bytes {rss}");
    }
    let reg = &state.registry;
    for (name, help, kind, v) in [
        (
            "models_loaded",
            "Models in memory.",
            "gauge",
            loaded.len() as u64,
        ),
        (
            "memory_budget_bytes",
            "Memory all loaded models may hold (--memory-budget).",
            "gauge",
            reg.budget(),
        ),
        (
            "memory_used_bytes",
            "Memory the loaded models hold (estimated).",
            "gauge",
            reg.memory_used(),
        ),
        (
            "model_loads_total",
            "Model loads.",
            "counter",
            reg.stats.loads.load(Ordering::Relaxed),
        ),
        (
            "model_unloads_total",
            "Model unloads (keep-alive expiry, eviction, keep_alive 0).",
            "counter",
            reg.stats.unloads.load(Ordering::Relaxed),
        ),
        (
            "queue_full_total",
            "Requests refused with 503 because a model's queue was full.",
            "counter",
            reg.stats.queue_full.load(Ordering::Relaxed),
        ),
        (
            "memory_refused_total",
            "Loads refused because they would exceed the memory budget.",
            "counter",
            reg.stats.memory_refused.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP outpost_{name} {help}\n# TYPE outpost_{name} {kind}\noutpost_{name} {v}"
        );
    }
    for (name, help) in [
        (
            "queued_requests",
            "Requests waiting for a free sequence slot.",
        ),
        ("active_sequences", "Sequences being generated."),
        ("prompt_tokens", "Prompt tokens received."),
        (
            "cached_tokens",
            "Prompt tokens reused from the prompt cache.",
        ),
        ("generated_tokens", "Tokens generated."),
        ("decode_steps", "Batched decode steps."),
        (
            "drafted_tokens",
            "Tokens guessed by prompt lookup (--draft-max) and checked.",
        ),
        (
            "draft_accepted_tokens",
            "Guessed tokens that greedy sampling confirmed.",
        ),
        ("model_bytes", "Size of the model file."),
        (
            "model_memory_bytes",
            "Memory the model holds: weights, KV cache, compute (estimated).",
        ),
    ] {
        let kind = if matches!(
            name,
            "model_bytes" | "model_memory_bytes" | "queued_requests" | "active_sequences"
        ) {
            "gauge"
        } else {
            "counter"
        };
        let suffix = if kind == "counter" { "_total" } else { "" };
        let _ = writeln!(
            out,
            "# HELP outpost_{name}{suffix} {help}\n# TYPE outpost_{name}{suffix} {kind}"
        );
        for l in &loaded {
            let m = &l.model;
            let s = m.scheduler.stats();
            let v = match name {
                "prompt_tokens" => s.prompt_tokens.load(Ordering::Relaxed),
                "cached_tokens" => s.cached_tokens.load(Ordering::Relaxed),
                "generated_tokens" => s.generated_tokens.load(Ordering::Relaxed),
                "decode_steps" => s.steps.load(Ordering::Relaxed),
                "drafted_tokens" => s.drafted.load(Ordering::Relaxed),
                "draft_accepted_tokens" => s.draft_accepted.load(Ordering::Relaxed),
                "queued_requests" => s.queued.load(Ordering::Relaxed),
                "active_sequences" => s.active.load(Ordering::Relaxed),
                "model_memory_bytes" => l.spec.memory.total(),
                _ => m.model.info().file_size,
            };
            let _ = writeln!(out, "outpost_{name}{suffix}{{model=\"{}\"}} {v}", m.name);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
