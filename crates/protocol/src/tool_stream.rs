//! Reads a generic-format tool answer (see [`crate::tools`]) while it is
//! generated, so that a stream can carry it as it comes: the `response`
//! string as content deltas (JSON escapes decoded), each call's name as
//! soon as it is complete, and its `arguments` as raw JSON fragments.
//! A small JSON tokenizer that tracks where in the document it is; it
//! never fails: text that is not the format is simply not reported, and
//! the finished answer is judged by [`crate::tools::parse_output`].

/// What a piece of the answer added.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Text of `{"response": ...}`.
    Content(String),
    /// Call number `index` names `name`.
    CallStart { index: u32, name: String },
    /// More of call `index`'s arguments (JSON text).
    CallArgs { index: u32, fragment: String },
}

#[derive(Debug, Clone)]
enum Frame {
    Object { key: Option<String>, want_key: bool },
    Array { index: u32 },
}

#[derive(Debug, Clone, PartialEq)]
enum Where {
    Response,
    Name(u32),
    Other,
}

#[derive(Debug, Clone)]
struct Str {
    key: bool,
    at: Where,
    text: String,
    escape: bool,
    unicode: Option<String>,
    high: Option<u16>,
}

/// The tokenizer's state between pieces.
#[derive(Debug, Default)]
pub struct ToolStream {
    stack: Vec<Frame>,
    string: Option<Str>,
    /// (call index, stack depth outside the arguments value).
    capture: Option<(u32, usize)>,
    /// Names seen, by call index; arguments wait for their call's name.
    named: Vec<bool>,
    waiting: Vec<(u32, String)>,
}

impl ToolStream {
    pub fn new() -> ToolStream {
        ToolStream::default()
    }

    /// The path of a value that starts now.
    fn position(&self) -> (Where, Option<u32>) {
        match self.stack.as_slice() {
            [Frame::Object { key: Some(k), .. }] if k == "response" => (Where::Response, None),
            [Frame::Object { key: Some(t), .. }, Frame::Array { index }, Frame::Object { key: Some(k), .. }]
                if t == "tool_calls" =>
            {
                match k.as_str() {
                    "name" => (Where::Name(*index), None),
                    // `parameters`: Llama 3's name for them (see
                    // `tool_native`); the generic format's grammar allows
                    // only `arguments`.
                    "arguments" | "parameters" => (Where::Other, Some(*index)),
                    _ => (Where::Other, None),
                }
            }
            _ => (Where::Other, None),
        }
    }

    fn args(&mut self, out: &mut Vec<StreamEvent>, index: u32, c: char) {
        if self.named.get(index as usize).copied().unwrap_or(false) {
            match out.last_mut() {
                Some(StreamEvent::CallArgs { index: i, fragment }) if *i == index => {
                    fragment.push(c)
                }
                _ => out.push(StreamEvent::CallArgs {
                    index,
                    fragment: c.to_string(),
                }),
            }
        } else {
            match self.waiting.iter_mut().find(|(i, _)| *i == index) {
                Some((_, f)) => f.push(c),
                None => self.waiting.push((index, c.to_string())),
            }
        }
    }

    fn content(out: &mut Vec<StreamEvent>, s: &str) {
        match out.last_mut() {
            Some(StreamEvent::Content(t)) => t.push_str(s),
            _ => out.push(StreamEvent::Content(s.to_string())),
        }
    }

    /// A value (container or scalar) starts here.
    fn value_starts(&mut self) {
        if let (Where::Other, Some(index)) = self.position() {
            if self.capture.is_none() {
                self.capture = Some((index, self.stack.len()));
            }
        }
    }

    /// After a complete value: the enclosing object wants a comma or end.
    fn value_ends(&mut self) {
        if let Some((_, depth)) = self.capture {
            if self.stack.len() == depth {
                self.capture = None;
            }
        }
    }

