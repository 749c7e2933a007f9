//! `outpost.retrieve` on `/v1/chat/completions` and Ollama's `/api/chat`:
//! grounded answers from an on-device index (`outpost_index`), streamed or
//! not. The index's own embedding model —
//! found among the served models by the digest the index recorded — embeds
//! the question, the nearest chunks become numbered sources in the prompt,
//! the answer is constrained to name its sources first
//! (`outpost_index::ground`), and the response carries the citations.
//! Opened indexes are kept, and opened again when their file changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::StatusCode;
use outpost_index::{ground, Hit, Index};
use outpost_protocol::openai::{ChatCompletionRequest, ChatMessage, Content};
use outpost_protocol::retrieval::{OutpostAnswer, Retrieve};

use crate::error::ApiError;
use crate::registry::Registry;

/// An open index, shared by the requests that search it.
type Shared = Arc<Mutex<Index>>;

/// Open indexes by name, with the file stamp they were read at.
#[derive(Default)]
pub struct Indexes {
    open: Mutex<HashMap<String, (Option<SystemTime>, Shared)>>,
}

/// The newest modification time of an index's files (the WAL holds
/// commits not yet checkpointed).
fn stamp(path: &std::path::Path) -> Option<SystemTime> {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .filter_map(|m| m.modified().ok())
        .max()
}

impl Indexes {
    fn get(&self, dir: &std::path::Path, name: &str) -> Result<Shared, ApiError> {
        let path: PathBuf = dir.join(format!("{name}.sqlite"));
        if !path.is_file() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "index_not_found",
                Some("outpost.retrieve.index"),
                format!(
                    "there is no index {name:?} in {} (make one with `outpost index create {name} --model MODEL --dir {}`)",
                    dir.display(),
                    dir.display()
                ),
            ));
        }
        let now = stamp(&path);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, ix)) = open.get(name) {
            if *at == now {
                return Ok(ix.clone());
            }
        }
        let ix =
            Arc::new(Mutex::new(Index::open(&path).map_err(|e| {
                ApiError::internal("opening the index", e.to_string())
            })?));
        open.insert(name.to_string(), (now, ix.clone()));
        Ok(ix)
    }
}

/// What a grounded request adds to its generation.
pub struct Grounding {
    pub hits: Vec<Hit>,
    /// The answer's grammar: sources first, then the text.
    pub grammar: String,
}

impl Grounding {
    /// The answer text (citations written after it) and its citations.
    pub fn finish(&self, raw: &str) -> (String, OutpostAnswer) {
        let (text, cited) = ground::read_answer(raw);
        (text, self.answer(&cited))
    }

    /// The citations, the sources numbered `cited` marked.
    pub fn answer(&self, cited: &[usize]) -> OutpostAnswer {
        OutpostAnswer {
            citations: ground::citations(cited, &self.hits),
        }
    }
}

/// Retrieves the `r.k` chunks nearest to `question` from `r.index` with
/// the index's own embedding model, and gives the grounding: the user
/// message that replaces the question and the answer's grammar. Each API
/// puts [`ground::SYSTEM`] in front of its system message
/// ([`system_text`]).
pub async fn prepare(
    registry: &Arc<Registry>,
    indexes: &Indexes,
    index_dir: Option<&std::path::Path>,
    r: &Retrieve,
    question: String,
) -> Result<(Grounding, String), ApiError> {
    let dir = index_dir.ok_or_else(|| {
        ApiError::bad_request(
            Some("outpost.retrieve"),
            "no_index_dir",
            "this server has no index folder: start it with --index-dir DIR (or OUTPOST_INDEX_DIR)",
        )
    })?;
    let index = indexes.get(dir, &r.index)?;
    let info = index
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .info()
        .clone();
    let spec = registry
        .specs()
        .find(|s| s.digest == info.model_digest)
        .ok_or_else(|| {
            ApiError::bad_request(
                Some("outpost.retrieve.index"),
                "index_model_not_served",
                format!(
                    "index {:?} was made with model {} ({}), which this server does not serve: add it to `outpost serve`",
                    r.index, info.model, info.model_digest
                ),
            )
        })?;
    let lease = registry.acquire(&spec.name, None).await?;
    let k = r.k();
    let query = question.clone();
    let hits = tokio::task::spawn_blocking(move || -> Result<Vec<Hit>, ApiError> {
        let embedder = lease.model().embedder()?;
        let v = embedder.embed_text(&query)?;
        drop(lease);
        index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .search(&v, k)
            .map_err(|e| ApiError::internal("searching the index", e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal("retrieval", e.to_string()))??;
    let user = ground::user_message(&question, &hits);
    let grammar = outpost_engine::json_schema_grammar(&ground::answer_schema(hits.len()))?;
    Ok((Grounding { hits, grammar }, user))
}

/// A grounded request's system message: the grounding instructions, then
/// the caller's own system text if it had one.
pub fn system_text(own: Option<&str>) -> String {
    match own {
        Some(own) => format!("{}\n\n{own}", ground::SYSTEM),
        None => ground::SYSTEM.to_string(),
    }
}

/// [`prepare`] for an OpenAI chat request that asks (`outpost.retrieve`),
/// rewriting its messages: the instructions join (or become) the system
/// message, the last user message becomes the sources and the question.
pub async fn prepare_openai(
    registry: &Arc<Registry>,
    indexes: &Indexes,
    index_dir: Option<&std::path::Path>,
    req: &mut ChatCompletionRequest,
) -> Result<Option<Grounding>, ApiError> {
    let Some(r) = req.outpost.as_ref().and_then(|o| o.retrieve.clone()) else {
        return Ok(None);
    };
    let question = req
        .messages
        .last()
        .map(ChatMessage::text)
        .unwrap_or_default();
    let (grounding, user) = prepare(registry, indexes, index_dir, &r, question).await?;
    if let Some(last) = req.messages.last_mut() {
        last.content = Some(Content::Text(user));
    }
    match req.messages.first_mut() {
        Some(first) if first.role == "system" || first.role == "developer" => {
            first.content = Some(Content::Text(system_text(Some(&first.text()))));
        }
        _ => req.messages.insert(
            0,
            ChatMessage {
                role: "system".into(),
                content: Some(Content::Text(system_text(None))),
                name: None,
                tool_calls: None,
                tool_call_id: None,
            },
        ),
    }
    Ok(Some(grounding))
}
