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

mod answers;
mod device;
mod dispatch;
mod embeddings;
mod error;
mod feedback;
mod flow;
mod metrics;
mod ollama;
mod openai;
pub mod openapi;
mod ops;
pub mod registry;
mod reqlog;
mod retrieve;
mod route;
mod route_cost;
mod served;
mod state;
mod tools;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub use device::{StoreLink, Unsealer};
pub use error::{ApiError, ServerError};
pub use registry::{ModelSpec, Registry, ReloadReport};
pub use reqlog::RequestLog;
pub use served::{default_memory_budget, ServedModel, ServerConfig};
pub use state::{AppState, Metrics};

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
    let server = axum::serve(outpost_web::no_delay(listener), app(state.clone()))
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
    tracing::info!(
        in_flight = state.registry.in_flight(),
        grace_s = grace.as_secs_f64(),
        "shutting down: no new connections; requests in flight get the grace period to finish (signal again to stop them now)"
    );
    tokio::select! {
        r = &mut server => { reaper.abort(); return flatten(r) }
        _ = tokio::time::sleep(grace) => {}
        _ = shutdown_signal() => {}
    }
    let n = state.registry.cancel_all();
    tracing::info!(cancelled = n, "cancelled {n} requests still running");
    let r = tokio::select! {
        r = &mut server => flatten(r),
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::warn!("some connections did not close within 5 s; leaving them");
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
            if let Err(e) = ops::reload(&state).await {
                tracing::error!(error = %e, "SIGHUP: reload refused, the models served stay as they were");
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
    let metrics = Arc::new(metrics::exposition(&state));
    let router = Router::new()
        .route("/v1/chat/completions", post(dispatch::chat))
        .route("/v1/completions", post(dispatch::completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/embeddings", post(embeddings::openai))
        .route("/v1/feedback", post(feedback::feedback))
        .route("/api/embed", post(embeddings::ollama))
        .route("/api/embeddings", post(embeddings::legacy))
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/tags", get(ollama::tags))
        .route("/api/show", post(ollama::show))
        .route("/api/ps", get(ollama::ps))
        .route("/api/version", get(ollama::version))
        .route("/", get(root))
        .route("/health", get(health))
        .route(
            "/metrics",
            get(outpost_web::metrics::serve).with_state(metrics.clone()),
        )
        .merge(outpost_web::docs::routes(&openapi::document()))
        .route("/admin/reload", post(ops::reload_handler))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(state.clone(), ops::log_body))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    outpost_web::observe(router, metrics)
}

/// `GET /health`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always "ok".
    status: String,
}

/// Ollama clients probe `GET /`.
#[utoipa::path(get, path = "/", tag = "ops", summary = "Is it running? (Ollama clients probe this)",
    responses((status = 200, description = "A line of text", body = String, content_type = "text/plain")))]
async fn root() -> &'static str {
    "Outpost is running (OpenAI API at /v1, Ollama API at /api)"
}

#[utoipa::path(get, path = "/health", tag = "ops", summary = "Liveness (no API key needed)",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        None,
        format!("no endpoint {} {}; see /v1/models, /v1/chat/completions, /v1/completions, /api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version, /health, /metrics, /openapi.json, /docs", req.method(), req.uri().path()),
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
