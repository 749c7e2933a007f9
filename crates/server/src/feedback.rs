//! `POST /v1/feedback`: what a user did with one answer, keyed by the id
//! the answer carried. The server remembers which release gave each of its
//! recent local answers (`answers.rs`; ids of cloud answers are not its
//! own), so a signal is counted against the cohort that earned it: under
//! `serve --store` it becomes a `feedback` event in the spool, which the
//! agent ships; always it counts in `/metrics` (`outpost_feedback_total`).
//!
//! Defined behaviour: an unknown (or forgotten) id is a 404 naming it; the
//! same signal twice on one answer is acknowledged with `counted: false`;
//! a thumbs vote against an earlier opposite vote is a 409 (a vote is
//! final, so a cohort's rates never count one user twice).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use outpost_protocol::feedback::{FeedbackAck, FeedbackRequest};
use outpost_protocol::telemetry::{EventData, Feedback};

use crate::error::ApiError;
use crate::openai::{parse, Body};
use crate::state::AppState;

/// `POST /v1/feedback`.
#[utoipa::path(post, path = "/v1/feedback", tag = "Outpost",
    summary = "Feedback on an answer",
    description = "A user's signal on one answer, by the answer's `id`: `thumbs_up` / `thumbs_down` (one vote per answer: the same vote again is `counted: false`, the other one a 409), `regenerate`, `edited`, `copied` (once each per answer), with an optional `reason` from a fixed list. Counted against the release that gave the answer; under `serve --store` it goes to the fleet with the other telemetry. An id the server does not know (it keeps its last 100 000 local answers) is a 404.",
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "Taken", body = FeedbackAck),
        (status = 400, description = "A malformed body or id", body = outpost_protocol::ApiErrorBody),
        (status = 404, description = "No such answer", body = outpost_protocol::ApiErrorBody),
        (status = 409, description = "The answer already has the other vote", body = outpost_protocol::ApiErrorBody),
    ))]
pub async fn feedback(State(state): State<Arc<AppState>>, body: Body) -> Response {
    inner(&state, body).unwrap_or_else(IntoResponse::into_response)
}

fn inner(state: &AppState, body: Body) -> Result<Response, ApiError> {
    let req: FeedbackRequest = parse(body)?;
    req.validate()?;
    let (counted, spec) = state.answers.take(&req.id, req.signal)?;
    if counted {
        if let Some(link) = &state.store {
            link.record(
                &spec,
                EventData::Feedback(Feedback {
                    signal: req.signal,
                    reason: req.reason,
                }),
            );
        }
    }
    Ok(Json(FeedbackAck {
        id: req.id,
        signal: req.signal,
        counted,
    })
    .into_response())
}
