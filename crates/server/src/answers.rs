//! The answers a server gave, for `POST /v1/feedback` (`feedback.rs`):
//! which release gave each of the last [`KEPT`] local answers, and the
//! signals each one took — a thumbs vote is final, the other signals count
//! once per answer. Knows nothing of HTTP but the error it answers with.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use outpost_protocol::telemetry::FeedbackSignal;

use crate::error::ApiError;
use crate::registry::ModelSpec;

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

    /// Takes `signal` for the answer `id`: whether it counts now (then it
    /// is counted for /metrics), and the release that gave the answer.
    pub fn take(
        &self,
        id: &str,
        signal: FeedbackSignal,
    ) -> Result<(bool, Arc<ModelSpec>), ApiError> {
        let taken = self
            .kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(id, signal)?;
        if taken.0 {
            if let Some(i) = FeedbackSignal::ALL.iter().position(|s| *s == signal) {
                self.counted[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(taken)
    }
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
