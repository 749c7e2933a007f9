//! Chat templates: the GGUF's own Jinja template rendered with minijinja,
//! the way the model's authors wrote it (not llama.cpp's built-in template
//! matching, which drops parts of real templates).

use std::path::Path;

use minijinja::{context, Environment, Error, ErrorKind, Value};

use crate::error::{EngineError, Result};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    /// An assistant turn's tool calls, for templates that render them.
    pub tool_calls: Vec<MessageCall>,
    /// A `tool` turn: the call it answers, and that call's function.
    pub tool_call_id: Option<String>,
    pub name: Option<String>,
}

/// A tool call in the history, as chat templates read it
/// (`tool_call.id`, `tool_call.function.name`, `.arguments` as an object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCall {
    pub id: String,
    pub name: String,
    /// The arguments object (`TemplateValue::from_serialize` of JSON).
    pub arguments: Value,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Built-in templates, for models whose GGUF carries none. Each is written
/// for the named prompt format; pick the one the model was trained with.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "chatml",
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    ),
    (
        "gemma",
        "{{ bos_token }}{% set sys = '' %}{% for m in messages %}\
{% if m.role == 'system' %}{% set sys = m.content + '\n\n' %}{% else %}\
<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n\
{% if loop.index0 == 1 or (loop.first and messages[0].role != 'system') %}{{ sys }}{% endif %}\
{{ m.content | trim }}<end_of_turn>\n{% endif %}{% endfor %}\
{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    ),
    (
        "llama3",
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n\
{{ m.content | trim }}<|eot_id|>{% endfor %}\
{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
    ),
];

/// Names of the built-in templates, comma separated (for messages).
pub fn builtin_names() -> String {
    BUILTIN_TEMPLATES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    /// Where it came from: `gguf`, a built-in name, or a file path.
    pub name: String,
    source: String,
    env: Environment<'static>,
}

impl ChatTemplate {
    /// Compiles Jinja `source`; `name` is used in messages.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let source = source.into();
        let mut env = Environment::new();
        // Hugging Face renders chat templates with trim_blocks and
        // lstrip_blocks on; templates are written for that.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", crate::template_json::tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.clone())
            .map_err(|e| template_error(&name, &e))?;
        Ok(ChatTemplate { name, source, env })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A built-in template by name, or a Jinja file by path.
    pub fn from_name_or_file(spec: &str) -> Result<Self> {
        if let Some((name, src)) = BUILTIN_TEMPLATES.iter().find(|(n, _)| *n == spec) {
            return Self::new(*name, *src);
        }
        let path = Path::new(spec);
        if path.is_file() {
            let src = std::fs::read_to_string(path).map_err(|e| EngineError::Template {
                name: spec.to_string(),
                problem: format!("cannot read the file: {e}"),
            })?;
            return Self::new(spec, src);
        }
        Err(EngineError::Template {
            name: spec.to_string(),
            problem: format!(
                "neither a built-in template ({}) nor a readable file",
                builtin_names()
            ),
        })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where
    /// the assistant's answer begins.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        self.render_with_tools(messages, &[], add_generation_prompt, bos_token, eos_token)
    }

    /// Renders `messages` with `tools` (OpenAI's `tools[]` objects) given
    /// to the template as `tools`, as Hugging Face does; with no tools the
    /// variable is left undefined, which templates test for. A message
    /// carries `tool_calls` (assistant) and `tool_call_id` / `name` (tool)
    /// only when it has them: templates test `'tool_calls' in message`.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: &[Value],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        if messages.is_empty() {
            return Err(EngineError::Template {
                name: self.name.clone(),
                problem: "no messages to render: give at least one message".into(),
            });
        }
        let msgs: Vec<Value> = messages.iter().map(message_value).collect();
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| template_error(&self.name, &e))?;
        let base = context! {
            messages => msgs,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
            // Today, as llama.cpp gives it to templates (Llama 3.1 would
            // otherwise write a fixed day of 2024).
            date_string => strftime_now("%d %b %Y".into()),
        };
        let ctx = if tools.is_empty() {
            base
        } else {
            context! { tools => tools, ..base }
        };
        tmpl.render(ctx).map_err(|e| template_error(&self.name, &e))
    }
}

/// A message as templates see it: keys only for what it has, in the
/// order OpenAI writes them (templates that iterate see that order).
fn message_value(m: &Message) -> Value {
    let mut v: Vec<(&str, Value)> = vec![
        ("role", Value::from(m.role.as_str())),
        ("content", Value::from(m.content.as_str())),
    ];
    if !m.tool_calls.is_empty() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .map(|c| {
                let function = Value::from_iter([
                    ("name", Value::from(c.name.as_str())),
                    ("arguments", c.arguments.clone()),
                ]);
                Value::from_iter([
                    ("id", Value::from(c.id.as_str())),
                    ("type", Value::from("function")),
                    ("function", function),
                ])
            })
            .collect();
        v.push(("tool_calls", Value::from(calls)));
    }
    if let Some(id) = &m.tool_call_id {
        v.push(("tool_call_id", Value::from(id.as_str())));
    }
    if let Some(name) = &m.name {
        v.push(("name", Value::from(name.as_str())));
    }
    Value::from_iter(v)
}

fn template_error(name: &str, e: &Error) -> EngineError {
    let mut problem = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        problem.push_str(": ");
        problem.push_str(&s.to_string());
        src = s.source();
    }
    EngineError::Template {
        name: name.to_string(),
        problem,
    }
}

fn raise_exception(msg: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

/// `strftime_now(fmt)`, as Hugging Face templates use it for today's date.
fn strftime_now(fmt: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs, &fmt)
}

/// Formats a UTC unix time with the common strftime fields
/// (`%Y %m %d %e %B %b %H %M %S %%`).
pub(crate) fn format_utc(secs: u64, fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), Howard Hinnant's method.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:>2}")),
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3]),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders_generation_prompt() {
        let t = ChatTemplate::from_name_or_file("chatml").expect("builtin");
        let out = t
            .render(&[Message::user("hi")], true, "", "")
            .expect("render");
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let t = ChatTemplate::new("t", "{{ raise_exception('only user turns') }}").expect("parse");
        let err = t.render(&[Message::user("x")], false, "", "").unwrap_err();
        assert!(err.to_string().contains("only user turns"), "{err}");
    }

    #[test]
    fn syntax_error_names_the_template() {
        let err = ChatTemplate::new("broken.jinja", "{% for %}").unwrap_err();
        assert!(
            err.to_string().starts_with("chat template broken.jinja"),
            "{err}"
        );
    }

    #[test]
    fn unknown_template_name_lists_builtins() {
        let err = ChatTemplate::from_name_or_file("no-such-template").unwrap_err();
        assert!(err.to_string().contains("chatml"), "{err}");
    }

    #[test]
    fn utc_formatting() {
        // 2024-02-29 13:05:09 UTC
        assert_eq!(
            format_utc(1_709_211_909, "%d %b %Y %H:%M:%S"),
            "29 Feb 2024 13:05:09"
        );
        assert_eq!(format_utc(0, "%Y-%m-%d %B %%"), "1970-01-01 January %");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new("t", "{{ messages[0].content.strip().upper() }}").expect("parse");
        assert_eq!(
            t.render(&[Message::user("  hi ")], false, "", "")
                .expect("render"),
            "HI"
        );
    }
}
