//! Vocabularies from `tokenizer.json`, in the form llama.cpp's tokenizers
//! read them from GGUF.
//!
//! WordPiece (BERT): llama.cpp's WPM tokenizer works on a "phantom space"
//! vocabulary: a word-initial piece carries a leading U+2581, a
//! continuation piece (`##xx`) loses its `##`, and control tokens stay as
//! they are. Control tokens are the tokenizer's added special tokens
//! (`[CLS]`, `[SEP]`, `[UNK]`, `[PAD]`, `[MASK]`); every other entry,
//! `[unusedN]` included, is normal (as llama.cpp's own converter writes
//! them).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{ConvertError, Result};

/// llama.cpp's token types (`llama_token_type`).
pub const TOKEN_NORMAL: i32 = 1;
pub const TOKEN_CONTROL: i32 = 3;

/// What the GGUF needs of a tokenizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// `tokenizer.ggml.model`.
    pub model: &'static str,
    /// Tokens by id, already in the form llama.cpp expects.
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    /// Special token ids by their role (`cls`, `sep`, `unk`, `pad`, `mask`).
    pub special: BTreeMap<&'static str, u32>,
}

#[derive(Deserialize)]
struct TokenizerJson {
    model: ModelJson,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    vocab: serde_json::Value,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    special: bool,
}

/// Reads a WordPiece vocabulary from `tokenizer.json` at `path`.
pub fn wordpiece(path: &Path) -> Result<Vocab> {
    let text = std::fs::read_to_string(path).map_err(|io| ConvertError::Read {
        path: path.to_path_buf(),
        io,
    })?;
    let tj: TokenizerJson = serde_json::from_str(&text).map_err(|e| ConvertError::Json {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    if tj.model.kind != "WordPiece" {
        return Err(ConvertError::Tokenizer {
            path: path.to_path_buf(),
            found: tj.model.kind,
            arch: "bert",
            expected: "WordPiece",
        });
    }
    let bad = |problem: String| ConvertError::Vocab {
        path: path.to_path_buf(),
        problem,
    };
    let prefix = tj
        .model
        .continuing_subword_prefix
        .clone()
        .unwrap_or_else(|| "##".into());
    let map = tj
        .model
        .vocab
        .as_object()
        .ok_or_else(|| bad("`model.vocab` is not an object of token → id".into()))?;
    let mut by_id: Vec<Option<String>> = vec![None; map.len()];
    for (token, id) in map {
        let id = id
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| bad(format!("token {token:?} has id {id}, not a whole number")))?;
        let slot = by_id.get_mut(id).ok_or_else(|| {
            bad(format!(
                "token {token:?} has id {id}, past the {} tokens",
                map.len()
            ))
        })?;
        if let Some(other) = slot.replace(token.clone()) {
            return Err(bad(format!(
                "id {id} is given to both {other:?} and {token:?}"
            )));
        }
    }
    let specials: BTreeMap<u32, &str> = tj
        .added_tokens
        .iter()
        .filter(|t| t.special)
        .map(|t| (t.id, t.content.as_str()))
        .collect();
    let mut tokens = Vec::with_capacity(by_id.len());
    let mut types = Vec::with_capacity(by_id.len());
    for (id, tok) in by_id.into_iter().enumerate() {
        // No gaps: every id below the count was given once (checked above).
        let tok = tok.ok_or_else(|| bad(format!("no token has id {id}")))?;
        let control = specials.contains_key(&(id as u32));
        let text = if control {
            tok
        } else if let Some(rest) = tok.strip_prefix(prefix.as_str()) {
            rest.to_string()
        } else {
            format!("\u{2581}{tok}")
        };
        let ty = if control { TOKEN_CONTROL } else { TOKEN_NORMAL };
        tokens.push(text);
        types.push(ty);
    }
    let id_of = |name: &str| {
        map.get(name)
            .and_then(serde_json::Value::as_u64)
            .map(|i| i as u32)
    };
    let mut special = BTreeMap::new();
    for (role, text) in [
        ("cls", "[CLS]"),
        ("sep", "[SEP]"),
        ("unk", "[UNK]"),
        ("pad", "[PAD]"),
        ("mask", "[MASK]"),
    ] {
        if let Some(id) = id_of(text) {
            special.insert(role, id);
        }
    }
    for role in ["cls", "sep"] {
        if !special.contains_key(role) {
            return Err(bad(format!(
                "no `[{}]` token: a BERT encoder needs [CLS] and [SEP]",
                role.to_uppercase()
            )));
        }
    }
    Ok(Vocab {
        model: "bert",
        tokens,
        types,
        special,
    })
}
