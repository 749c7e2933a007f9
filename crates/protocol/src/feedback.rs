//! `POST /v1/feedback` on the server: what a user did with one answer,
//! keyed by the id the answer carried (`chatcmpl-…`, `cmpl-…`). Thumbs up
//! and down are one vote per answer: the same vote again is acknowledged
//! and not counted twice, the other vote is refused (409). Regenerate,
//! edited and copied count once per answer each. The server keeps the ids
//! of its recent answers; an id it does not know is a 404.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::telemetry::{FeedbackReason, FeedbackSignal};

/// The longest response id accepted.
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The `id` of the answer (`chatcmpl-…` or `cmpl-…`).
    pub id: String,
    pub signal: FeedbackSignal,
    pub reason: Option<FeedbackReason>,
}

impl FeedbackRequest {
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.id.is_empty()
            || self.id.len() > MAX_ID_LEN
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ProtocolError::invalid(
                "id",
                format!(
                    "{:?} is not a response id: give the `id` of the answer (chatcmpl-…), at most {MAX_ID_LEN} characters",
                    self.id
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedbackAck {
    pub id: String,
    pub signal: FeedbackSignal,
    /// False when this answer already had this signal (counted once).
    pub counted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ids_are_named() {
        let r: FeedbackRequest = serde_json::from_str(
            r#"{"id": "chatcmpl-1a", "signal": "thumbs_down", "reason": "inaccurate"}"#,
        )
        .expect("parses");
        assert_eq!(r.signal, FeedbackSignal::ThumbsDown);
        assert_eq!(r.reason, Some(FeedbackReason::Inaccurate));
        r.validate().expect("valid");
        for id in ["", "a b", &"x".repeat(200)] {
            let bad = FeedbackRequest {
                id: id.into(),
                ..r.clone()
            };
            assert!(bad
                .validate()
                .expect_err("refused")
                .to_string()
                .contains("id"));
        }
        let e = serde_json::from_str::<FeedbackRequest>(r#"{"id": "x", "signal": "meh"}"#)
            .expect_err("unknown signal");
        assert!(e.to_string().contains("meh"), "{e}");
        let e = serde_json::from_str::<FeedbackRequest>(
            r#"{"id": "x", "signal": "copied", "text": "free text"}"#,
        )
        .expect_err("no free text");
        assert!(e.to_string().contains("text"), "{e}");
    }
}
