//! Tool calling in a model's own format, for chat templates that take
//! `tools` and whose call syntax is known here: the template renders the
//! tools and the history itself, the answer is grammar-constrained to the
//! family's call syntax (from the first token under `required` or a named
//! function; lazily, once the family's opener appears, under `auto`), and
//! the answer is read back whole or while it streams.
//!
//! Families, told apart by what their templates write:
//! - [`Family::Hermes`] (Qwen 2.5/3, Hermes 2 Pro/3, and others):
//!   `<tool_call>\n{"name": .., "arguments": {..}}\n</tool_call>`, one
//!   block per call, text before the first allowed.
//! - [`Family::Llama3`] (Llama 3.1/3.2/3.3 JSON tool calling): the whole
//!   answer is `{"name": .., "parameters": {..}}`, one call per turn (the
//!   templates refuse more).
//! - [`Family::Mistral`] (Mistral 7B v0.3, Nemo): `[TOOL_CALLS][{"name":
//!   .., "arguments": {..}}, ..]`; call ids are 9 letters or digits, which
//!   its templates check.
//!
//! A template that takes tools in another syntax gets the generic format
//! of [`crate::tools`] instead, as does one that takes none.

use serde_json::Value;

use crate::tool_stream::{StreamEvent, ToolStream};
use crate::tools::ToolPlan;

/// A known call syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Hermes,
    Llama3,
    Mistral,
}

/// A grammar for a family's answer: GBNF with rule `root`, and the
/// patterns that start it (empty: it applies from the first token).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeGrammar {
    pub gbnf: String,
    /// Regular expressions (ECMAScript, as llama.cpp's lazy grammars take
    /// them); the grammar applies from the first capture group, or the
    /// match, on.
    pub triggers: Vec<String>,
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const MISTRAL_OPEN: &str = "[TOOL_CALLS]";

impl Family {
    /// The family whose call syntax the chat template `source` writes, or
    /// None when it takes no `tools` or writes a syntax not known here.
    pub fn detect(source: &str) -> Option<Family> {
        if !source.contains("tools") {
            return None;
        }
        // XML calls inside `<tool_call>` (Qwen3-Coder, GLM, Nemotron) and
        // Mistral's later `[TOOL_CALLS]name[ARGS]{..}` are other syntaxes.
        let json_call = source.contains("{\"name\"") || source.contains("{\\\"name\\\"");
        let xml = ["<function=", "<parameter=", "<arg_key>"]
            .iter()
            .any(|m| source.contains(m));
        if source.contains(HERMES_OPEN) && json_call && !xml {
            Some(Family::Hermes)
        } else if source.contains(MISTRAL_OPEN) && !source.contains("[ARGS]") {
            Some(Family::Mistral)
        } else if source.contains("<|start_header_id|>") && source.contains("\"parameters\"") {
            Some(Family::Llama3)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Hermes => "hermes",
            Family::Llama3 => "llama3",
            Family::Mistral => "mistral",
        }
    }

    /// Control tokens the family's calls may be written with, kept in the
    /// generated text so that the calls can be read (Mistral's opener is
    /// one in its tokenizers; Hermes models vary).
    pub fn markers(self) -> Vec<String> {
        match self {
            Family::Hermes => vec![HERMES_OPEN.into(), HERMES_CLOSE.into()],
            Family::Mistral => vec![MISTRAL_OPEN.into()],
            Family::Llama3 => Vec::new(),
        }
    }

