//! The server's operational HTTP pieces that need the whole state:
//! `POST /admin/reload` (re-read the device store) and the request-body
//! log middleware (`--log-requests`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{ApiError, ServerError};
use crate::state::AppState;

/// Re-reads the store's pointers into the registry.
pub async fn reload(state: &Arc<AppState>) -> Result<crate::registry::ReloadReport, ServerError> {
    let Some(link) = state.store.clone() else {
        return Err(ServerError::NoStore);
    };
    let known: HashMap<String, outpost_protocol::Digest> = state
        .registry
        .specs()
        .filter_map(|s| Some((s.name.clone(), s.release.as_ref()?.1)))
        .collect();
    let cfg = state.config.clone();
    let specs = tokio::task::spawn_blocking(move || link.specs(&cfg, &known))
        .await
        .map_err(|e| ServerError::Interrupted(e.to_string()))??;
    let report = state.registry.reload(specs).await;
    tracing::info!(
        replaced = ?report.replaced,
        added = ?report.added,
        "reloaded the store"
    );
    Ok(report)
}

/// `POST /admin/reload`'s answer: model names.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Reloaded {
    replaced: Vec<String>,
    added: Vec<String>,
    unchanged: Vec<String>,
}

/// `POST /admin/reload`.
#[utoipa::path(post, path = "/admin/reload", tag = "ops",
    summary = "Re-read the device store (`serve --store`)",
    description = "New requests get newly installed files; requests in flight finish on the old ones.",
    responses(
        (status = 200, description = "What changed, by model name", body = Reloaded),
        (status = 409, description = "No --store, or the store cannot be read: nothing changed", body = outpost_protocol::ApiErrorBody)))]
pub async fn reload_handler(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Reloaded>, ApiError> {
    match reload(&state).await {
        Ok(r) => Ok(Json(Reloaded {
            replaced: r.replaced,
            added: r.added,
            unchanged: r.unchanged,
        })),
        Err(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "reload_failed",
            None,
            format!("reload refused, the models served stay as they were: {e}"),
        )),
    }
}

/// Logs the body, then hands the request on unchanged.
pub(crate) async fn log_body(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(log) = &state.request_log else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.body_limit).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large_or_unreadable",
                None,
                format!("the request body could not be read: {e}"),
            )
            .into_response()
        }
    };
    if !bytes.is_empty() {
        log.write(parts.method.as_str(), parts.uri.path(), &bytes);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
