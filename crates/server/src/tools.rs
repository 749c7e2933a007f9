//! Tool calling on the local model, for both APIs. A model whose chat
//! template takes `tools` in a syntax `outpost_protocol::tool_native`
//! knows (Hermes/Qwen, Llama 3, Mistral) is asked in its own format: the
//! template renders the tools, earlier calls and results, and the answer
//! is grammar-constrained to the family's calls (lazily under `auto`).
//! Any other model gets the generic format of `outpost_protocol::tools`:
//! the tools described in the system message, earlier calls as the model
//! writes them, results as user turns, and the answer constrained to
//! calls or text. Either way the answer is read back whole, or as a
//! stream of content and call deltas.

use outpost_engine::{GenerateRequest, Message, MessageCall, TemplateValue};
use outpost_protocol::tool_native::{mistral_id, Family, NativeStream};
use outpost_protocol::tool_stream::{StreamEvent, ToolStream};
use outpost_protocol::tools::{self, FunctionCall, Output, ToolCall, ToolPlan};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::flow::next_id;

/// One turn of a conversation as both APIs give it.
pub(crate) struct Turn<'a> {
    pub role: &'a str,
    pub text: String,
    /// An assistant turn's calls: (id, name, arguments object); the id
    /// is empty where the API has none (Ollama).
    pub calls: Vec<(String, String, Value)>,
    /// A tool turn: the call it answers, where the API says (OpenAI).
    pub call_id: Option<String>,
    /// A tool turn: the function whose result this is.
    pub tool: Option<String>,
}

/// What a chat with tools hands the engine.
pub(crate) struct Prepared {
    pub messages: Vec<Message>,
    /// `tools[]` for a template that renders them (native format).
    pub tools: Vec<TemplateValue>,
    pub plan: Option<ToolPlan>,
    pub family: Option<Family>,
}

/// The messages (and tools) the template renders, and the plan that
/// holds for this turn.
pub(crate) fn prepare(
    turns: Vec<Turn<'_>>,
    plan: Option<ToolPlan>,
    family: Option<Family>,
) -> Prepared {
    match family {
        Some(f) => {
            let tools = plan
                .iter()
                .flat_map(|p| &p.functions)
                .map(|fd| {
                    TemplateValue::from_serialize(json!({"type": "function", "function": fd}))
                })
                .collect();
            Prepared {
                messages: native_messages(turns, f),
                tools,
                plan,
                family,
            }
        }
        None => {
            let last = turns.last().map(|t| t.role);
            let plan = settle(plan, last);
            Prepared {
                messages: messages(turns, plan.as_ref()),
                tools: Vec::new(),
                plan,
                family: None,
            }
        }
    }
}

/// The history as a tools template reads it: calls and results as
/// structured messages, each result tied to its call's id (Ollama gives
/// none: calls are numbered, and a result answers the earliest call of
/// its function not yet answered). Mistral's templates take 9-character
/// ids only, so ids are mapped to such for them.
fn native_messages(turns: Vec<Turn<'_>>, family: Family) -> Vec<Message> {
    let id_for = |id: String| {
        if family == Family::Mistral {
            mistral_id(&id)
        } else {
            id
        }
    };
    let mut open: Vec<(String, String)> = Vec::new();
    let mut n = 0;
    let mut out = Vec::new();
    for t in turns {
        let role = if t.role == "developer" {
            "system"
        } else {
            t.role
        };
        let mut m = Message::new(role, t.text);
        for (id, name, arguments) in t.calls {
            n += 1;
            let id = if id.is_empty() {
                format!("call{n}")
            } else {
                id
            };
            open.push((id.clone(), name.clone()));
            m.tool_calls.push(MessageCall {
                id: id_for(id),
                name,
                arguments: TemplateValue::from_serialize(&arguments),
            });
        }
        if role == "tool" {
            let at = match (&t.call_id, &t.tool) {
                (Some(id), _) => open.iter().position(|(i, _)| i == id),
                (None, Some(name)) => open.iter().position(|(_, f)| f == name),
                (None, None) => (!open.is_empty()).then_some(0),
            };
            let answered = at.map(|i| open.remove(i));
            let id = t
                .call_id
                .or_else(|| answered.as_ref().map(|(i, _)| i.clone()));
            m.tool_call_id = id.map(id_for);
            m.name = t.tool.or_else(|| answered.map(|(_, f)| f));
        }
        out.push(m);
    }
    out
}