    /// The key a call's arguments are written under.
    pub fn args_key(self) -> &'static str {
        match self {
            Family::Llama3 => "parameters",
            _ => "arguments",
        }
    }

    /// The most calls one answer may hold.
    pub fn max_calls(self, plan: &ToolPlan) -> usize {
        match self {
            Family::Llama3 => 1,
            _ => plan.max_calls(),
        }
    }

    /// The JSON Schema of one call as this family writes it (text), to be
    /// turned into GBNF by llama.cpp's converter and handed to
    /// [`Family::grammar`].
    pub fn call_schema(self, plan: &ToolPlan) -> String {
        plan.call_schema(self.args_key())
    }

    /// The grammar of the whole answer, around `call_gbnf` (the converted
    /// [`Family::call_schema`], whose `root` rule is renamed here). Under
    /// `auto` it is lazy: text comes first, and the grammar holds from the
    /// family's opener on.
    pub fn grammar(self, plan: &ToolPlan, call_gbnf: &str) -> NativeGrammar {
        let mut call = String::from("outpost-call");
        let mut n = 0;
        while call_gbnf
            .lines()
            .any(|l| l.split_whitespace().next() == Some(call.as_str()))
        {
            n += 1;
            call = format!("outpost-call{n}");
        }
        let renamed: String = call_gbnf
            .lines()
            .map(|l| match l.strip_prefix("root ::=") {
                Some(rest) => format!("{call} ::={rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        let more = self.max_calls(plan).saturating_sub(1);
        let repeat = |item: &str| {
            if more == 0 {
                String::new()
            } else {
                format!(" ({item}){{0,{more}}}")
            }
        };
        let root = match self {
            Family::Hermes => {
                let block = format!(r#""<tool_call>\n" {call} "\n</tool_call>""#);
                format!("root ::= {block}{}\n", repeat(&format!(r#""\n" {block}"#)))
            }
            Family::Mistral => {
                format!(
                    r#"root ::= "[TOOL_CALLS][" {call}{} "]""#,
                    repeat(&format!(r#"", " {call}"#))
                ) + "\n"
            }
            Family::Llama3 => format!("root ::= {call}\n"),
        };
        let lazy = plan.mode == crate::tools::Mode::Auto;
        let triggers = if !lazy {
            Vec::new()
        } else {
            vec![match self {
                Family::Hermes => "<tool_call>".to_string(),
                Family::Mistral => r"\[TOOL_CALLS\]".to_string(),
                // The whole answer is the call: a `{` before any other text.
                Family::Llama3 => r"^\s*(\{)[\s\S]*$".to_string(),
            }]
        };
        NativeGrammar {
            gbnf: root + &renamed,
            triggers,
        }
    }

    /// Reads a finished answer: (text, calls as (name, arguments JSON)).
    /// An answer whose calls do not parse (cut short) is all text.
    pub fn parse(self, text: &str) -> (Option<String>, Vec<(String, String)>) {
        let raw = || (Some(text.to_string()), Vec::new());
        let (before, calls) = match self {
            Family::Hermes => {
                let Some(at) = text.find(HERMES_OPEN) else {
                    return raw();
                };
                let mut calls = Vec::new();
                let mut rest = &text[at..];
                loop {
                    rest = rest.trim_start();
                    if rest.is_empty() {
                        break;
                    }
                    let Some(body) = rest.strip_prefix(HERMES_OPEN) else {
                        // Cut short in the next opener: the calls stand.
                        if !calls.is_empty() && HERMES_OPEN.starts_with(rest) {
                            break;
                        }
                        return raw();
                    };
                    let Some(end) = body.find(HERMES_CLOSE) else {
                        // Cut short (max_tokens) inside a later call: the
                        // complete calls before it stand.
                        if calls.is_empty() {
                            return raw();
                        }
                        break;
                    };
                    match call_of(&body[..end], "arguments") {
                        Some(c) => calls.push(c),
                        None => return raw(),
                    }
                    rest = &body[end + HERMES_CLOSE.len()..];
                }
                (&text[..at], calls)
            }
            Family::Mistral => {
                let Some(at) = text.find(MISTRAL_OPEN) else {
                    return raw();
                };
                let list = &text[at + MISTRAL_OPEN.len()..];
                let Ok(Value::Array(items)) = serde_json::from_str::<Value>(list.trim()) else {
                    return raw();
                };
                let mut calls = Vec::new();
                for item in &items {
                    match call_of_value(item, "arguments") {
                        Some(c) => calls.push(c),
                        None => return raw(),
                    }
                }
                (&text[..at], calls)
            }
            Family::Llama3 => {
                let t = text.trim_start();
                if !t.starts_with('{') {
                    return raw();
                }
                match call_of(t, "parameters").or_else(|| call_of(t, "arguments")) {
                    Some(c) => ("", vec![c]),
                    None => return raw(),
                }
            }
        };
        if calls.is_empty() {
            return raw();
        }
        let before = before.trim();
        ((!before.is_empty()).then(|| before.to_string()), calls)
    }
}

fn call_of(json: &str, args_key: &str) -> Option<(String, String)> {
    call_of_value(&serde_json::from_str(json.trim()).ok()?, args_key)
}

fn call_of_value(v: &Value, args_key: &str) -> Option<(String, String)> {
    let name = v.get("name")?.as_str()?;
    let args = v.get(args_key)?;
    args.is_object()
        .then(|| (name.to_string(), args.to_string()))
}

/// A Mistral call id: 9 letters or digits (its templates refuse others),
/// made from any id so that an answer's calls and results still match.
pub fn mistral_id(id: &str) -> String {
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return id.to_string();
    }
    // FNV-1a: a stable spread of the id over 9 base-36 digits (not a
    // security property; two ids in one chat colliding is 1 in 10^14).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..9)
        .map(|_| {
            let d = digits[(h % 36) as usize] as char;
            h /= 36;
            d
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Before anything but whitespace (Llama 3 decides there).
    Start,
    /// Text, watching for the opener.
    Text,
    /// Inside a Hermes block, watching for its close.
    Call,
    /// Between Hermes blocks.
    Between,
    /// Everything on is the calls' JSON (Mistral, Llama 3).
    Json,
}

/// Reads a family's answer while it is generated: text before the calls
/// as content, each call's name once complete and its arguments as raw
/// JSON fragments (the calls are handed to [`ToolStream`] as if written
/// in the generic format).
#[derive(Debug)]
pub struct NativeStream {
    family: Family,
    inner: ToolStream,
    state: State,
    /// Text not yet judged: a possible start of an opener or a close.
    hold: String,
    calls: u32,
}

impl NativeStream {
    pub fn new(family: Family) -> NativeStream {
        NativeStream {
            family,
            inner: ToolStream::new(),
            state: if family == Family::Llama3 {
                State::Start
            } else {
                State::Text
            },
            hold: String::new(),
            calls: 0,
        }
    }

    /// Feeds the next piece of generated text.
    pub fn feed(&mut self, piece: &str) -> Vec<StreamEvent> {
        self.hold.push_str(piece);
        let mut out = Vec::new();
        loop {
            let before = (self.state, self.hold.len());
            self.step(&mut out);
            if (self.state, self.hold.len()) == before || self.hold.is_empty() {
                break;
            }
        }
        out
    }

    /// What is still held (text that only looked like an opener's start),
    /// as content, at the end of the answer.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let rest = std::mem::take(&mut self.hold);
        match self.state {
            State::Start | State::Text if !rest.is_empty() => vec![StreamEvent::Content(rest)],
            _ => Vec::new(),
        }
    }

    fn start_calls(&mut self, out: &mut Vec<StreamEvent>, opening: &str) {
        let prefix = if self.calls == 0 { opening } else { "," };
        self.calls += 1;
        out.extend(self.inner.feed(prefix));
    }

    fn step(&mut self, out: &mut Vec<StreamEvent>) {
        let open = match self.family {
            Family::Hermes => HERMES_OPEN,
            Family::Mistral => MISTRAL_OPEN,
            Family::Llama3 => "",
        };
        match self.state {
            State::Start => {
                let t = self.hold.trim_start();
                if t.is_empty() {
                    return;
                }
                if t.starts_with('{') {
                    let json = t.to_string();
                    self.hold.clear();
                    self.state = State::Json;
                    self.start_calls(out, "{\"tool_calls\":[");
                    out.extend(self.inner.feed(&json));
                } else {
                    self.state = State::Text;
                }
            }
            State::Text | State::Between => {
                if open.is_empty() {
                    let text = std::mem::take(&mut self.hold);
                    push_content(out, &text);
                    return;
                }
                if let Some(at) = self.hold.find(open) {
                    let text: String = self.hold.drain(..at + open.len()).collect();
                    if self.state == State::Text {
                        push_content(out, &text[..at]);
                    }
                    if self.family == Family::Hermes {
                        self.state = State::Call;
                        self.start_calls(out, "{\"tool_calls\":[");
                    } else {
                        self.state = State::Json;
                        self.start_calls(out, "{\"tool_calls\":");
                    }
                    return;
                }
                let keep = partial_suffix(&self.hold, open);
                let text: String = self.hold.drain(..self.hold.len() - keep).collect();
                if self.state == State::Text {
                    push_content(out, &text);
                } else if !text.trim().is_empty() {
                    // Text after the calls: not the format, kept as text.
                    self.state = State::Text;
                    push_content(out, &text);
                }
            }
            State::Call => {
                if let Some(at) = self.hold.find(HERMES_CLOSE) {
                    let json: String = self.hold.drain(..at + HERMES_CLOSE.len()).collect();
                    out.extend(self.inner.feed(&json[..at]));
                    self.state = State::Between;
                    return;
                }
                let keep = partial_suffix(&self.hold, HERMES_CLOSE);
                let json: String = self.hold.drain(..self.hold.len() - keep).collect();
                out.extend(self.inner.feed(&json));
            }
            State::Json => {
                let json = std::mem::take(&mut self.hold);
                out.extend(self.inner.feed(&json));
            }
        }
    }
}

fn push_content(out: &mut Vec<StreamEvent>, text: &str) {
    if text.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(StreamEvent::Content(t)) => t.push_str(text),
        _ => out.push(StreamEvent::Content(text.to_string())),
    }
}

/// The length of the longest end of `text` that begins `marker`.
fn partial_suffix(text: &str, marker: &str) -> usize {
    (1..marker.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{plan, FunctionDef, Tool, ToolChoice};
    use serde_json::json;

    fn tools() -> Vec<Tool> {
        ["get_weather", "add"]
            .iter()
            .map(|n| Tool {
                kind: "function".into(),
                function: FunctionDef {
                    name: (*n).into(),
                    description: None,
                    parameters: Some(
                        json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
                    ),
                    strict: None,
                },
            })
            .collect()
    }

    #[test]
    fn families_are_told_by_what_their_templates_write() {
        let hermes =
            "{% if tools %}...<tool_call>\n{\"name\": {{ c | tojson }}\n</tool_call>{% endif %}";
        let mistral = "{% if tools is not none %}[AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS][";
        let llama = "{% if tools %}<|start_header_id|>ipython{{ '\"parameters\": ' }}{% endif %}";
        assert_eq!(Family::detect(hermes), Some(Family::Hermes));
        assert_eq!(Family::detect(mistral), Some(Family::Mistral));
        assert_eq!(Family::detect(llama), Some(Family::Llama3));
        // No tools, or tools in an unknown syntax: the generic format.
        assert_eq!(
            Family::detect("<|im_start|>{{ m.content }}<tool_call>"),
            None
        );
        assert_eq!(
            Family::detect("{% if tools %}<function={{ name }}>{% endif %}"),
            None
        );
        // XML inside <tool_call>, and [TOOL_CALLS]name[ARGS]: not these.
        let xml = "{% if tools %}<tool_call>\n<function={{ n }}>{\"name\"{% endif %}";
        assert_eq!(Family::detect(xml), None);
        assert_eq!(
            Family::detect("{% if tools %}[TOOL_CALLS]{{ n }}[ARGS]{% endif %}"),
            None
        );
    }

    #[test]
    fn grammars_wrap_the_call_rule_and_are_lazy_under_auto() {
        let t = tools();
        let auto = plan(Some(&t), None, None).expect("ok").expect("plan");
        let call = "root ::= \"{\" space \"}\"\nspace ::= \" \"?\n";
        let g = Family::Hermes.grammar(&auto, call);
        assert!(g.gbnf.starts_with("root ::= \"<tool_call>\\n\" outpost-call \"\\n</tool_call>\" (\"\\n\" \"<tool_call>\\n\" outpost-call \"\\n</tool_call>\"){0,3}\n"), "{}", g.gbnf);
        assert!(
            g.gbnf.contains("\noutpost-call ::= \"{\" space \"}\"\n"),
            "{}",
            g.gbnf
        );
        assert_eq!(g.triggers, vec!["<tool_call>".to_string()]);
        let required = plan(
            Some(&t),
            Some(&ToolChoice::Mode("required".into())),
            Some(false),
        )
        .expect("ok")
        .expect("plan");
        let g = Family::Mistral.grammar(&required, call);
        assert!(
            g.gbnf
                .starts_with("root ::= \"[TOOL_CALLS][\" outpost-call \"]\"\n"),
            "{}",
            g.gbnf
        );
        assert!(g.triggers.is_empty());
        let g = Family::Llama3.grammar(&auto, "root ::= x\noutpost-call ::= y\n");
        assert!(g.gbnf.starts_with("root ::= outpost-call1\n"), "{}", g.gbnf);
        assert!(g.gbnf.contains("\noutpost-call1 ::= x\n"), "{}", g.gbnf);
        assert!(Family::Llama3.call_schema(&auto).contains("\"parameters\""));
    }

    #[test]
    fn answers_parse_per_family() {
        let h = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>";
        assert_eq!(
            Family::Hermes.parse(h),
            (
                Some("Let me look.".into()),
                vec![
                    ("get_weather".into(), "{\"x\":1}".into()),
                    ("add".into(), "{}".into())
                ]
            )
        );
        let cut = "<tool_call>\n{\"name\": \"add\", \"argu";
        assert_eq!(Family::Hermes.parse(cut), (Some(cut.into()), vec![]));
        assert_eq!(
            Family::Hermes.parse("just words"),
            (Some("just words".into()), vec![])
        );
        let cut_opener =
            "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>\n<tool_";
        assert_eq!(
            Family::Hermes.parse(cut_opener),
            (None, vec![("add".into(), "{}".into())])
        );
        let later_cut = "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"ad";
        assert_eq!(
            Family::Hermes.parse(later_cut),
            (None, vec![("add".into(), "{}".into())])
        );
        let m = "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"x\": 2}}]";
        assert_eq!(
            Family::Mistral.parse(m),
            (None, vec![("add".into(), "{\"x\":2}".into())])
        );
        let l = " {\"name\": \"add\", \"parameters\": {\"x\": 3}}";
        assert_eq!(
            Family::Llama3.parse(l),
            (None, vec![("add".into(), "{\"x\":3}".into())])
        );
        assert_eq!(
            Family::Llama3.parse("{not json"),
            (Some("{not json".into()), vec![])
        );
    }

    /// Feeds `text` in pieces of `n` chars: (content, [(name, args)]).
    fn stream(family: Family, text: &str, n: usize) -> (String, Vec<(String, String)>) {
        let mut s = NativeStream::new(family);
        let chars: Vec<char> = text.chars().collect();
        let mut events: Vec<StreamEvent> = Vec::new();
        for piece in chars.chunks(n) {
            events.extend(s.feed(&piece.iter().collect::<String>()));
        }
        events.extend(s.finish());
        let (mut content, mut calls) = (String::new(), Vec::<(String, String)>::new());
        for e in events {
            match e {
                StreamEvent::Content(t) => content.push_str(&t),
                StreamEvent::CallStart { index, name } => {
                    assert_eq!(index as usize, calls.len());
                    calls.push((name, String::new()));
                }
                StreamEvent::CallArgs { index, fragment } => {
                    calls[index as usize].1.push_str(&fragment)
                }
            }
        }
        (content, calls)
    }

    #[test]
    fn streams_give_what_the_whole_answer_gives_at_every_piece_size() {
        let cases = [
            (Family::Hermes, "Sure <tool call> here.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"x\": 2}}\n</tool_call>"),
            (Family::Hermes, "No tools needed: 3 < 4 and <tool"),
            (Family::Mistral, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"x\": 2}}, {\"name\": \"get_weather\", \"arguments\": {}}]"),
            (Family::Mistral, "plain [TOOL text"),
            (Family::Llama3, "  {\"name\": \"add\", \"parameters\": {\"x\": [1, {\"y\": \"}\"}]}}"),
            (Family::Llama3, "  The answer is {x}."),
        ];
        for (family, text) in cases {
            let (whole_text, whole_calls) = family.parse(text);
            for n in [1, 2, 3, 5, 1000] {
                let (content, calls) = stream(family, text, n);
                assert_eq!(
                    content.trim(),
                    whole_text.as_deref().unwrap_or("").trim(),
                    "{family:?} {n}: {text}"
                );
                assert_eq!(calls.len(), whole_calls.len(), "{family:?} {n}: {text}");
                for ((name, args), (wn, wa)) in calls.iter().zip(&whole_calls) {
                    assert_eq!(name, wn);
                    let a: Value = serde_json::from_str(args).expect("streamed args are JSON");
                    let w: Value = serde_json::from_str(wa).expect("json");
                    assert_eq!(a, w, "{family:?} {n}");
                }
            }
        }
    }

    #[test]
    fn mistral_ids_are_nine_alphanumerics_and_stable() {
        assert_eq!(mistral_id("abcDEF123"), "abcDEF123");
        let a = mistral_id("call_17");
        assert_eq!(a.len(), 9);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(a, mistral_id("call_17"));
        assert_ne!(a, mistral_id("call_18"));
    }
}
