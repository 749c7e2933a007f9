//! Ollama's API bodies (`/api/chat`, `/api/generate`, `/api/tags`,
//! `/api/show`, `/api/ps`, `/api/version`), their validation, and the
//! small pieces of Ollama's conventions a server needs: Go-style
//! `keep_alive` durations, `format` (`"json"` or a JSON schema), and
//! RFC 3339 timestamps.
//!
//! Unknown fields are refused with the field's name, except in `options`,
//! where Ollama's load-time hints (GPU layers, mmap, thread count) are
//! accepted and ignored: they describe Ollama's loader, not the request.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProtocolError;

pub use crate::keep_alive::KeepAlive;

/// `options`: sampling and limits. Load-time hints are accepted and
/// ignored; sampling methods Outpost does not implement are refused unless
/// set to their neutral value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub seed: Option<i64>,
    /// Tokens to generate; -1 (or -2) = until the end or the context fills.
    pub num_predict: Option<i64>,
    pub top_k: Option<i64>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub temperature: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<i64>,
    pub stop: Option<Vec<String>>,
    /// Context for this request; at most the server's context per sequence.
    pub num_ctx: Option<i64>,
    // Refused unless neutral.
    pub tfs_z: Option<f32>,
    pub typical_p: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub mirostat: Option<i64>,
    pub mirostat_tau: Option<f32>,
    pub mirostat_eta: Option<f32>,
    // Ollama's loader hints: accepted, ignored.
    pub numa: Option<bool>,
    pub num_batch: Option<i64>,
    pub num_gpu: Option<i64>,
    pub main_gpu: Option<i64>,
    pub low_vram: Option<bool>,
    pub f16_kv: Option<bool>,
    pub logits_all: Option<bool>,
    pub vocab_only: Option<bool>,
    pub use_mmap: Option<bool>,
    pub use_mlock: Option<bool>,
    pub embedding_only: Option<bool>,
    pub num_thread: Option<i64>,
    pub num_keep: Option<i64>,
    pub penalize_newline: Option<bool>,
}

impl Options {
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let p = |name: &str| format!("options.{name}");
        if let Some(t) = self.temperature {
            if !(0.0..=100.0).contains(&t) || t.is_nan() {
                return Err(ProtocolError::invalid(
                    &p("temperature"),
                    format!("{t} is not between 0 and 100 (0 = always the most likely token)"),
                ));
            }
        }
        for (name, v) in [("top_p", self.top_p), ("min_p", self.min_p)] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) || v.is_nan() {
                    return Err(ProtocolError::invalid(
                        &p(name),
                        format!("{v} is not between 0 and 1"),
                    ));
                }
            }
        }
        if let Some(k) = self.top_k {
            if k < 0 {
                return Err(ProtocolError::invalid(
                    &p("top_k"),
                    format!("{k} is negative; 0 turns top-k off"),
                ));
            }
        }
        if let Some(r) = self.repeat_penalty {
            if r <= 0.0 || r.is_nan() {
                return Err(ProtocolError::invalid(
                    &p("repeat_penalty"),
                    format!("{r} must be above 0 (1 = no penalty)"),
                ));
            }
        }
        if let Some(n) = self.repeat_last_n {
            if n < -1 {
                return Err(ProtocolError::invalid(
                    &p("repeat_last_n"),
                    format!("{n}: give -1 (the whole context), 0 (off) or a count"),
                ));
            }
        }
        if let Some(n) = self.num_predict {
            if n < -2 {
                return Err(ProtocolError::invalid(
                    &p("num_predict"),
                    format!("{n}: give a token count, or -1 to generate until the end"),
                ));
            }
        }
        if let Some(n) = self.num_ctx {
            if n < 1 {
                return Err(ProtocolError::invalid(
                    &p("num_ctx"),
                    format!("{n} is not a context size"),
                ));
            }
        }
        if let Some(seed) = self.seed {
            if seed < -1 || seed > i64::from(u32::MAX) {
                return Err(ProtocolError::invalid(
                    &p("seed"),
                    format!("{seed} is not between 0 and {} (-1 = random)", u32::MAX),
                ));
            }
        }
        for (name, v, neutral) in [
            ("tfs_z", self.tfs_z, 1.0),
            ("typical_p", self.typical_p, 1.0),
            ("presence_penalty", self.presence_penalty, 0.0),
            ("frequency_penalty", self.frequency_penalty, 0.0),
        ] {
            if v.is_some_and(|v| v != neutral) {
                return Err(ProtocolError::unsupported(
                    &p(name),
                    format!("not implemented; leave it out or set it to {neutral}"),
                ));
            }
        }
        if self.mirostat.is_some_and(|m| m != 0) {
            return Err(ProtocolError::unsupported(
                &p("mirostat"),
                "mirostat sampling is not implemented; leave it out or set it to 0",
            ));
        }
        if let Some(stop) = &self.stop {
            if stop.iter().any(String::is_empty) {
                return Err(ProtocolError::invalid(
                    &p("stop"),
                    "an empty stop string would end every answer at once",
                ));
            }
        }
        Ok(())
    }

    /// The token limit: None = until the end of generation or of the context.
    pub fn max_tokens(&self) -> Option<u32> {
        self.num_predict
            .filter(|&n| n >= 0)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// `format`: absent, `""`, `"json"`, or a JSON schema object.
fn format_schema(format: &Option<Value>) -> Result<Option<String>, ProtocolError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(r#"{"type":"object"}"#.to_string())),
        Some(Value::Object(o)) => Ok(Some(Value::Object(o.clone()).to_string())),
        Some(other) => Err(ProtocolError::invalid(
            "format",
            format!("{other} is neither \"json\" nor a JSON schema object"),
        )),
    }
}

