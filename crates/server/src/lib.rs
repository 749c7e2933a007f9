//! The on-device HTTP daemon behind `outpost serve`: an OpenAI-compatible
//! API (chat and legacy completions, streaming as SSE, models), health and
//! Prometheus metrics, over each model's batching scheduler. Handlers are
//! thin: parse (outpost-protocol) → validate → convert → engine → convert.
//!
//! ```no_run
//! # async fn demo(state: std::sync::Arc<outpost_server::AppState>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, outpost_server::app(state)).await
//! # }
//! ```

mod error;
mod openai;
mod state;

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub use error::ApiError;
pub use state::{AppState, Metrics, ServedModel, ServerConfig};

/// Serves `state` on `listener` until Ctrl-C, then lets in-flight
/// requests finish.
pub async fn run(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// The router, ready for `axum::serve`.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
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
        format!("no endpoint {} {}; see /v1/models, /v1/chat/completions, /v1/completions, /health, /metrics", req.method(), req.uri().path()),
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
        "/v1/chat/completions" | "/v1/completions" | "/v1/models" | "/health" | "/metrics" => path,
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
    if let Some(rss) = resident_bytes() {
        let _ = writeln!(out, "# HELP outpost_resident_memory_bytes Resident memory of the server process (models are memory-mapped).\n# TYPE outpost_resident_memory_bytes gauge\noutpost_resident_memory_bytes {rss}");
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
        ("model_bytes", "Size of the model file."),
    ] {
        let kind = if matches!(name, "model_bytes" | "queued_requests" | "active_sequences") {
            "gauge"
        } else {
            "counter"
        };
        let suffix = if kind == "counter" { "_total" } else { "" };
        let _ = writeln!(
            out,
            "# HELP outpost_{name}{suffix} {help}\n# TYPE outpost_{name}{suffix} {kind}"
        );
        for m in &state.models {
            let s = m.scheduler.stats();
            let v = match name {
                "prompt_tokens" => s.prompt_tokens.load(Ordering::Relaxed),
                "cached_tokens" => s.cached_tokens.load(Ordering::Relaxed),
                "generated_tokens" => s.generated_tokens.load(Ordering::Relaxed),
                "decode_steps" => s.steps.load(Ordering::Relaxed),
                "queued_requests" => s.queued.load(Ordering::Relaxed),
                "active_sequences" => s.active.load(Ordering::Relaxed),
                _ => m.model.info().file_size,
            };
            let _ = writeln!(out, "outpost_{name}{suffix}{{model=\"{}\"}} {v}", m.name);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
