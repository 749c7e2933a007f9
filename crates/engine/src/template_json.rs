//! `tojson` for chat templates as Hugging Face writes it: Python's
//! `json.dumps(x, ensure_ascii=False, indent=.., sort_keys=..)`, so `", "`
//! and `": "` between items, keys in the order given, no HTML escaping.
//! Models were trained on prompts rendered that way (tools, tool-call
//! arguments); minijinja's own `tojson` writes compact, HTML-safe JSON,
//! which changes the prompt's tokens.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// The filter: `x | tojson`, `x | tojson(indent=4)`, `sort_keys=true`.
pub(crate) fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write(&mut out, value, indent, sort_keys.unwrap_or(false), 0)?;
    Ok(Value::from_safe_string(out))
}

fn newline(out: &mut String, indent: Option<usize>, depth: usize) {
    if let Some(n) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n * depth));
    }
}

fn write(
    out: &mut String,
    v: &Value,
    indent: Option<usize>,
    sort: bool,
    depth: usize,
) -> Result<(), Error> {
    // Python: items end with "," plus the newline when indenting, ", " not.
    let sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => number(out, v),
        ValueKind::String => string(out, v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, indent, depth + 1);
                write(out, item, indent, sort, depth + 1)?;
            }
            newline(out, indent, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if sort {
                keys.sort();
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, indent, depth + 1);
                match key.as_str() {
                    Some(k) => string(out, k),
                    None => string(out, &key.to_string()),
                }
                out.push_str(": ");
                write(out, &v.get_item(key)?, indent, sort, depth + 1)?;
            }
            newline(out, indent, depth);
            out.push('}');
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson cannot write a value of kind {kind}"),
            ))
        }
    }
    Ok(())
}

/// Integers as digits; floats as Python writes them (`24.0`, `0.5`).
fn number(out: &mut String, v: &Value) {
    if v.is_integer() {
        out.push_str(&v.to_string());
        return;
    }
    match f64::try_from(v.clone()) {
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 => {
            out.push_str(&format!("{f:.1}"))
        }
        Ok(f) if f.is_finite() => out.push_str(&f.to_string()),
        Ok(f) if f.is_nan() => out.push_str("NaN"),
        Ok(f) if f > 0.0 => out.push_str("Infinity"),
        Ok(_) => out.push_str("-Infinity"),
        Err(_) => out.push_str(&v.to_string()),
    }
}

/// A JSON string, non-ASCII kept as is (`ensure_ascii=False`).
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::ChatTemplate;
    use crate::Message;

    fn render(src: &str, v: serde_json::Value) -> String {
        let t = ChatTemplate::new("t", src).expect("parse");
        t.render_with_tools(
            &[Message::user("x")],
            &[Value::from_serialize(&v)],
            false,
            "",
            "",
        )
        .expect("render")
    }

    #[test]
    fn writes_json_as_python_does() {
        let v = serde_json::json!({"type": "function", "b": [1, 2.5, 3.0, true, null], "s": "a\"<b>&'é\n", "e": {}, "l": []});
        assert_eq!(
            render("{{ tools[0] | tojson }}", v.clone()),
            r#"{"type": "function", "b": [1, 2.5, 3.0, true, null], "s": "a\"<b>&'é\n", "e": {}, "l": []}"#
        );
        assert_eq!(
            render(
                "{{ tools[0] | tojson(indent=2) }}",
                serde_json::json!({"a": [1, {"b": 2}], "c": {}})
            ),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ],\n  \"c\": {}\n}"
        );
        assert_eq!(
            render(
                "{{ tools[0] | tojson(sort_keys=true) }}",
                serde_json::json!({"b": 1, "a": 2})
            ),
            r#"{"a": 2, "b": 1}"#
        );
        let t = ChatTemplate::new("t", "{{ 1 | tojson(bad=1) }}").expect("parse");
        assert!(t.render(&[Message::user("x")], false, "", "").is_err());
    }
}
