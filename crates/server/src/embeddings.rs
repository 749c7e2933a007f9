//! The embedding endpoints: OpenAI `/v1/embeddings`, Ollama `/api/embed`
//! and the legacy `/api/embeddings`. Parse → validate → tokenize (checking
//! each input against the model's context) → the model's embedding worker,
//! which batches concurrent requests into shared encoder passes. Embeddings
//! never go through the router: the text stays on the device.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use outpost_protocol::embeddings::{
    EmbedRequest, EmbedResponse, Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector, Input, LegacyEmbeddingsRequest, LegacyEmbeddingsResponse,
};
use outpost_protocol::telemetry::{EmbeddingRequest as Telemetry, EventData};
#[allow(unused_imports)] // named in the OpenAPI attributes only
use outpost_protocol::{ollama::ErrorResponse, ApiErrorBody};

use crate::error::ApiError;
use crate::openai::{parse, Body};
use crate::registry::Lease;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// Tokenizes and embeds on a blocking thread; vectors and token counts.
/// Under `serve --store` each request that reached the encoder appends an
/// `embedding` event (inputs, tokens, latency; never text) to the spool;
/// one refused for its input (a 4xx) does not.
async fn run(
    state: &AppState,
    lease: Lease,
    inputs: Vec<Input>,
    truncate: bool,
) -> Result<(Vec<Vec<f32>>, u64), ApiError> {
    let link = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let embedder = lease.model().embedder()?;
        let mut tokens = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            let t = match input {
                Input::Text(t) => embedder.tokenize(&t, truncate),
                Input::Tokens(t) => embedder.fit(t, truncate),
            }
            .map_err(|e| ApiError::from(e).at_input(i))?;
            tokens.push(t);
        }
        let count: u64 = tokens.iter().map(|t| t.len() as u64).sum();
        let n = tokens.len() as u32;
        let vectors = embedder.embed(tokens);
        if let Some(link) = &link {
            link.record(
                &lease.spec_arc(),
                EventData::Embedding(Telemetry {
                    inputs: n,
                    tokens: u32::try_from(count).unwrap_or(u32::MAX),
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                    error: vectors.is_err().then(|| "engine".to_string()),
                }),
            );
        }
        drop(lease);
        Ok((vectors?, count))
    })
    .await
    .map_err(|e| ApiError::internal("embedding", e.to_string()))?
}

/// `POST /v1/embeddings`.
#[utoipa::path(post, path = "/v1/embeddings", tag = "OpenAI",
    summary = "Embeddings (OpenAI)",
    description = "One vector per input (a string, strings, a token list or token lists), pooled and normalised as the model says. `encoding_format: base64` sends little-endian f32. An input longer than the model's context is a 400 naming its length. Chat models answer 400 `model_not_embedding`.",
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "The vectors", body = EmbeddingResponse),
        crate::error::OpenAiErrors,
    ))]
pub async fn openai(State(state): Shared, body: Body) -> Response {
    openai_inner(state, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn openai_inner(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let req: EmbeddingRequest = parse(body)?;
    let inputs = req.inputs()?;
    let base64 = req.encoding()?;
    let lease = state.registry.acquire(&req.model, None).await?;
    req.check_dimensions(lease.model().embedder()?.dimensions())?;
    let (vectors, tokens) = run(&state, lease, inputs, false).await?;
    Ok(Json(EmbeddingResponse {
        object: "list".into(),
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| Embedding {
                object: "embedding".into(),
                index,
                embedding: EmbeddingVector::new(v, base64),
            })
            .collect(),
        model: req.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
    .into_response())
}

/// `POST /api/embed`.
#[utoipa::path(post, path = "/api/embed", tag = "Ollama",
    summary = "Embeddings (Ollama)",
    description = "One vector per input. `truncate` (default true, as in Ollama) cuts inputs longer than the context; false makes them a 400 that names the length.",
    request_body = EmbedRequest,
    responses(
        (status = 200, description = "The vectors", body = EmbedResponse),
        crate::error::OllamaErrors,
    ))]
pub async fn ollama(State(state): Shared, body: Body) -> Response {
    ollama_inner(state, body)
        .await
        .unwrap_or_else(ApiError::into_ollama)
}

async fn ollama_inner(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: EmbedRequest = parse(body)?;
    let inputs = req.inputs()?.into_iter().map(Input::Text).collect();
    let lease = state.registry.acquire(&req.model, req.keep_alive).await?;
    outpost_protocol::embeddings::check_dimensions(
        req.dimensions,
        lease.model().embedder()?.dimensions(),
    )?;
    let load = lease.load_duration;
    let (embeddings, tokens) = run(&state, lease, inputs, req.truncate()).await?;
    Ok(Json(EmbedResponse {
        model: req.model,
        embeddings,
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: load.as_nanos() as u64,
        prompt_eval_count: tokens,
    })
    .into_response())
}

/// `POST /api/embeddings` (Ollama's legacy form).
#[utoipa::path(post, path = "/api/embeddings", tag = "Ollama",
    summary = "Embedding of one prompt (Ollama, legacy)",
    description = "Superseded by /api/embed; inputs longer than the context are truncated, as Ollama does.",
    request_body = LegacyEmbeddingsRequest,
    responses(
        (status = 200, description = "The vector", body = LegacyEmbeddingsResponse),
        crate::error::OllamaErrors,
    ))]
pub async fn legacy(State(state): Shared, body: Body) -> Response {
    legacy_inner(state, body)
        .await
        .unwrap_or_else(ApiError::into_ollama)
}

async fn legacy_inner(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let req: LegacyEmbeddingsRequest = parse(body)?;
    if req.prompt.is_empty() {
        return Err(ApiError::bad_request(
            Some("prompt"),
            "invalid_value",
            "prompt is empty; give some text".to_string(),
        ));
    }
    let lease = state.registry.acquire(&req.model, req.keep_alive).await?;
    let (mut vectors, _) = run(&state, lease, vec![Input::Text(req.prompt)], true).await?;
    Ok(Json(LegacyEmbeddingsResponse {
        embedding: vectors.pop().unwrap_or_default(),
    })
    .into_response())
}
