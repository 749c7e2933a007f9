//! Tool calling, shared by the OpenAI and Ollama APIs: the wire types, the
//! checks (a bad tool list is a 400 naming the field), and the generic
//! format Outpost asks a model in when its chat template knows no tools.
//!
//! The generic format: the tools are described in the system message, and
//! the answer is one JSON object, grammar-constrained from its first token
//! to [`ToolPlan::output_schema`]: `{"tool_calls": [{"name": ..,
//! "arguments": {..}}]}` or, under `auto`, `{"response": "text"}`. Each
//! call's `arguments` follow its function's parameter schema, so they are
//! valid by construction; [`check_schema`] refuses, by keyword, what the
//! grammar cannot enforce. [`parse_output`] reads a finished answer and
//! [`crate::tool_stream::ToolStream`] a streamed one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ProtocolError;

/// `tools[]`: a function the model may call.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDef {
    /// 1-64 of `a-z A-Z 0-9 _ -`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema for the arguments object (none: no arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Accepted; arguments always follow the schema here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: `auto`, `none`, `required`, or one named function.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named(NamedChoice),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedChoice {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ChoiceName,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceName {
    pub name: String,
}

/// A call the model made (OpenAI's shape: arguments as a JSON string).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments object as JSON text.
    pub arguments: String,
}

/// A call the model made, in Ollama's shape (arguments as an object).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = OllamaToolCall)]
#[serde(deny_unknown_fields)]
pub struct OllamaToolCall {
    pub function: OllamaFunction,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OllamaFunction {
    /// The call's place in the answer (newer Ollama versions send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    pub name: String,
    pub arguments: serde_json::Map<String, Value>,
}

/// A streamed piece of a call: the first carries `id`, `type` and the
/// name; later ones carry `arguments` fragments.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, utoipa::ToSchema)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub function: FunctionCallDelta,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, utoipa::ToSchema)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// What the model must answer with.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Calls or text, as the model sees fit.
    Auto,
    /// At least one call.
    Required,
    /// Exactly this function (one call, or several with parallel calls).
    Named(String),
}

/// The most calls one answer may hold.
pub const MAX_CALLS: usize = 16;

/// A validated tool request: the functions, what is asked, and whether
/// several calls may come in one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolPlan {
    pub functions: Vec<FunctionDef>,
    pub mode: Mode,
    pub parallel: bool,
}

/// Function names as OpenAI allows them.
fn check_name(name: &str, param: &str) -> Result<(), ProtocolError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::invalid(
            param,
            format!("{name:?} is not 1-64 of a-z, A-Z, 0-9, '_' and '-'"),
        ))
    }
}

/// Checks `tools`, `tool_choice` and `parallel_tool_calls` (the names of
/// the request's fields are used in errors): `None` when no tool may be
/// called (no tools, or `tool_choice: "none"`).
pub fn plan(
    tools: Option<&[Tool]>,
    choice: Option<&ToolChoice>,
    parallel: Option<bool>,
) -> Result<Option<ToolPlan>, ProtocolError> {
    let tools = tools.unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut functions = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        if t.kind != "function" {
            return Err(ProtocolError::invalid(
                &format!("tools[{i}].type"),
                format!("{:?}; only \"function\" tools exist", t.kind),
            ));
        }
        let f = &t.function;
        check_name(&f.name, &format!("tools[{i}].function.name"))?;
        if !names.insert(f.name.clone()) {
            return Err(ProtocolError::invalid(
                &format!("tools[{i}].function.name"),
                format!("{:?} is given twice; function names must be unique", f.name),
            ));
        }
        if let Some(p) = &f.parameters {
            let param = format!("tools[{i}].function.parameters");
            if p.get("type").and_then(Value::as_str) != Some("object") {
                return Err(ProtocolError::invalid(
                    &param,
                    "must be a JSON Schema with \"type\": \"object\" (the arguments are an object)",
                ));
            }
            check_schema(p, &param)?;
        }
        functions.push(f.clone());
    }
    let mode = match choice {
        None => Mode::Auto,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => Mode::Auto,
            "none" => return Ok(None),
            "required" => Mode::Required,
            other => {
                return Err(ProtocolError::invalid(
                    "tool_choice",
                    format!("{other:?}; give \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"),
                ))
            }
        },
        Some(ToolChoice::Named(n)) => {
            if n.kind != "function" {
                return Err(ProtocolError::invalid(
                    "tool_choice.type",
                    format!("{:?}; only \"function\"", n.kind),
                ));
            }
            if !names.contains(&n.function.name) {
                return Err(ProtocolError::invalid(
                    "tool_choice.function.name",
                    format!(
                        "{:?} is not one of the tools ({})",
                        n.function.name,
                        names.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            Mode::Named(n.function.name.clone())
        }
    };
    if functions.is_empty() {
        if choice.is_some() && mode != Mode::Auto {
            return Err(ProtocolError::invalid(
                "tool_choice",
                "asks for a tool call, but no tools are given",
            ));
        }
        return Ok(None);
    }
    Ok(Some(ToolPlan {
        functions,
        mode,
        parallel: parallel.unwrap_or(true),
    }))
}

/// Keywords that only describe (the grammar need not enforce them).
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "strict",
];

/// Keywords the grammar enforces, whatever the type.
const ENFORCED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
    "minLength",
    "maxLength",
    "format",
];

