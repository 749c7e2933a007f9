//! A grounded answer read as it is generated: the raw text (JSON written
//! to [`super::answer_schema`]) goes in piece by piece, the answer's words
//! come out as soon as they are decoded, and [`AnswerStream::finish`] gives
//! what is left (the citation marks) and the numbers cited — so the pieces
//! joined equal [`super::read_answer`]'s text, streamed or not.

use super::read_answer;

/// The decoder's state over the raw text.
#[derive(Debug, Default)]
pub struct AnswerStream {
    /// Every raw piece so far.
    raw: String,
    /// Where the answer string's content starts in `raw` (after `"answer":
    /// "`), once seen.
    start: Option<usize>,
    /// How far into `raw` the content is decoded.
    at: usize,
    /// The closing quote was read.
    closed: bool,
    /// Text given out so far.
    sent: String,
    /// Whitespace decoded but not given out: it is dropped when the answer
    /// ends with it (the answer is trimmed, as [`read_answer`] trims it).
    held: String,
}

impl AnswerStream {
    /// Takes the next raw piece; the answer text it completes (possibly
    /// empty).
    pub fn feed(&mut self, piece: &str) -> String {
        self.raw.push_str(piece);
        if self.start.is_none() {
            self.start = content_start(&self.raw);
            self.at = self.start.unwrap_or(0);
        }
        if self.start.is_none() || self.closed {
            return String::new();
        }
        let mut out = String::new();
        while let Some((c, len)) = next_char(&self.raw[self.at..]) {
            self.at += len;
            let Some(c) = c else {
                self.closed = true;
                break;
            };
            if c.is_whitespace() {
                if !self.sent.is_empty() || !out.is_empty() {
                    self.held.push(c);
                }
            } else {
                out.push_str(&self.held);
                self.held.clear();
                out.push(c);
            }
        }
        self.sent.push_str(&out);
        out
    }

    /// The generation ended: the text not yet given out (the citation
    /// marks, or the rest of a raw answer that was not the JSON asked for)
    /// and the source numbers cited.
    pub fn finish(self) -> (String, Vec<usize>) {
        let (text, cited) = read_answer(&self.raw);
        let rest = text
            .strip_prefix(self.sent.as_str())
            .map_or_else(String::new, str::to_string);
        (rest, cited)
    }
}

/// Where the content of the `"answer"` string starts, once its opening
/// quote is there.
fn content_start(raw: &str) -> Option<usize> {
    let key = raw.find("\"answer\"")? + "\"answer\"".len();
    let rest = &raw[key..];
    let colon = rest.find(|c: char| !c.is_whitespace())?;
    if !rest[colon..].starts_with(':') {
        return None;
    }
    let after = &rest[colon + 1..];
    let quote = after.find(|c: char| !c.is_whitespace())?;
    after[quote..]
        .starts_with('"')
        .then_some(key + colon + 1 + quote + 1)
}

/// The next character of a JSON string's content and the bytes it took:
/// `Some(None)` for the closing quote, `None` when `s` ends inside an
/// escape (wait for more).
fn next_char(s: &str) -> Option<(Option<char>, usize)> {
    let c = s.chars().next()?;
    match c {
        '"' => Some((None, 1)),
        '\\' => {
            let e = s[1..].chars().next()?;
            let simple = match e {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                'b' => Some('\u{8}'),
                'f' => Some('\u{c}'),
                '/' | '\\' | '"' => Some(e),
                'u' => None,
                // Not JSON: taken as it is.
                _ => return Some((Some(e), 1 + e.len_utf8())),
            };
            if let Some(c) = simple {
                return Some((Some(c), 2));
            }
            // Wait for the four digits; digits that are not hex (only
            // unconstrained text has them) are a replacement character and
            // the decoding goes on after `\u`.
            let Some(hi) = hex4(s.as_bytes().get(2..6)?) else {
                return Some((Some(char::REPLACEMENT_CHARACTER), 2));
            };
            if (0xD800..0xDC00).contains(&hi) {
                // A surrogate pair, `\uD83D\uDE00`: wait for its second
                // half; a lone half is the replacement character.
                let tail = &s[6..];
                if tail.is_empty() || tail == "\\" || (tail.starts_with("\\u") && tail.len() < 6) {
                    return None;
                }
                let code = tail
                    .as_bytes()
                    .get(2..6)
                    .filter(|_| tail.starts_with("\\u"))
                    .and_then(hex4)
                    .filter(|lo| (0xDC00..0xE000).contains(lo))
                    .map(|lo| 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                return Some(match code {
                    Some(code) => (
                        Some(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)),
                        12,
                    ),
                    None => (Some(char::REPLACEMENT_CHARACTER), 6),
                });
            }
            Some((
                Some(char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER)),
                6,
            ))
        }
        c => Some((Some(c), c.len_utf8())),
    }
}

