//! `POST /v1/feedback`: what a user did with one answer, keyed by the id
//! the answer carried. The server remembers which release gave each of its
//! last [`KEPT`] local answers (ids of cloud answers are not its own), so
//! a signal is counted against the cohort that earned it: under `serve
//! --store` it becomes a `feedback` event in the spool, which the agent
//! ships; always it counts in `/metrics` (`outpost_feedback_total`).
//!
//! Defined behaviour: an unknown (or forgotten) id is a 404 naming it; the
//! same signal twice on one answer is acknowledged with `counted: false`;
//! a thumbs vote against an earlier opposite vote is a 409 (a vote is
//! final, so a cohort's rates never count one user twice).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use outpost_protocol::feedback::{FeedbackAck, FeedbackRequest};
use outpost_protocol::telemetry::{EventData, Feedback, FeedbackSignal};

use crate::error::ApiError;
use crate::openai::{parse, Body};
use crate::registry::ModelSpec;
use crate::state::AppState;

/// Answers remembered for feedback (about 200 bytes each).
pub const KEPT: usize = 100_000;

/// One answer's release (`T`) and the signals it got.
struct Answer<T> {
    of: T,
    vote: Option<FeedbackSignal>,
    acts: Vec<FeedbackSignal>,
}

/// The last [`KEPT`] answers by id.
struct Ledger<T> {
    by_id: HashMap<String, Answer<T>>,
    /// Oldest first, for forgetting.
    order: VecDeque<String>,
}

impl<T: Clone> Ledger<T> {
    fn new() -> Self {
        Ledger {
            by_id: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn issued(&mut self, id: &str, of: T) {
        if self.order.len() >= KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.by_id.insert(
            id.to_string(),
            Answer {
                of,
                vote: None,
                acts: Vec::new(),
            },
        );
    }

    /// Takes `signal` for `id`: whether it counts now, and whose it is.
    fn take(&mut self, id: &str, signal: FeedbackSignal) -> Result<(bool, T), ApiError> {
        let a = self.by_id.get_mut(id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "unknown_response_id",
                Some("id"),
                format!(
                    "no answer {id:?} here: give the `id` of an answer this server gave (it keeps the last {KEPT}, and none from before it started or from the cloud)"
                ),
            )
        })?;
        let counted = if signal.is_vote() {
            match a.vote {
                None => {
                    a.vote = Some(signal);
                    true
                }
                Some(v) if v == signal => false,
                Some(v) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "invalid_request_error",
                        "vote_already_given",
                        Some("signal"),
                        format!(
                            "answer {id:?} already has the vote {}; a vote is final",
                            v.as_str()
                        ),
                    ))
                }
            }
        } else if a.acts.contains(&signal) {
            false
        } else {
            a.acts.push(signal);
            true
        };
        Ok((counted, a.of.clone()))
    }
}

/// The recent answers, and the counters of the signals taken.
pub struct Answers {
    kept: Mutex<Ledger<Arc<ModelSpec>>>,
    /// One counter per signal, in [`FeedbackSignal::ALL`] order.
    counted: [AtomicU64; 5],
}

impl Default for Answers {
    fn default() -> Self {
        Answers {
            kept: Mutex::new(Ledger::new()),
            counted: Default::default(),
        }
    }
}

impl Answers {
    /// Remembers that `id` was answered by `spec`'s release.
    pub fn issued(&self, id: &str, spec: Arc<ModelSpec>) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .issued(id, spec);
    }

    /// Signals taken, per signal (for /metrics).
    pub fn counts(&self) -> impl Iterator<Item = (FeedbackSignal, u64)> + '_ {
        FeedbackSignal::ALL
            .into_iter()
            .zip(&self.counted)
            .map(|(s, c)| (s, c.load(Ordering::Relaxed)))
    }

    fn take(&self, id: &str, signal: FeedbackSignal) -> Result<(bool, Arc<ModelSpec>), ApiError> {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(id, signal)
    }
}

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
        if let Some(i) = FeedbackSignal::ALL.iter().position(|s| *s == req.signal) {
            state.answers.counted[i].fetch_add(1, Ordering::Relaxed);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_are_final_acts_count_once_and_old_answers_are_forgotten() {
        let mut a = Ledger::new();
        a.issued("chatcmpl-1", 7u8);
        let up = FeedbackSignal::ThumbsUp;
        assert_eq!(a.take("chatcmpl-1", up).expect("taken"), (true, 7));
        assert_eq!(a.take("chatcmpl-1", up).expect("again"), (false, 7));
        let e = a
            .take("chatcmpl-1", FeedbackSignal::ThumbsDown)
            .expect_err("the other vote");
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert!(
            e.body.error.message.contains("thumbs_up"),
            "{}",
            e.body.error.message
        );
        assert!(a.take("chatcmpl-1", FeedbackSignal::Copied).expect("act").0);
        assert!(!a.take("chatcmpl-1", FeedbackSignal::Copied).expect("act").0);
        assert!(
            a.take("chatcmpl-1", FeedbackSignal::Regenerate)
                .expect("act")
                .0
        );
        let e = a.take("chatcmpl-2", up).expect_err("unknown");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        for i in 0..KEPT {
            a.issued(&format!("x-{i}"), 0);
        }
        let e = a.take("chatcmpl-1", up).expect_err("forgotten");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(
            a.take(&format!("x-{}", KEPT - 1), up)
                .expect("newest kept")
                .0
        );
        assert_eq!(a.by_id.len(), KEPT);
    }
}