fn check_model(model: &str) -> Result<(), ProtocolError> {
    if model.is_empty() {
        return Err(ProtocolError::invalid(
            "model",
            "give a model name (GET /api/tags lists them)",
        ));
    }
    Ok(())
}

fn no_images(param: &str, images: &Option<Vec<String>>) -> Result<(), ProtocolError> {
    if images.as_ref().is_some_and(|i| !i.is_empty()) {
        return Err(ProtocolError::unsupported(
            param,
            "images need a multimodal model; the models served here read text only",
        ));
    }
    Ok(())
}

/// The checks `/api/chat` and `/api/generate` share: `think`, `logprobs`,
/// `format` and `options`.
fn generation_fields(
    think: &Option<Value>,
    logprobs: Option<bool>,
    format: &Option<Value>,
    options: &Option<Options>,
) -> Result<(), ProtocolError> {
    if think.as_ref().is_some_and(|t| t != &Value::Bool(false)) {
        return Err(ProtocolError::unsupported(
            "think",
            "the models served here do not think; leave it out",
        ));
    }
    if logprobs == Some(true) {
        return Err(ProtocolError::unsupported(
            "logprobs",
            "not implemented on the Ollama API; use /v1/chat/completions with logprobs",
        ));
    }
    format_schema(format)?;
    options.as_ref().map_or(Ok(()), Options::validate)
}

/// A chat message.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = OllamaChatMessage)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// A `tool` message: the function whose result it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

pub use crate::tools::{OllamaFunction as ToolCallFunction, OllamaToolCall as ToolCall};

/// `POST /api/chat`. No messages and a `keep_alive` loads or unloads the
/// model.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    pub tools: Option<Vec<crate::tools::Tool>>,
    pub format: Option<Value>,
    pub options: Option<Options>,
    /// Ollama streams unless told not to.
    pub stream: Option<bool>,
    pub keep_alive: Option<KeepAlive>,
    pub think: Option<Value>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    /// Outpost's extension (grounded answers from an on-device index), as
    /// on `/v1/chat/completions`.
    pub outpost: Option<crate::retrieval::OutpostExtension>,
}

impl ChatRequest {
    /// The tools, checked (Ollama has no tool_choice: the model decides).
    pub fn tool_plan(&self) -> Result<Option<crate::tools::ToolPlan>, ProtocolError> {
        crate::tools::plan(self.tools.as_deref(), None, None)
    }

