//! Tool calling on the local model, for both APIs, in the generic format
//! of `outpost_protocol::tools`: the history rendered for the template
//! (earlier calls as the model writes them, results as user turns), the
//! tools described in the system message, the answer grammar-constrained
//! to calls or text, and the answer read back — whole, or as a stream of
//! content and call deltas.

use outpost_engine::Message;
use outpost_protocol::tool_stream::{StreamEvent, ToolStream};
use outpost_protocol::tools::{self, FunctionCall, Output, ToolCall, ToolPlan};
use serde_json::Value;

use crate::error::ApiError;
use crate::flow::next_id;

/// One turn of a conversation as both APIs give it.
pub(crate) struct Turn<'a> {
    pub role: &'a str,
    pub text: String,
    /// An assistant turn's calls: (name, arguments object).
    pub calls: Vec<(String, Value)>,
    /// A tool turn: the function whose result this is.
    pub tool: Option<String>,
}

/// The messages the template renders: `developer` as `system`, earlier
/// calls in the format the model answers in, consecutive tool results as one user turn,
/// and with a plan the tools' instructions in the (first) system message.
pub(crate) fn messages(turns: Vec<Turn<'_>>, plan: Option<&ToolPlan>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut results: Vec<(String, String)> = Vec::new();
    for t in turns {
        if t.role == "tool" {
            results.push((t.tool.unwrap_or_else(|| "tool".into()), t.text));
            continue;
        }
        if !results.is_empty() {
            out.push(Message::new("user", tools::render_results(&results)));
            results.clear();
        }
        out.push(match t.role {
            "developer" | "system" => Message::new("system", t.text),
            "assistant" if !t.calls.is_empty() => {
                Message::new("assistant", tools::render_calls(&t.calls))
            }
            role => Message::new(role, t.text),
        });
    }
    if !results.is_empty() {
        out.push(Message::new("user", tools::render_results(&results)));
    }
    if let Some(plan) = plan {
        let how = plan.instructions();
        match out.first_mut() {
            Some(m) if m.role == "system" => m.content = format!("{}\n\n{how}", m.content),
            _ => out.insert(0, Message::new("system", how)),
        }
    }
    out
}

/// Under `auto`, an answer right after tool results is words: models
/// whose template knows no tools (the generic format) call the same tools
/// again and again otherwise (SmolLM2 did in every round of a two-tool
/// LangChain task). A client that wants another round of calls says
/// `tool_choice: "required"` (or names the function).
pub(crate) fn settle(plan: Option<ToolPlan>, last_role: Option<&str>) -> Option<ToolPlan> {
    match plan {
        Some(p) if p.mode == tools::Mode::Auto && last_role == Some("tool") => None,
        other => other,
    }
}

/// The grammar that keeps the answer to calls (valid arguments) or text.
pub(crate) fn grammar(plan: &ToolPlan) -> Result<String, ApiError> {
    outpost_engine::json_schema_grammar(&plan.output_schema()).map_err(|e| {
        ApiError::bad_request(
            Some("tools"),
            "invalid_value",
            format!("the tools' parameter schemas cannot be enforced: {e}"),
        )
    })
}

/// A new call id.
pub(crate) fn call_id() -> String {
    format!("call_{}", next_id())
}

/// A finished answer: (content, calls). Text that is not the format (cut
/// short) comes back as content, as generated.
pub(crate) fn finished(text: &str) -> (Option<String>, Vec<ToolCall>) {
    match tools::parse_output(text) {
        Output::Calls(calls) => (
            None,
            calls
                .into_iter()
                .map(|(name, arguments)| ToolCall {
                    id: call_id(),
                    kind: "function".into(),
                    function: FunctionCall { name, arguments },
                })
                .collect(),
        ),
        Output::Text(t) | Output::Raw(t) => (Some(t), Vec::new()),
    }
}

/// A streamed answer's reader: feed pieces, get events; at the end, what
/// was not the format.
#[derive(Default)]
pub(crate) struct Reader {
    stream: ToolStream,
    text: String,
    said: bool,
    pub calls: u32,
}

impl Reader {
    pub fn feed(&mut self, piece: &str) -> Vec<StreamEvent> {
        self.text.push_str(piece);
        let events = self.stream.feed(piece);
        for e in &events {
            self.said = true;
            if let StreamEvent::CallStart { .. } = e {
                self.calls += 1;
            }
        }
        events
    }

    /// The whole text, when nothing of it could be streamed as content or
    /// calls (not the format): to be sent as content before the end.
    pub fn unsaid(&self) -> Option<String> {
        (!self.said && !self.text.is_empty()).then(|| self.text.clone())
    }
}
