//! OpenAI-compatible request and response bodies (`/v1/chat/completions`,
//! `/v1/completions`, `/v1/models`), with the checks Outpost applies before
//! a request reaches the engine. Parameters Outpost does not implement are
//! refused by name, never ignored: unknown fields fail to parse, and known
//! but unsupported ones fail `validate`.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::tools::{Tool, ToolCall, ToolChoice, ToolPlan};

/// A string or a list of strings (`stop`, `prompt`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Message content: a string, or text parts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
    #[serde(default)]
    pub name: Option<String>,
    /// An assistant turn's calls (its content is then usually null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// A `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// The text of the message (text parts joined).
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(p)) => p
                .iter()
                .filter_map(|p| p.text.clone())
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: serde_json::Value },
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<OneOrMany>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub response_format: Option<ResponseFormat>,
    pub n: Option<u32>,
    pub user: Option<String>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    /// Outpost's extension (grounded answers from an on-device index).
    pub outpost: Option<crate::retrieval::OutpostExtension>,
    // Known to OpenAI, not implemented here: refused by name in `validate`.
    pub functions: Option<serde_json::Value>,
    pub function_call: Option<serde_json::Value>,
    pub logit_bias: Option<serde_json::Value>,
}

/// Checks shared by both generation endpoints.
fn check_sampling(
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<i64>,
    stop: &Option<OneOrMany>,
    n: Option<u32>,
) -> Result<(), ProtocolError> {
    if let Some(t) = temperature {
        if !(0.0..=2.0).contains(&t) || t.is_nan() {
            return Err(ProtocolError::invalid(
                "temperature",
                format!("{t} is outside [0, 2]"),
            ));
        }
    }
    if let Some(p) = top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ProtocolError::invalid(
                "top_p",
                format!("{p} is outside (0, 1]"),
            ));
        }
    }
    if let Some(s) = seed {
        if u32::try_from(s).is_err() {
            return Err(ProtocolError::invalid(
                "seed",
                format!("{s} is outside [0, 4294967295]"),
            ));
        }
    }
    if let Some(stop) = stop {
        let v = stop.clone().into_vec();
        if v.len() > 4 {
            return Err(ProtocolError::invalid(
                "stop",
                format!("{} sequences given, at most 4 allowed", v.len()),
            ));
        }
        if v.iter().any(String::is_empty) {
            return Err(ProtocolError::invalid(
                "stop",
                "stop sequences must not be empty",
            ));
        }
    }
    if let Some(n) = n {
        if n != 1 {
            return Err(ProtocolError::unsupported(
                "n",
                format!("{n} choices asked; Outpost returns exactly one (n = 1)"),
            ));
        }
    }
    Ok(())
}

fn no_penalty(name: &str, v: Option<f32>) -> Result<(), ProtocolError> {
    match v {
        Some(x) if x != 0.0 => Err(ProtocolError::unsupported(
            name,
            format!("{x} asked; only 0 is supported"),
        )),
        _ => Ok(()),
    }
}