    /// Feeds the next piece of generated text.
    pub fn feed(&mut self, piece: &str) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for c in piece.chars() {
            let capturing = self.capture.map(|(i, _)| i);
            if let Some(index) = capturing {
                self.args(&mut out, index, c);
            }
            if self.string.is_some() {
                self.string_char(c, &mut out);
                continue;
            }
            match c {
                '"' => {
                    let key = matches!(
                        self.stack.last(),
                        Some(Frame::Object { want_key: true, .. })
                    );
                    let at = if key { Where::Other } else { self.position().0 };
                    if !key {
                        self.value_starts();
                        if let Some(index) = self.capture.map(|(i, _)| i) {
                            if capturing.is_none() {
                                self.args(&mut out, index, c);
                            }
                        }
                    }
                    self.string = Some(Str {
                        key,
                        at,
                        text: String::new(),
                        escape: false,
                        unicode: None,
                        high: None,
                    });
                }
                '{' | '[' => {
                    self.value_starts();
                    if let Some(index) = self.capture.map(|(i, _)| i) {
                        if capturing.is_none() {
                            self.args(&mut out, index, c);
                        }
                    }
                    self.stack.push(if c == '{' {
                        Frame::Object {
                            key: None,
                            want_key: true,
                        }
                    } else {
                        Frame::Array { index: 0 }
                    });
                }
                '}' | ']' => {
                    self.stack.pop();
                    self.value_ends();
                }
                ',' => match self.stack.last_mut() {
                    Some(Frame::Object { key, want_key }) => {
                        *key = None;
                        *want_key = true;
                    }
                    Some(Frame::Array { index }) => *index += 1,
                    None => {}
                },
                ':' => {
                    if let Some(Frame::Object { want_key, .. }) = self.stack.last_mut() {
                        *want_key = false;
                    }
                }
                c if c.is_whitespace() => {}
                // A number, true, false or null: only arguments care, and
                // they are captured raw above.
                _ => {
                    if capturing.is_none() {
                        self.value_starts();
                        if let Some(index) = self.capture.map(|(i, _)| i) {
                            self.args(&mut out, index, c);
                        }
                    }
                }
            }
        }
        out
    }

    fn string_char(&mut self, c: char, out: &mut Vec<StreamEvent>) {
        let Some(s) = self.string.as_mut() else {
            return;
        };
        let mut decoded = None;
        if let Some(hex) = s.unicode.as_mut() {
            hex.push(c);
            if hex.len() == 4 {
                let unit = u16::from_str_radix(hex, 16).unwrap_or(0xFFFD);
                s.unicode = None;
                if (0xD800..0xDC00).contains(&unit) {
                    s.high = Some(unit);
                } else if let Some(high) = s.high.take() {
                    decoded = char::decode_utf16([high, unit]).next().and_then(Result::ok);
                } else {
                    decoded = char::from_u32(u32::from(unit));
                }
            }
        } else if s.escape {
            s.escape = false;
            decoded = match c {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                'b' => Some('\u{8}'),
                'f' => Some('\u{c}'),
                'u' => {
                    s.unicode = Some(String::new());
                    None
                }
                other => Some(other),
            };
        } else if c == '\\' {
            s.escape = true;
        } else if c == '"' {
            let done = self.string.take();
            if let Some(done) = done {
                self.string_ends(done, out);
            }
            return;
        } else {
            decoded = Some(c);
        }
        if let Some(d) = decoded {
            s.text.push(d);
            if s.at == Where::Response {
                Self::content(out, d.encode_utf8(&mut [0u8; 4]));
            }
        }
    }

    fn string_ends(&mut self, s: Str, out: &mut Vec<StreamEvent>) {
        if s.key {
            if let Some(Frame::Object { key, .. }) = self.stack.last_mut() {
                *key = Some(s.text);
            }
            return;
        }
        if let Where::Name(index) = s.at {
            let i = index as usize;
            if self.named.len() <= i {
                self.named.resize(i + 1, false);
            }
            if !self.named[i] {
                self.named[i] = true;
                out.push(StreamEvent::CallStart {
                    index,
                    name: s.text,
                });
                if let Some(pos) = self.waiting.iter().position(|(w, _)| *w == index) {
                    let (_, fragment) = self.waiting.remove(pos);
                    out.push(StreamEvent::CallArgs { index, fragment });
                }
            }
        }
        self.value_ends();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in pieces of `n` bytes (at char boundaries) and joins
    /// what came out: (content, [(name, arguments)]).
    fn run(text: &str, n: usize) -> (String, Vec<(String, String)>) {
        let mut s = ToolStream::new();
        let mut content = String::new();
        let mut calls: Vec<(String, String)> = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(n) {
            for e in s.feed(&piece.iter().collect::<String>()) {
                match e {
                    StreamEvent::Content(t) => content.push_str(&t),
                    StreamEvent::CallStart { index, name } => {
                        assert_eq!(index as usize, calls.len(), "calls start in order");
                        calls.push((name, String::new()));
                    }
                    StreamEvent::CallArgs { index, fragment } => {
                        calls[index as usize].1.push_str(&fragment)
                    }
                }
            }
        }
        (content, calls)
    }

    #[test]
    fn calls_stream_name_first_then_arguments_in_any_piece_size() {
        let text = r#"{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Par\"is", "days": [1, 2], "x": {"y": null}}}, {"name":"b","arguments":{}}]}"#;
        for n in [1, 2, 3, 7, 1000] {
            let (content, calls) = run(text, n);
            assert_eq!(content, "");
            assert_eq!(calls.len(), 2, "{n}");
            assert_eq!(calls[0].0, "get_weather");
            let v: serde_json::Value = serde_json::from_str(&calls[0].1).expect("args json");
            assert_eq!(v["city"], "Par\"is");
            assert_eq!(v["days"][1], 2);
            assert_eq!(calls[1], ("b".into(), "{}".into()));
        }
    }

    #[test]
    fn a_response_streams_as_decoded_text() {
        let text = r#"{"response": "line\nnext \"quoted\" caf\u00e9 \ud83d\ude00 done"}"#;
        for n in [1, 4, 1000] {
            let (content, calls) = run(text, n);
            assert_eq!(content, "line\nnext \"quoted\" café 😀 done");
            assert!(calls.is_empty());
        }
    }

    #[test]
    fn arguments_before_the_name_wait_for_it() {
        let (_, calls) = run(
            r#"{"tool_calls": [{"arguments": {"a": 1}, "name": "f"}]}"#,
            3,
        );
        assert_eq!(calls, vec![("f".into(), r#"{"a": 1}"#.into())]);
    }
}