    pub fn validate(&self) -> Result<(), ProtocolError> {
        check_model(&self.model)?;
        for (i, m) in self.messages.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
                return Err(ProtocolError::invalid(
                    &format!("messages[{i}].role"),
                    format!("{:?} is not one of system, user, assistant, tool", m.role),
                ));
            }
            no_images(&format!("messages[{i}].images"), &m.images)?;
            if m.tool_calls.is_some() && m.role != "assistant" {
                return Err(ProtocolError::invalid(
                    &format!("messages[{i}].tool_calls"),
                    "only assistant messages carry tool calls",
                ));
            }
        }
        if self.tool_plan()?.is_some() && self.format.is_some() {
            return Err(ProtocolError::unsupported(
                "format",
                "JSON output and tools cannot be asked together: the answer is constrained to calls or text",
            ));
        }
        if let Some(r) = self.retrieve() {
            r.check_request(
                &[
                    ("tools", self.tools.is_some()),
                    ("format", self.format.is_some()),
                ],
                self.messages.last().map(|m| m.role.as_str()),
            )?;
        }
        generation_fields(&self.think, self.logprobs, &self.format, &self.options)
    }

    pub fn json_schema(&self) -> Result<Option<String>, ProtocolError> {
        format_schema(&self.format)
    }

    pub fn streaming(&self) -> bool {
        self.stream.unwrap_or(true)
    }

    /// `outpost.retrieve`, when asked.
    pub fn retrieve(&self) -> Option<&crate::retrieval::Retrieve> {
        self.outpost.as_ref().and_then(|o| o.retrieve.as_ref())
    }
}

/// `POST /api/generate`. An empty prompt and a `keep_alive` loads or
/// unloads the model.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub suffix: Option<String>,
    pub system: Option<String>,
    pub template: Option<String>,
    pub context: Option<Vec<i64>>,
    /// No chat template: the prompt goes to the model as it is.
    pub raw: Option<bool>,
    pub images: Option<Vec<String>>,
    pub format: Option<Value>,
    pub options: Option<Options>,
    pub stream: Option<bool>,
    pub keep_alive: Option<KeepAlive>,
    pub think: Option<Value>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
}

impl GenerateRequest {
    pub fn validate(&self) -> Result<(), ProtocolError> {
        check_model(&self.model)?;
        no_images("images", &self.images)?;
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(ProtocolError::unsupported(
                "suffix",
                "fill-in-the-middle is not implemented",
            ));
        }
        if self.template.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(ProtocolError::unsupported(
                "template",
                "Go templates are not implemented; start the server with --chat-template, or send raw: true",
            ));
        }
        if self.context.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(ProtocolError::unsupported(
                "context",
                "token context is deprecated by Ollama and not implemented; use /api/chat with the message history",
            ));
        }
        if self.raw == Some(true) && self.system.is_some() {
            return Err(ProtocolError::invalid(
                "system",
                "a raw prompt has no chat template to put a system message in",
            ));
        }
        generation_fields(&self.think, self.logprobs, &self.format, &self.options)
    }

    pub fn json_schema(&self) -> Result<Option<String>, ProtocolError> {
        format_schema(&self.format)
    }

    pub fn streaming(&self) -> bool {
        self.stream.unwrap_or(true)
    }
}

/// Timing and count fields of a final response; durations in nanoseconds.
/// Flattened into the response, and only on its last line: so in the
/// OpenAPI documents each is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Timings {
    #[schema(required = false)]
    pub total_duration: u64,
    #[schema(required = false)]
    pub load_duration: u64,
    #[schema(required = false)]
    pub prompt_eval_count: u64,
    #[schema(required = false)]
    pub prompt_eval_duration: u64,
    #[schema(required = false)]
    pub eval_count: u64,
    #[schema(required = false)]
    pub eval_duration: u64,
}

/// One line of `/api/chat`'s answer (or the whole answer when not
/// streaming).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ChatResponse {
    pub model: String,
    pub created_at: String,
    pub message: ChatMessage,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// Citations of a grounded answer (`outpost.retrieve`): on the line
    /// with `done: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outpost: Option<crate::retrieval::OutpostAnswer>,
}

