//! Embedding requests and responses: OpenAI's `/v1/embeddings`, Ollama's
//! `/api/embed` and its legacy `/api/embeddings`. Validation here; the
//! server tokenizes and embeds.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ollama::{KeepAlive, Options};

/// The most inputs one request may carry (OpenAI's limit is 2048).
pub const MAX_INPUTS: usize = 2048;

/// OpenAI's `input`: one text, many texts, one token list or many.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

/// One input after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Tokens(Vec<i32>),
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian f32, as OpenAI sends it).
    pub encoding_format: Option<String>,
    /// Only the model's own width is supported (no Matryoshka truncation).
    pub dimensions: Option<u32>,
    pub user: Option<String>,
}

fn tokens_of(list: &[i64], at: usize) -> Result<Vec<i32>, ProtocolError> {
    if list.is_empty() {
        return Err(ProtocolError::invalid(
            "input",
            format!("input {at} is an empty token list; give at least one token"),
        ));
    }
    list.iter()
        .map(|&t| {
            i32::try_from(t).ok().filter(|t| *t >= 0).ok_or_else(|| {
                ProtocolError::invalid("input", format!("input {at} has token {t}, not a token id"))
            })
        })
        .collect()
}

fn check_count(n: usize) -> Result<(), ProtocolError> {
    if n == 0 {
        return Err(ProtocolError::invalid("input", "give at least one input"));
    }
    if n > MAX_INPUTS {
        return Err(ProtocolError::invalid(
            "input",
            format!("{n} inputs in one request; at most {MAX_INPUTS}: split the request"),
        ));
    }
    Ok(())
}

fn check_text(t: &str, at: usize) -> Result<(), ProtocolError> {
    if t.is_empty() {
        return Err(ProtocolError::invalid(
            "input",
            format!("input {at} is an empty string; give some text"),
        ));
    }
    Ok(())
}

impl EmbeddingRequest {
    /// Checks the request; the inputs in order.
    pub fn inputs(&self) -> Result<Vec<Input>, ProtocolError> {
        if self.model.is_empty() {
            return Err(ProtocolError::invalid(
                "model",
                "give a model name (GET /v1/models lists them)",
            ));
        }
        self.encoding()?;
        let inputs = match &self.input {
            EmbeddingInput::Text(t) => vec![Input::Text(t.clone())],
            EmbeddingInput::Texts(ts) => ts.iter().cloned().map(Input::Text).collect(),
            EmbeddingInput::Tokens(ids) => vec![Input::Tokens(tokens_of(ids, 0)?)],
            EmbeddingInput::TokenLists(lists) => lists
                .iter()
                .enumerate()
                .map(|(i, l)| tokens_of(l, i).map(Input::Tokens))
                .collect::<Result<_, _>>()?,
        };
        check_count(inputs.len())?;
        for (i, input) in inputs.iter().enumerate() {
            if let Input::Text(t) = input {
                check_text(t, i)?;
            }
        }
        Ok(inputs)
    }

    /// Whether vectors go out as base64.
    pub fn encoding(&self) -> Result<bool, ProtocolError> {
        match self.encoding_format.as_deref() {
            None | Some("float") => Ok(false),
            Some("base64") => Ok(true),
            Some(other) => Err(ProtocolError::invalid(
                "encoding_format",
                format!("{other:?} is not an encoding; use \"float\" or \"base64\""),
            )),
        }
    }

    /// Refuses `dimensions` other than the model's width, by name.
    pub fn check_dimensions(&self, width: usize) -> Result<(), ProtocolError> {
        check_dimensions(self.dimensions, width)
    }
}

/// `dimensions` (both APIs): only the model's own width; the model was not
/// trained to be shortened.
pub fn check_dimensions(asked: Option<u32>, width: usize) -> Result<(), ProtocolError> {
    match asked {
        Some(d) if d as usize != width => Err(ProtocolError::unsupported(
            "dimensions",
            format!(
                "dimensions = {d}: this model's vectors have {width} dimensions and it was not trained to be shortened; leave dimensions out or give {width}"
            ),
        )),
        _ => Ok(()),
    }
}

/// A vector as OpenAI sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