/// The messages the template renders in the generic format: `developer`
/// as `system`, earlier calls in the format the model answers in,
/// consecutive tool results as one user turn, and with a plan the tools'
/// instructions in the (first) system message.
fn messages(turns: Vec<Turn<'_>>, plan: Option<&ToolPlan>) -> Vec<Message> {
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
                let calls: Vec<(String, Value)> =
                    t.calls.into_iter().map(|(_, n, a)| (n, a)).collect();
                Message::new("assistant", tools::render_calls(&calls))
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

/// Under `auto` in the generic format, an answer right after tool results
/// is words: models whose template knows no tools call the same tools
/// again and again otherwise (SmolLM2 did in every round of a two-tool
/// LangChain task). A client that wants another round of calls says
/// `tool_choice: "required"` (or names the function). Models asked in
/// their own format decide for themselves.
fn settle(plan: Option<ToolPlan>, last_role: Option<&str>) -> Option<ToolPlan> {
    match plan {
        Some(p) if p.mode == tools::Mode::Auto && last_role == Some("tool") => None,
        other => other,
    }
}

/// Constrains `g` to calls with valid arguments (or text): the generic
/// format's whole answer, or the family's calls.
pub(crate) fn constrain(
    g: &mut GenerateRequest,
    plan: &ToolPlan,
    family: Option<Family>,
) -> Result<(), ApiError> {
    let bad = |e: outpost_engine::EngineError| {
        ApiError::bad_request(
            Some("tools"),
            "invalid_value",
            format!("the tools' parameter schemas cannot be enforced: {e}"),
        )
    };
    match family {
        None => {
            g.grammar =
                Some(outpost_engine::json_schema_grammar(&plan.output_schema()).map_err(bad)?);
            g.grammar_triggers = Vec::new();
            g.preserved_tokens = Vec::new();
        }
        Some(f) => {
            let call = outpost_engine::json_schema_grammar(&f.call_schema(plan)).map_err(bad)?;
            let native = f.grammar(plan, &call);
            g.grammar = Some(native.gbnf);
            g.grammar_triggers = native.triggers;
            g.preserved_tokens = f.markers();
        }
    }
    Ok(())
}

/// A new call id (9 letters and digits for Mistral, whose templates
/// check).
pub(crate) fn call_id(family: Option<Family>) -> String {
    let id = format!("call_{}", next_id());
    match family {
        Some(Family::Mistral) => mistral_id(&id),
        _ => id,
    }
}

/// A finished answer: (content, calls). Text that is not the format (cut
/// short) comes back as content, as generated.
pub(crate) fn finished(text: &str, family: Option<Family>) -> (Option<String>, Vec<ToolCall>) {
    let (content, calls) = match family {
        Some(f) => f.parse(text),
        None => match tools::parse_output(text) {
            Output::Calls(calls) => (None, calls),
            Output::Text(t) | Output::Raw(t) => (Some(t), Vec::new()),
        },
    };
    let calls = calls
        .into_iter()
        .map(|(name, arguments)| ToolCall {
            id: call_id(family),
            kind: "function".into(),
            function: FunctionCall { name, arguments },
        })
        .collect();
    (content, calls)
}

enum Stream {
    Generic(ToolStream),
    Native(NativeStream),
}

/// A streamed answer's reader: feed pieces, get events; at the end, what
/// is left to say as content.
pub(crate) struct Reader {
    stream: Stream,
    text: String,
    said: bool,
    pub calls: u32,
    pub family: Option<Family>,
}

impl Reader {
    pub fn new(family: Option<Family>) -> Reader {
        Reader {
            stream: match family {
                Some(f) => Stream::Native(NativeStream::new(f)),
                None => Stream::Generic(ToolStream::new()),
            },
            text: String::new(),
            said: false,
            calls: 0,
            family,
        }
    }

    pub fn feed(&mut self, piece: &str) -> Vec<StreamEvent> {
        self.text.push_str(piece);
        let events = match &mut self.stream {
            Stream::Generic(s) => s.feed(piece),
            Stream::Native(s) => s.feed(piece),
        };
        self.saw(&events);
        events
    }

    fn saw(&mut self, events: &[StreamEvent]) {
        for e in events {
            self.said = true;
            if let StreamEvent::CallStart { .. } = e {
                self.calls += 1;
            }
        }
    }

    /// At the end: text held back (it only looked like an opener), or,
    /// in the generic format, the whole text when none of it could be
    /// streamed (not the format), as content.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let events = match &mut self.stream {
            Stream::Native(s) => s.finish(),
            Stream::Generic(_) if !self.said && !self.text.is_empty() => {
                vec![StreamEvent::Content(self.text.clone())]
            }
            Stream::Generic(_) => Vec::new(),
        };
        self.saw(&events);
        events
    }
}