/// Four ASCII hex digits as a number (no sign, unlike `from_str_radix`).
fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() != 4 || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    b.iter()
        .try_fold(0u32, |n, d| Some(n * 16 + char::from(*d).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `raw` in pieces of `n` bytes (on char boundaries).
    fn streamed(raw: &str, n: usize) -> String {
        let mut s = AnswerStream::default();
        let mut out = String::new();
        let mut piece = String::new();
        for c in raw.chars() {
            piece.push(c);
            if piece.len() >= n {
                out.push_str(&s.feed(&piece));
                piece.clear();
            }
        }
        out.push_str(&s.feed(&piece));
        out.push_str(&s.finish().0);
        out
    }

    #[test]
    fn pieces_of_any_size_join_to_the_whole_answer() {
        let raws = [
            r#"{"sources": [2, 1], "answer": "  It is \"Thursday\",\n\tsee \u00e9t\u00e9 \ud83d\ude00 \\ / "}"#,
            r#"{"sources":[1],"answer":"Plain."}"#,
            r#"{"sources": [1], "answer": ""}"#,
            "not json at all [3]",
            r#"{"sources": [1], "answer": "cut off by max_tok"#,
        ];
        for raw in raws {
            let whole = read_answer(raw).0;
            for n in [1, 2, 3, 7, 1000] {
                let got = streamed(raw, n);
                if raw.ends_with("max_tok") {
                    // Not valid JSON: the stream gave the words it could
                    // decode, the whole-answer path the raw text.
                    assert_eq!(got, "cut off by max_tok", "pieces of {n}");
                } else {
                    assert_eq!(got, whole, "{raw:?} in pieces of {n}");
                }
            }
        }
        assert_eq!(
            read_answer(raws[0]).0,
            "It is \"Thursday\",\n\tsee été 😀 \\ / [2][1]"
        );
    }

    #[test]
    fn bad_escapes_never_stall_the_stream() {
        for (raw, want) in [
            (
                r#"{"sources": [1], "answer": "ab\uZZZZ cd"}"#,
                "ab\u{fffd}ZZZZ cd",
            ),
            (
                r#"{"sources": [1], "answer": "ab\u+041 cd"}"#,
                "ab\u{fffd}+041 cd",
            ),
            (
                r#"{"sources": [1], "answer": "ab\u00é9 cd"}"#,
                "ab\u{fffd}00é9 cd",
            ),
            (
                r#"{"sources": [1], "answer": "lone \ud83d!"}"#,
                "lone \u{fffd}!",
            ),
        ] {
            let mut s = AnswerStream::default();
            let mut got = String::new();
            for c in raw.chars() {
                got.push_str(&s.feed(&c.to_string()));
            }
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn words_come_out_before_the_end() {
        let mut s = AnswerStream::default();
        assert_eq!(s.feed(r#"{"sources": [1], "ans"#), "");
        assert_eq!(s.feed(r#"wer": "The meet"#), "The meet");
        assert_eq!(s.feed("ing is "), "ing is");
        assert_eq!(s.feed("\\u00"), "");
        assert_eq!(s.feed("e9\"}"), " é");
        assert_eq!(s.finish(), (" [1]".to_string(), vec![1]));
    }
}