/// Refuses, naming the keyword and where it is, a schema that llama.cpp's
/// grammar converter cannot enforce: unknown keywords (`not`, `if`,
/// `multipleOf`, `uniqueItems`, `patternProperties`, ...), `pattern` (an
/// unsupported one would silently accept any string), bounds on
/// non-integer numbers, and formats other than date, time, date-time and
/// uuid.
pub fn check_schema(schema: &Value, at: &str) -> Result<(), ProtocolError> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => {
            return Err(ProtocolError::invalid(
                at,
                "a schema must be an object or a boolean",
            ))
        }
    };
    let integer = match obj.get("type") {
        Some(Value::String(t)) => t == "integer",
        _ => false,
    };
    for (key, v) in obj {
        let here = format!("{at}.{key}");
        let k = key.as_str();
        if ANNOTATIONS.contains(&k) {
            continue;
        }
        match k {
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" if integer => {
                if !v.is_i64() && !v.is_u64() {
                    return Err(ProtocolError::invalid(&here, "an integer bound must be an integer"));
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                return Err(ProtocolError::unsupported(
                    &here,
                    format!("`{k}` is only enforced on \"type\": \"integer\"; the grammar cannot bound other numbers"),
                ))
            }
            "pattern" => {
                return Err(ProtocolError::unsupported(
                    &here,
                    "`pattern` cannot be enforced for tool arguments; use enum, format, minLength or maxLength",
                ))
            }
            "format" => {
                let f = v.as_str().unwrap_or_default();
                if !matches!(f, "date" | "time" | "date-time" | "uuid") {
                    return Err(ProtocolError::unsupported(
                        &here,
                        format!("format {f:?} cannot be enforced; date, time, date-time and uuid can"),
                    ));
                }
            }
            "properties" | "$defs" | "definitions" => {
                let Some(props) = v.as_object() else {
                    return Err(ProtocolError::invalid(&here, "must be an object of schemas"));
                };
                for (name, s) in props {
                    check_schema(s, &format!("{here}.{name}"))?;
                }
            }
            "items" | "additionalProperties" => check_schema(v, &here)?,
            "prefixItems" | "anyOf" | "oneOf" | "allOf" => {
                let Some(list) = v.as_array() else {
                    return Err(ProtocolError::invalid(&here, "must be an array of schemas"));
                };
                for (i, s) in list.iter().enumerate() {
                    check_schema(s, &format!("{here}[{i}]"))?;
                }
            }
            "required" => {
                if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    return Err(ProtocolError::invalid(&here, "must be an array of property names"));
                }
            }
            "$ref" => {
                if !v.as_str().is_some_and(|r| r.starts_with("#/")) {
                    return Err(ProtocolError::unsupported(
                        &here,
                        "only local references (\"#/$defs/...\") can be followed",
                    ));
                }
            }
            _ if ENFORCED.contains(&k) => {}
            _ => {
                return Err(ProtocolError::unsupported(
                    &here,
                    format!("the keyword `{k}` cannot be enforced by the grammar that keeps arguments valid"),
                ))
            }
        }
    }
    Ok(())
}

/// A function's parameter schema (none: an empty object).
fn parameters(f: &FunctionDef) -> Value {
    f.parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
}

