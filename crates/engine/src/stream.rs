//! Turning generated token bytes into text: UTF-8 that is split across
//! tokens is held until complete, and text that may be the start of a stop
//! sequence is held until it is known not to be one.

/// Assembles streamed text and applies stop sequences.
#[derive(Debug, Default)]
pub(crate) struct TextAssembler {
    /// Bytes of an incomplete UTF-8 character.
    pending: Vec<u8>,
    /// All text decoded so far (truncated at a stop sequence once found).
    text: String,
    /// Bytes of `text` already handed out.
    emitted: usize,
    stops: Vec<String>,
}

/// What one push produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// New text safe to show.
    pub text: String,
    /// A stop sequence was reached; the text stops before it.
    pub stopped: bool,
}

impl TextAssembler {
    pub fn new(stops: &[String]) -> Self {
        TextAssembler {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Default::default()
        }
    }

    /// Adds one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Pushed {
        self.pending.extend_from_slice(bytes);
        let before = self.text.len();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix is valid UTF-8 by construction.
                    self.text
                        .push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        // Invalid bytes: replace them and go on.
                        Some(n) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
        // A stop sequence can only end inside the new text, so search from
        // where the longest stop could have started.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = before.saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|p| from + p))
            .min();
        if let Some(pos) = hit {
            self.text.truncate(pos);
            self.pending.clear();
            return Pushed {
                text: self.take(pos),
                stopped: true,
            };
        }
        let hold = self.held_suffix();
        Pushed {
            text: self.take(self.text.len() - hold),
            stopped: false,
        }
    }

    /// Everything not yet handed out (at the end of generation).
    pub fn finish(&mut self) -> String {
        if !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.text.push_str(&rest);
            self.pending.clear();
        }
        self.take(self.text.len())
    }

    /// The whole text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn take(&mut self, upto: usize) -> String {
        if upto <= self.emitted {
            return String::new();
        }
        let out = self.text[self.emitted..upto].to_string();
        self.emitted = upto;
        out
    }

    /// Length of the longest suffix of the text that is a proper prefix of a
    /// stop sequence.
    fn held_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = (stop.len() - 1).min(self.text.len() - self.emitted);
            for n in (best + 1..=max).rev() {
                let start = self.text.len() - n;
                if self.text.is_char_boundary(start) && stop.starts_with(&self.text[start..]) {
                    best = n;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut a = TextAssembler::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            let r = a.push(p);
            out.push(r.text);
            if r.stopped {
                return (out, true, a.text().to_string());
            }
        }
        out.push(a.finish());
        (out, false, a.text().to_string())
    }

    #[test]
    fn split_utf8_is_held_until_complete() {
        let euro = "€".as_bytes();
        let (out, stopped, text) = run(&[], &[b"a", &euro[..1], &euro[1..], b"b"]);
        assert_eq!(out, vec!["a", "", "€", "b", ""]);
        assert!(!stopped);
        assert_eq!(text, "a€b");
    }

    #[test]
    fn stop_sequence_across_tokens_is_cut() {
        let (out, stopped, text) = run(&["\nUser:"], &[b"Hi", b" there\n", b"Us", b"er:", b"more"]);
        assert!(stopped);
        assert_eq!(text, "Hi there");
        assert_eq!(out.concat(), "Hi there");
        // The newline was held back while it could start the stop sequence.
        assert_eq!(out[1], " there");
    }

    #[test]
    fn held_prefix_is_released_when_it_diverges() {
        let (out, stopped, _) = run(&["STOP"], &[b"ST", b"ART"]);
        assert!(!stopped);
        assert_eq!(out, vec!["", "START", ""]);
    }

    #[test]
    fn earliest_stop_wins() {
        let (_, stopped, text) = run(&["cd", "b"], &[b"abcd"]);
        assert!(stopped);
        assert_eq!(text, "a");
    }

    #[test]
    fn invalid_bytes_become_replacement_chars() {
        let (out, _, _) = run(&[], &[b"a\xffb"]);
        assert_eq!(out.concat(), "a\u{FFFD}b");
    }

    #[test]
    fn finish_flushes_incomplete_utf8() {
        let (out, _, _) = run(&[], &[&"€".as_bytes()[..2]]);
        assert_eq!(out.concat(), "\u{FFFD}");
    }
}