impl ChatCompletionRequest {
    /// The token limit asked for (`max_completion_tokens` wins).
    pub fn max_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Refuses values out of range and parameters Outpost does not implement.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.model.is_empty() {
            return Err(ProtocolError::invalid(
                "model",
                "give a model name (GET /v1/models lists them)",
            ));
        }
        if self.messages.is_empty() {
            return Err(ProtocolError::invalid(
                "messages",
                "give at least one message",
            ));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if !matches!(
                m.role.as_str(),
                "system" | "developer" | "user" | "assistant" | "tool"
            ) {
                return Err(ProtocolError::invalid(
                    &format!("messages[{i}].role"),
                    format!(
                        "{:?} is not one of system, developer, user, assistant, tool",
                        m.role
                    ),
                ));
            }
            if let Some(Content::Parts(parts)) = &m.content {
                if let Some(p) = parts.iter().find(|p| p.kind != "text") {
                    return Err(ProtocolError::unsupported(
                        &format!("messages[{i}].content"),
                        format!("content part type {:?}; only text is supported", p.kind),
                    ));
                }
            }
        }
        self.check_tool_history()?;
        if let Some(r) = self.outpost.as_ref().and_then(|o| o.retrieve.as_ref()) {
            r.check_request(
                &[
                    ("tools", self.tools.is_some()),
                    ("response_format", self.response_format.is_some()),
                ],
                self.messages.last().map(|m| m.role.as_str()),
            )?;
        }
        for (name, present, why) in [
            (
                "functions",
                self.functions.is_some(),
                "deprecated by OpenAI; send `tools` instead",
            ),
            (
                "function_call",
                self.function_call.is_some(),
                "deprecated by OpenAI; send `tool_choice` instead",
            ),
            (
                "logit_bias",
                self.logit_bias.is_some(),
                "not implemented yet",
            ),
        ] {
            if present {
                return Err(ProtocolError::unsupported(name, why));
            }
        }
        if self.tool_plan()?.is_some()
            && self
                .response_format
                .as_ref()
                .is_some_and(|f| *f != ResponseFormat::Text)
        {
            return Err(ProtocolError::unsupported(
                "response_format",
                "JSON output and tool calls cannot be asked together: the answer is constrained to calls or text",
            ));
        }
        check_sampling(self.temperature, self.top_p, self.seed, &self.stop, self.n)?;
        no_penalty("frequency_penalty", self.frequency_penalty)?;
        no_penalty("presence_penalty", self.presence_penalty)?;
        if self.max_tokens() == Some(0) {
            return Err(ProtocolError::invalid("max_tokens", "0; give at least 1"));
        }
        if let Some(k) = self.top_logprobs {
            if k > 20 {
                return Err(ProtocolError::invalid(
                    "top_logprobs",
                    format!("{k} is above 20"),
                ));
            }
            if self.logprobs != Some(true) {
                return Err(ProtocolError::invalid(
                    "top_logprobs",
                    "needs logprobs: true",
                ));
            }
        }
        if let Some(ResponseFormat::JsonSchema { json_schema }) = &self.response_format {
            if !json_schema
                .get("schema")
                .is_some_and(serde_json::Value::is_object)
            {
                return Err(ProtocolError::invalid(
                    "response_format",
                    "json_schema needs a \"schema\" object: {\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}",
                ));
            }
        }
        Ok(())
    }

    /// The tool request, checked: `None` when no tool may be called.
    pub fn tool_plan(&self) -> Result<Option<ToolPlan>, ProtocolError> {
        crate::tools::plan(
            self.tools.as_deref(),
            self.tool_choice.as_ref(),
            self.parallel_tool_calls,
        )
    }

    /// Earlier calls and their results: every call's arguments are JSON,
    /// and every `tool` message answers a call made before it.
    fn check_tool_history(&self) -> Result<(), ProtocolError> {
        let mut ids = std::collections::BTreeSet::new();
        for (i, m) in self.messages.iter().enumerate() {
            for (j, c) in m.tool_calls.iter().flatten().enumerate() {
                if m.role != "assistant" {
                    return Err(ProtocolError::invalid(
                        &format!("messages[{i}].tool_calls"),
                        "only assistant messages carry tool calls",
                    ));
                }
                if serde_json::from_str::<serde_json::Value>(&c.function.arguments)
                    .map_or(true, |v| !v.is_object())
                {
                    return Err(ProtocolError::invalid(
                        &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                        "must be a JSON object, as text",
                    ));
                }
                ids.insert(c.id.clone());
            }
            if m.role == "tool" {
                let param = format!("messages[{i}].tool_call_id");
                match &m.tool_call_id {
                    None => {
                        return Err(ProtocolError::invalid(
                            &param,
                            "a tool message needs the id of the call it answers",
                        ))
                    }
                    Some(id) if !ids.contains(id) => {
                        return Err(ProtocolError::invalid(
                            &param,
                            format!("{id:?} matches no tool call in an earlier assistant message"),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// The function a `tool` message's call named, for rendering it.
    pub fn call_name(&self, id: &str) -> Option<&str> {
        self.messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .find(|c| c.id == id)
            .map(|c| c.function.name.as_str())
    }

    /// The JSON Schema the answer must follow, when `response_format` asks
    /// for JSON (`json_object` is any JSON object).
    pub fn json_schema(&self) -> Option<String> {
        match &self.response_format {
            Some(ResponseFormat::JsonObject) => Some(r#"{"type":"object"}"#.to_string()),
            Some(ResponseFormat::JsonSchema { json_schema }) => {
                json_schema.get("schema").map(|s| s.to_string())
            }
            _ => None,
        }
    }
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Option<OneOrMany>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<OneOrMany>,
    pub logprobs: Option<u32>,
    #[serde(default)]
    pub echo: bool,
    pub n: Option<u32>,
    pub user: Option<String>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub suffix: Option<String>,
    pub best_of: Option<u32>,
    pub logit_bias: Option<serde_json::Value>,
}

impl CompletionRequest {
    /// OpenAI's default for legacy completions.
    pub const DEFAULT_MAX_TOKENS: u32 = 16;

    /// The single prompt.
    pub fn prompt_text(&self) -> Result<&str, ProtocolError> {
        match &self.prompt {
            Some(OneOrMany::One(s)) => Ok(s),
            Some(OneOrMany::Many(v)) if v.len() == 1 => Ok(&v[0]),
            Some(OneOrMany::Many(v)) => Err(ProtocolError::unsupported(
                "prompt",
                format!("{} prompts in one request; send one", v.len()),
            )),
            None => Err(ProtocolError::invalid("prompt", "missing")),
        }
    }

    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.model.is_empty() {
            return Err(ProtocolError::invalid(
                "model",
                "give a model name (GET /v1/models lists them)",
            ));
        }
        self.prompt_text()?;
        check_sampling(self.temperature, self.top_p, self.seed, &self.stop, self.n)?;
        no_penalty("frequency_penalty", self.frequency_penalty)?;
        no_penalty("presence_penalty", self.presence_penalty)?;
        if self.suffix.is_some() {
            return Err(ProtocolError::unsupported(
                "suffix",
                "insertion is not implemented",
            ));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(ProtocolError::unsupported("best_of", "only 1"));
        }
        if self.logit_bias.is_some() {
            return Err(ProtocolError::unsupported(
                "logit_bias",
                "not implemented yet",
            ));
        }
        if let Some(k) = self.logprobs {
            if k > 5 {
                return Err(ProtocolError::invalid(
                    "logprobs",
                    format!("{k} is above 5"),
                ));
            }
        }
        if self.max_tokens == Some(0) && self.stream {
            return Err(ProtocolError::invalid(
                "max_tokens",
                "0 (prompt scoring) cannot stream",
            ));
        }
        Ok(())
    }
}

/// Token counts of a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

impl Usage {
    pub fn new(prompt: usize, completion: usize, cached: usize) -> Self {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
            },
        }
    }
}

/// One alternative token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// A generated token with its logprob and alternatives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChoiceLogprobs {
    pub content: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AssistantMessage {
    pub role: String,
    /// Null when the answer is tool calls only.
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<ChoiceLogprobs>,
    pub finish_reason: String,
}

/// Non-streaming chat answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
    /// Citations of a grounded answer (`outpost.retrieve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outpost: Option<crate::retrieval::OutpostAnswer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<crate::tools::ToolCallDelta>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<ChoiceLogprobs>,
    pub finish_reason: Option<String>,
}

/// One SSE event of a streamed chat answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Citations of a streamed grounded answer (`outpost.retrieve`): on
    /// the chunk that carries `finish_reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outpost: Option<crate::retrieval::OutpostAnswer>,
}

/// Legacy completion logprobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<Option<f32>>,
    pub top_logprobs: Vec<Option<std::collections::BTreeMap<String, f32>>>,
    pub text_offset: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub logprobs: Option<CompletionLogprobs>,
    pub finish_reason: Option<String>,
}

/// `/v1/completions` answer, or one SSE event of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Completion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ModelCard {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

/// The field a serde error message names, if any (`unknown field `x``,
/// `invalid type ... at line`, `missing field `model``).
pub fn field_of_serde_error(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(msg[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ChatCompletionRequest, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn minimal_request_parses_and_validates() {
        let r =
            parse(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).expect("parse");
        assert!(r.validate().is_ok());
        assert_eq!(r.messages[0].text(), "hi");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = parse(r#"{"model":"m","messages":[],"mystery":1}"#)
            .expect_err("an unknown field")
            .to_string();
        assert_eq!(field_of_serde_error(&e).as_deref(), Some("mystery"), "{e}");
    }

    #[test]
    fn tool_history_is_checked() {
        let call = r#"{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}"#;
        let tools = r#""tools":[{"type":"function","function":{"name":"f"}}]"#;
        let ok = format!(
            r#"{{"model":"m",{tools},"messages":[{{"role":"user","content":"hi"}},{call},{{"role":"tool","tool_call_id":"call_1","content":"42"}}]}}"#
        );
        let r = parse(&ok).expect("parse");
        assert!(r.validate().is_ok());
        assert_eq!(r.call_name("call_1"), Some("f"));
        let stranger = ok.replace(r#""tool_call_id":"call_1""#, r#""tool_call_id":"call_9""#);
        let e = parse(&stranger)
            .expect("parse")
            .validate()
            .expect_err("unknown id");
        assert_eq!(e.param(), "messages[2].tool_call_id");
        let bad_args = ok.replace(r#"{\"a\":1}"#, "not json");
        let e = parse(&bad_args)
            .expect("parse")
            .validate()
            .expect_err("args");
        assert_eq!(e.param(), "messages[1].tool_calls[0].function.arguments");
    }

    #[test]
    fn unsupported_and_out_of_range_values_name_the_parameter() {
        let base = r#""model":"m","messages":[{"role":"user","content":"hi"}]"#;
        for (extra, param) in [
            (r#""n":2"#, "n"),
            (r#""functions":[]"#, "functions"),
            (r#""tool_choice":"required""#, "tool_choice"),
            (
                r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"number","maximum":1}}}}}]"#,
                "tools[0].function.parameters.properties.x.maximum",
            ),
            (r#""temperature":3"#, "temperature"),
            (r#""top_p":0"#, "top_p"),
            (r#""seed":-1"#, "seed"),
            (r#""top_logprobs":2"#, "top_logprobs"),
            (r#""max_tokens":0"#, "max_tokens"),
            (r#""frequency_penalty":0.5"#, "frequency_penalty"),
            (
                r#""response_format":{"type":"json_schema","json_schema":{"name":"x"}}"#,
                "response_format",
            ),
        ] {
            let r = parse(&format!("{{{base},{extra}}}")).expect("parse");
            let e = r.validate().expect_err("must be refused");
            assert_eq!(e.param(), param, "{extra}: {e}");
            assert_eq!(e.body().error.param.as_deref(), Some(param));
        }
    }

    #[test]
    fn response_shapes_are_stable() {
        // A compatibility snapshot: changing these fields breaks clients.
        let c = ChatCompletion {
            id: "chatcmpl-1".into(),
            object: "chat.completion".into(),
            created: 1,
            model: "m".into(),
            system_fingerprint: "fp".into(),
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".into(),
                    content: Some("hi".into()),
                    tool_calls: None,
                },
                logprobs: None,
                finish_reason: "stop".into(),
            }],
            usage: Usage::new(3, 1, 2),
            outpost: None,
        };
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":2}}}"#
        );
    }
}