impl ToolPlan {
    /// The JSON Schema the whole answer is constrained to, as text: the
    /// grammar keeps the properties in the order written, and a call must
    /// name its function before its arguments (a `Value` would sort them).
    pub fn output_schema(&self) -> String {
        let item = self.call_schema("arguments");
        let max = self.max_calls();
        let with_calls = format!(
            r#"{{"type":"object","properties":{{"tool_calls":{{"type":"array","items":{item},"minItems":1,"maxItems":{max}}}}},"required":["tool_calls"],"additionalProperties":false}}"#
        );
        match self.mode {
            Mode::Auto => format!(
                r#"{{"anyOf":[{with_calls},{{"type":"object","properties":{{"response":{{"type":"string"}}}},"required":["response"],"additionalProperties":false}}]}}"#
            ),
            _ => with_calls,
        }
    }

    /// The JSON Schema of one call, as text: `{"name": .., <args_key>:
    /// {..}}` for each function the mode allows (name first; see
    /// [`ToolPlan::output_schema`]).
    pub fn call_schema(&self, args_key: &str) -> String {
        let call = |f: &FunctionDef| {
            format!(
                r#"{{"type":"object","properties":{{"name":{{"const":{}}},{}:{}}},"required":["name",{}],"additionalProperties":false}}"#,
                Value::from(f.name.as_str()),
                Value::from(args_key),
                parameters(f),
                Value::from(args_key),
            )
        };
        let items: Vec<String> = match &self.mode {
            Mode::Named(n) => self
                .functions
                .iter()
                .filter(|f| &f.name == n)
                .map(call)
                .collect(),
            _ => self.functions.iter().map(call).collect(),
        };
        if items.len() == 1 {
            items.concat()
        } else {
            format!(r#"{{"anyOf":[{}]}}"#, items.join(","))
        }
    }

    /// The most calls one answer may hold: at most two per function and
    /// [`MAX_CALLS`] in all with parallel calls (so that a small model that
    /// repeats itself cannot list calls until the context is full), else 1.
    pub fn max_calls(&self) -> usize {
        if self.parallel {
            (2 * self.functions.len()).min(MAX_CALLS)
        } else {
            1
        }
    }

    /// The system message's addition that tells the model its tools and
    /// how to answer.
    pub fn instructions(&self) -> String {
        let mut s = String::from("You have these tools:\n");
        for f in &self.functions {
            s.push_str(&format!(
                "- {}: {} Arguments (JSON Schema): {}\n",
                f.name,
                f.description.as_deref().unwrap_or(""),
                parameters(f)
            ));
        }
        s.push_str("Reply with one JSON object only. To use tools: {\"tool_calls\": [{\"name\": <tool name>, \"arguments\": <arguments object>}]}");
        if self.parallel {
            s.push_str(", one entry per call");
        }
        match &self.mode {
            Mode::Auto => s.push_str(". To reply without a tool: {\"response\": <your reply as a string>}. Use a tool when the request needs one; once a tool has returned, answer with its result."),
            Mode::Required => s.push_str(". You must use at least one tool."),
            Mode::Named(n) => s.push_str(&format!(". You must use {n}.")),
        }
        s
    }
}

/// A finished answer in the generic format.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// (function name, arguments as compact JSON text), in order.
    Calls(Vec<(String, String)>),
    Text(String),
    /// Not the format (cut short by max_tokens or a stop string): the raw
    /// text, answered as content.
    Raw(String),
}

/// Reads a finished answer.
pub fn parse_output(text: &str) -> Output {
    let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
        return Output::Raw(text.to_string());
    };
    if let Some(r) = v.get("response").and_then(Value::as_str) {
        return Output::Text(r.to_string());
    }
    let Some(calls) = v.get("tool_calls").and_then(Value::as_array) else {
        return Output::Raw(text.to_string());
    };
    let mut out = Vec::new();
    for c in calls {
        let (Some(name), Some(args)) = (c.get("name").and_then(Value::as_str), c.get("arguments"))
        else {
            return Output::Raw(text.to_string());
        };
        out.push((name.to_string(), args.to_string()));
    }
    Output::Calls(out)
}

/// An earlier assistant turn's calls, as the model would have written them.
pub fn render_calls(calls: &[(String, Value)]) -> String {
    let list: Vec<Value> = calls
        .iter()
        .map(|(name, args)| json!({"name": name, "arguments": args}))
        .collect();
    json!({ "tool_calls": list }).to_string()
}

