//! Outpost's chat-request extension for grounded answers:
//! `"outpost": {"retrieve": {"index": "notes", "k": 4}}` on
//! `/v1/chat/completions` and Ollama's `/api/chat`. The last user message
//! is the question; the index's nearest chunks go in front of the model as
//! numbered sources, and the answer carries `"outpost": {"citations":
//! [...]}` with each source's document id and byte offsets (streamed: on
//! the last chunk or line). The index never leaves the device: such
//! requests are always answered locally.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// The most chunks one request may retrieve.
pub const MAX_K: u32 = 16;

/// The `outpost` object of a chat request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutpostExtension {
    pub retrieve: Option<Retrieve>,
}

/// Which index, how many chunks.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retrieve {
    /// An index name under the server's `--index-dir`.
    pub index: String,
    /// Chunks to retrieve (default 4, at most 16).
    pub k: Option<u32>,
}

impl Retrieve {
    /// Checks a chat request that asks for retrieval: this extension, none
    /// of the `conflicts` that are present (fields with a shape of their
    /// own, e.g. tools), and a user message last (the question).
    pub fn check_request(
        &self,
        conflicts: &[(&str, bool)],
        last_role: Option<&str>,
    ) -> Result<(), ProtocolError> {
        self.validate()?;
        if let Some((name, _)) = conflicts.iter().find(|(_, present)| *present) {
            return Err(ProtocolError::unsupported(
                name,
                format!("{name} with outpost.retrieve: a grounded answer has its own shape (its citations); send one without the other"),
            ));
        }
        if last_role != Some("user") {
            return Err(ProtocolError::invalid(
                "messages",
                "with outpost.retrieve the last message is the question: make it a user message",
            ));
        }
        Ok(())
    }

    pub fn k(&self) -> usize {
        self.k.unwrap_or(4) as usize
    }

    pub fn validate(&self) -> Result<(), ProtocolError> {
        let ok = !self.index.is_empty()
            && self
                .index
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !self.index.starts_with('.');
        if !ok {
            return Err(ProtocolError::invalid(
                "outpost.retrieve.index",
                format!(
                    "{:?} is not an index name: letters, digits, '-', '_' and '.' (outpost index list shows them)",
                    self.index
                ),
            ));
        }
        if let Some(k) = self.k {
            if k == 0 || k > MAX_K {
                return Err(ProtocolError::invalid(
                    "outpost.retrieve.k",
                    format!("k = {k}: give 1 to {MAX_K}"),
                ));
            }
        }
        Ok(())
    }
}

/// One retrieved source as the answer refers to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Citation {
    /// The number the prompt gave it (`[1]` is 1).
    pub n: usize,
    pub doc: String,
    /// Byte offsets `[start, end)` into the document as indexed.
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub text: String,
    /// Whether the answer cites it.
    pub cited: bool,
}

/// The `outpost` object of a grounded answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutpostAnswer {
    pub citations: Vec<Citation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_k_are_refused_by_field() {
        let r = |index: &str, k: Option<u32>| {
            Retrieve {
                index: index.into(),
                k,
            }
            .validate()
        };
        assert!(r("notes", None).is_ok());
        assert!(r("notes", Some(16)).is_ok());
        assert_eq!(
            r("../etc", None).expect_err("path").param(),
            "outpost.retrieve.index"
        );
        assert_eq!(
            r("", None).expect_err("empty").param(),
            "outpost.retrieve.index"
        );
        assert_eq!(
            r("notes", Some(0)).expect_err("k").param(),
            "outpost.retrieve.k"
        );
        assert_eq!(
            r("notes", Some(17)).expect_err("k").param(),
            "outpost.retrieve.k"
        );
    }
}