/// One line of `/api/generate`'s answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct GenerateResponse {
    pub model: String,
    pub created_at: String,
    pub response: String,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// What a model is, as Ollama lists it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ModelDetails {
    pub parent_model: String,
    pub format: String,
    pub family: String,
    pub families: Vec<String>,
    /// E.g. `"135M"`.
    pub parameter_size: String,
    /// E.g. `"Q4_1"`.
    pub quantization_level: String,
}

/// An entry of `GET /api/tags`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ListedModel {
    pub name: String,
    pub model: String,
    pub modified_at: String,
    pub size: u64,
    /// Hex sha256 of the GGUF file.
    pub digest: String,
    pub details: ModelDetails,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TagsResponse {
    pub models: Vec<ListedModel>,
}

/// `POST /api/show`. Older clients send `name`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowRequest {
    #[serde(default)]
    pub model: String,
    pub name: Option<String>,
    pub verbose: Option<bool>,
    pub system: Option<String>,
    pub template: Option<String>,
    pub options: Option<Value>,
}

impl ShowRequest {
    pub fn model_name(&self) -> Result<&str, ProtocolError> {
        let name = if self.model.is_empty() {
            self.name.as_deref().unwrap_or("")
        } else {
            &self.model
        };
        check_model(name)?;
        Ok(name)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ShowResponse {
    pub modelfile: String,
    pub parameters: String,
    pub template: String,
    pub details: ModelDetails,
    pub model_info: BTreeMap<String, Value>,
    pub capabilities: Vec<String>,
    pub modified_at: String,
}

/// An entry of `GET /api/ps`: a loaded model.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RunningModel {
    pub name: String,
    pub model: String,
    /// Memory it holds: weights + KV cache + compute buffers (estimated).
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
    /// When it unloads if no request comes; far in the future for
    /// `keep_alive: -1`.
    pub expires_at: String,
    pub size_vram: u64,
    pub context_length: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PsResponse {
    pub models: Vec<RunningModel>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct VersionResponse {
    pub version: String,
}

/// Ollama's error shape: `{"error": "..."}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: String,
}

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-22T05:22:27.123456789Z`,
/// from a time since the Unix epoch.
pub fn rfc3339(since_epoch: Duration) -> String {
    let whole = crate::Timestamp::from_unix_seconds(since_epoch.as_secs()).to_string();
    let date_time = whole.strip_suffix('Z').unwrap_or(&whole);
    format!("{date_time}.{:09}Z", since_epoch.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let s = |secs: f64| Ok(KeepAlive::For(Duration::from_secs_f64(secs)));
        assert_eq!(KeepAlive::parse("5m"), s(300.0));
        assert_eq!(KeepAlive::parse("1h30m"), s(5400.0));
        assert_eq!(KeepAlive::parse("250ms"), s(0.25));
        assert_eq!(KeepAlive::parse("1.5s"), s(1.5));
        assert_eq!(KeepAlive::parse("0"), s(0.0));
        assert_eq!(KeepAlive::parse("30"), s(30.0));
        assert_eq!(KeepAlive::parse("-1"), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse("-5m"), Ok(KeepAlive::Forever));
        for bad in ["", "5x", "m", "5 m", "five", "1e400"] {
            let e = KeepAlive::parse(bad).expect_err(bad);
            assert!(
                e.contains("duration") || e.contains("too long"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn keep_alive_from_json_number_or_string() {
        let r: ChatRequest =
            serde_json::from_str(r#"{"model":"m","keep_alive":0}"#).expect("parse");
        assert_eq!(r.keep_alive, Some(KeepAlive::For(Duration::ZERO)));
        let r: ChatRequest =
            serde_json::from_str(r#"{"model":"m","keep_alive":"10s"}"#).expect("parse");
        assert_eq!(r.keep_alive, Some(KeepAlive::For(Duration::from_secs(10))));
        let r: ChatRequest =
            serde_json::from_str(r#"{"model":"m","keep_alive":-1}"#).expect("parse");
        assert_eq!(r.keep_alive, Some(KeepAlive::Forever));
        let e = serde_json::from_str::<ChatRequest>(r#"{"model":"m","keep_alive":"soon"}"#)
            .expect_err("bad duration");
        assert!(e.to_string().contains("\"soon\" is not a duration"), "{e}");
    }

    #[test]
    fn unknown_fields_and_options_are_named() {
        let e = serde_json::from_str::<ChatRequest>(r#"{"model":"m","temprature":1}"#)
            .expect_err("unknown field");
        assert!(e.to_string().contains("temprature"), "{e}");
        let e = serde_json::from_str::<ChatRequest>(r#"{"model":"m","options":{"temprature":1}}"#)
            .expect_err("unknown option");
        assert!(e.to_string().contains("temprature"), "{e}");
        // Loader hints are accepted.
        let r: ChatRequest =
            serde_json::from_str(r#"{"model":"m","options":{"num_gpu":99,"use_mmap":true}}"#)
                .expect("hints");
        assert!(r.validate().is_ok());
    }

    #[test]
    fn validation_names_the_option() {
        let bad = |json: &str, param: &str| {
            let r: ChatRequest = serde_json::from_str(json).expect(json);
            let e = r.validate().expect_err(json);
            assert_eq!(e.param(), param, "{json}: {e}");
        };
        bad(
            r#"{"model":"m","options":{"temperature":-1}}"#,
            "options.temperature",
        );
        bad(r#"{"model":"m","options":{"top_p":2}}"#, "options.top_p");
        bad(
            r#"{"model":"m","options":{"mirostat":2}}"#,
            "options.mirostat",
        );
        bad(
            r#"{"model":"m","options":{"num_predict":-3}}"#,
            "options.num_predict",
        );
        bad(r#"{"model":"m","format":"xml"}"#, "format");
        bad(r#"{"model":"m","format":5}"#, "format");
        bad(r#"{"model":"","messages":[]}"#, "model");
        bad(
            r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
            "messages[0].role",
        );
        bad(r#"{"model":"m","think":true}"#, "think");
    }

    #[test]
    fn format_json_or_schema() {
        let r: GenerateRequest =
            serde_json::from_str(r#"{"model":"m","format":"json"}"#).expect("json");
        assert_eq!(
            r.json_schema().expect("ok").as_deref(),
            Some(r#"{"type":"object"}"#)
        );
        let r: GenerateRequest = serde_json::from_str(
            r#"{"model":"m","format":{"type":"object","properties":{"a":{"type":"integer"}}}}"#,
        )
        .expect("schema");
        assert!(r
            .json_schema()
            .expect("ok")
            .is_some_and(|s| s.contains("integer")));
        assert!(r.streaming());
    }

    #[test]
    fn num_predict_maps_to_max_tokens() {
        let o = |n| Options {
            num_predict: Some(n),
            ..Options::default()
        };
        assert_eq!(o(12).max_tokens(), Some(12));
        assert_eq!(o(-1).max_tokens(), None);
        assert_eq!(o(-2).max_tokens(), None);
        assert_eq!(Options::default().max_tokens(), None);
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 12:34:56 UTC (a leap day) = 951827696.
        assert_eq!(
            rfc3339(Duration::new(951_827_696, 5)),
            "2000-02-29T12:34:56.000000005Z"
        );
        // 2026-11-22 00:00:00 UTC = 1795305600.
        assert_eq!(
            rfc3339(Duration::from_secs(1_795_305_600)),
            "2026-11-22T00:00:00.000000000Z"
        );
    }

    #[test]
    fn final_line_flattens_timings() {
        let r = GenerateResponse {
            model: "m".into(),
            created_at: "t".into(),
            response: String::new(),
            done: true,
            done_reason: Some("stop".into()),
            timings: Some(Timings {
                eval_count: 3,
                ..Timings::default()
            }),
        };
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["eval_count"], 3);
        assert_eq!(v["done_reason"], "stop");
        let partial = GenerateResponse {
            done: false,
            done_reason: None,
            timings: None,
            ..r
        };
        let v = serde_json::to_value(&partial).expect("json");
        assert!(v.get("eval_count").is_none() && v.get("done_reason").is_none());
    }
}