/// Tools' results (function, content), as the next user turn: the
/// generic format's templates know no `tool` role, and small models answer
/// better from one turn that holds every result than from several.
pub fn render_results(results: &[(String, String)]) -> String {
    let mut s = String::from("Tool results:\n");
    for (name, content) in results {
        s.push_str(&format!("- {name} returned: {content}\n"));
    }
    s.push_str("Answer my question with these results, in words: {\"response\": ...}.");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, params: Value) -> Tool {
        Tool {
            kind: "function".into(),
            function: FunctionDef {
                name: name.into(),
                description: Some("d".into()),
                parameters: Some(params),
                strict: None,
            },
        }
    }

    fn obj() -> Value {
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    }

    #[test]
    fn bad_tool_lists_name_the_field() {
        let two = [tool("a", obj()), tool("a", obj())];
        let e = plan(Some(&two), None, None).expect_err("dup");
        assert_eq!(e.param(), "tools[1].function.name");
        let one = [tool("get_weather", obj())];
        let named = ToolChoice::Named(NamedChoice {
            kind: "function".into(),
            function: ChoiceName {
                name: "nope".into(),
            },
        });
        let e = plan(Some(&one), Some(&named), None).expect_err("unknown");
        assert_eq!(e.param(), "tool_choice.function.name");
        assert!(e.to_string().contains("get_weather"), "{e}");
        let e = plan(Some(&[tool("bad name", obj())]), None, None).expect_err("name");
        assert_eq!(e.param(), "tools[0].function.name");
        let e = plan(Some(&[tool("f", json!({"type": "string"}))]), None, None).expect_err("obj");
        assert_eq!(e.param(), "tools[0].function.parameters");
        let none = ToolChoice::Mode("none".into());
        assert_eq!(plan(Some(&one), Some(&none), None), Ok(None));
        let req = ToolChoice::Mode("required".into());
        assert!(plan(None, Some(&req), None).is_err());
    }

    #[test]
    fn keywords_the_grammar_cannot_enforce_are_refused_by_name() {
        for (schema, at) in [
            (
                json!({"type": "object", "properties": {"x": {"type": "number", "minimum": 0}}}),
                "p.properties.x.minimum",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "pattern": "^a$"}}}),
                "p.properties.x.pattern",
            ),
            (
                json!({"type": "object", "properties": {"x": {"not": {"type": "null"}}}}),
                "p.properties.x.not",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "array", "uniqueItems": true}}}),
                "p.properties.x.uniqueItems",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "format": "email"}}}),
                "p.properties.x.format",
            ),
        ] {
            let e = check_schema(&schema, "p").expect_err(at);
            assert_eq!(e.param(), at);
        }
        let fine = json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 9, "description": "d"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
            "when": {"type": "string", "format": "date"},
            "sub": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "additionalProperties": false}
        }, "required": ["n"]});
        assert_eq!(check_schema(&fine, "p"), Ok(()));
    }

    #[test]
    fn the_output_schema_follows_the_mode() {
        let tools = [tool("a", obj()), tool("b", obj())];
        let p = plan(Some(&tools), None, Some(false))
            .expect("ok")
            .expect("plan");
        let text = p.output_schema();
        assert!(text.find("\"name\"") < text.find("\"arguments\""), "{text}");
        let s: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(s["anyOf"][0]["properties"]["tool_calls"]["maxItems"], 1);
        assert_eq!(s["anyOf"][1]["required"][0], "response");
        let named = ToolChoice::Named(NamedChoice {
            kind: "function".into(),
            function: ChoiceName { name: "b".into() },
        });
        let p = plan(Some(&tools), Some(&named), None)
            .expect("ok")
            .expect("plan");
        let s: Value = serde_json::from_str(&p.output_schema()).expect("json");
        assert_eq!(
            s["properties"]["tool_calls"]["items"]["properties"]["name"]["const"],
            "b"
        );
        assert!(p.instructions().contains("You must use b"));
    }

    #[test]
    fn outputs_parse() {
        assert_eq!(
            parse_output(r#"{"tool_calls": [{"name": "a", "arguments": {"city": "Paris"}}]}"#),
            Output::Calls(vec![("a".into(), r#"{"city":"Paris"}"#.into())])
        );
        assert_eq!(
            parse_output(r#" {"response": "hi"}"#),
            Output::Text("hi".into())
        );
        assert_eq!(
            parse_output(r#"{"tool_calls": [{"na"#),
            Output::Raw(r#"{"tool_calls": [{"na"#.into())
        );
    }
}