impl EmbeddingVector {
    pub fn new(v: Vec<f32>, base64: bool) -> EmbeddingVector {
        if !base64 {
            return EmbeddingVector::Float(v);
        }
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// The answer to `POST /v1/embeddings`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

/// Ollama's `input`: one text or many.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OllamaInput {
    One(String),
    Many(Vec<String>),
}

/// `POST /api/embed`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub model: String,
    pub input: OllamaInput,
    /// Cut inputs longer than the context (Ollama's default: true); false
    /// makes such an input an error that names its length.
    pub truncate: Option<bool>,
    pub dimensions: Option<u32>,
    pub options: Option<Options>,
    pub keep_alive: Option<KeepAlive>,
}

impl EmbedRequest {
    pub fn inputs(&self) -> Result<Vec<String>, ProtocolError> {
        if self.model.is_empty() {
            return Err(ProtocolError::invalid(
                "model",
                "give a model name (GET /api/tags lists them)",
            ));
        }
        let inputs = match &self.input {
            OllamaInput::One(t) => vec![t.clone()],
            OllamaInput::Many(ts) => ts.clone(),
        };
        check_count(inputs.len())?;
        for (i, t) in inputs.iter().enumerate() {
            check_text(t, i)?;
        }
        Ok(inputs)
    }

    pub fn truncate(&self) -> bool {
        self.truncate.unwrap_or(true)
    }
}

/// The answer to `POST /api/embed` (durations in nanoseconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EmbedResponse {
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u64,
}

/// `POST /api/embeddings` (Ollama's legacy form: one prompt).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyEmbeddingsRequest {
    pub model: String,
    pub prompt: String,
    pub options: Option<Options>,
    pub keep_alive: Option<KeepAlive>,
}

/// The answer to `POST /api/embeddings`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct LegacyEmbeddingsResponse {
    pub embedding: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai(body: &str) -> Result<Vec<Input>, String> {
        let req: EmbeddingRequest = serde_json::from_str(body).map_err(|e| e.to_string())?;
        req.inputs().map_err(|e| e.to_string())
    }

    #[test]
    fn every_openai_input_shape_parses() {
        assert_eq!(
            openai(r#"{"model":"m","input":"hi"}"#),
            Ok(vec![Input::Text("hi".into())])
        );
        assert_eq!(
            openai(r#"{"model":"m","input":["a","b"]}"#).map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            openai(r#"{"model":"m","input":[101,2023,102]}"#),
            Ok(vec![Input::Tokens(vec![101, 2023, 102])])
        );
        assert_eq!(
            openai(r#"{"model":"m","input":[[101,102],[101,7,102]]}"#).map(|v| v.len()),
            Ok(2)
        );
    }

    #[test]
    fn bad_inputs_are_refused_by_name() {
        for (body, needle) in [
            (r#"{"model":"m","input":""}"#, "empty string"),
            (r#"{"model":"m","input":[]}"#, "at least one input"),
            (r#"{"model":"m","input":[[]]}"#, "empty token list"),
            (r#"{"model":"m","input":[-1]}"#, "not a token id"),
            (r#"{"model":"","input":"x"}"#, "model name"),
            (
                r#"{"model":"m","input":"x","encoding_format":"hex"}"#,
                "\"hex\"",
            ),
            (r#"{"model":"m","input":"x","nope":1}"#, "nope"),
        ] {
            let err = openai(body).expect_err(body);
            assert!(err.contains(needle), "{body}: {err}");
        }
        let many = format!(
            r#"{{"model":"m","input":[{}]}}"#,
            vec!["\"a\""; 2049].join(",")
        );
        assert!(openai(&many).expect_err("2049").contains("at most 2048"));
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let v = EmbeddingVector::new(vec![1.0, -0.5], true);
        let EmbeddingVector::Base64(s) = v else {
            panic!("not base64")
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("base64");
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
    }

    #[test]
    fn dimensions_other_than_the_width_are_refused() {
        let req: EmbeddingRequest =
            serde_json::from_str(r#"{"model":"m","input":"x","dimensions":128}"#).expect("parse");
        let err = req.check_dimensions(384).expect_err("128").to_string();
        assert!(
            err.contains("dimensions = 128") && err.contains("384"),
            "{err}"
        );
        assert!(req.check_dimensions(128).is_ok());
    }

    #[test]
    fn ollama_truncates_unless_told_not_to() {
        let req: EmbedRequest =
            serde_json::from_str(r#"{"model":"m","input":["a"]}"#).expect("parse");
        assert!(req.truncate());
        let req: EmbedRequest =
            serde_json::from_str(r#"{"model":"m","input":"a","truncate":false}"#).expect("parse");
        assert!(!req.truncate());
        assert_eq!(req.inputs().expect("inputs"), vec!["a".to_string()]);
    }
}
