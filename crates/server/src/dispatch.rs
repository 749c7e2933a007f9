//! The OpenAI generation endpoints' entry: a request goes through the
//! router when the server has one (`route.rs`), else, and always for a
//! grounded request (`outpost.retrieve`: its index stays on the device),
//! to the local handlers in `openai.rs`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use outpost_protocol::openai::{
    ChatCompletion, ChatCompletionRequest, Completion, CompletionRequest,
};
#[allow(unused_imports)] // named in the OpenAPI attributes only
use outpost_protocol::ApiErrorBody;
use outpost_router::Endpoint;

use crate::openai::{chat_local, completions_local, Body};
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// `POST /v1/chat/completions`: through the router when there is one.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "OpenAI",
    summary = "Chat completion (OpenAI)",
    description = "Renders the messages with the model's chat template and generates an answer. With `stream: true` the answer comes as server-sent events of `ChatCompletionChunk`, ending in `data: [DONE]`.",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The answer", content(
            (ChatCompletion = "application/json"),
            (String = "text/event-stream"))),
        crate::error::OpenAiErrors,
    ))]
pub async fn chat(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    routed(state, headers, body, Endpoint::Chat).await
}

/// `POST /v1/completions`: through the router when there is one.
#[utoipa::path(post, path = "/v1/completions", tag = "OpenAI",
    summary = "Text completion (OpenAI, legacy)",
    description = "Continues the prompt as it is. With `stream: true`: server-sent events of `Completion`, ending in `data: [DONE]`.",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The continuation", content(
            (Completion = "application/json"),
            (String = "text/event-stream"))),
        crate::error::OpenAiErrors,
    ))]
pub async fn completions(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    routed(state, headers, body, Endpoint::Completions).await
}

async fn routed(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Response {
    let local = match (&state.router, body) {
        // A grounded request stays on the device with its index.
        (Some(router), Ok(bytes)) if !retrieves(&bytes) => {
            let router = router.clone();
            return crate::route::handle(state, router, endpoint, headers, bytes).await;
        }
        (_, body) => match endpoint {
            Endpoint::Chat => chat_local(state, body).await,
            Endpoint::Completions => completions_local(state, body).await,
        },
    };
    local.unwrap_or_else(IntoResponse::into_response)
}

/// Whether a chat body asks for `outpost.retrieve`.
fn retrieves(bytes: &Bytes) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|v| !v["outpost"]["retrieve"].is_null())
}
