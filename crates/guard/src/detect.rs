//! Detection: one multi-pattern scan over the text, then per match a
//! validator (checksums, ranges, entropy) and context words, Presidio-style:
//! a base score per pattern, a passing checksum makes it certain, a failing
//! one drops the match, context words nearby raise the score. The text is
//! first normalized (Unicode digits, zero-width characters, look-alikes,
//! `[at]`) and findings are mapped back to the text as written.

use std::ops::Range;

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternSet};

use crate::entity::Entity;
use crate::normalize::normalize;
use crate::patterns::{Check, ID_WORDS, PATTERNS};
use crate::phone::{self, Region};

/// One piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub entity: Entity,
    /// Unicode character offsets (end exclusive).
    pub start: usize,
    pub end: usize,
    /// Byte offsets into the scanned text.
    pub bytes: Range<usize>,
    /// Confidence in [0, 1].
    pub score: f32,
    pub value: String,
}

/// Bytes before a match searched for context words, and after it.
const CONTEXT_BEFORE: usize = 48;
const CONTEXT_AFTER: usize = 16;
/// Presidio's context enhancement.
const CONTEXT_BOOST: f32 = 0.35;

/// The detector set, compiled once; cheap to share across threads and to
/// clone (the compiled patterns are shared).
#[derive(Debug, Clone)]
pub struct Scanner {
    all: Regex,
    /// The same patterns, reporting every one that matches (the fallback
    /// when the first fails its check).
    any: Regex,
    one: Vec<Regex>,
    /// Findings below this score are not reported.
    pub threshold: f32,
    /// The regions whose national phone formats are read (numbers written
    /// with `+` or `00` are read in every region).
    pub regions: Vec<Region>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

fn ascii_regex(patterns: &[&str], kind: MatchKind) -> Regex {
    // ASCII semantics keep the scan in the lazy DFA (Unicode \b would not).
    Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .configure(
            meta::Config::new()
                .match_kind(kind)
                .utf8_empty(false)
                .hybrid_cache_capacity(16 << 20),
        )
        .build_many(patterns)
        .unwrap_or_else(|e| panic!("built-in PII patterns must compile: {e}"))
}

impl Scanner {
    /// All detectors, threshold 0.5, national phone numbers of the US (the
    /// `C` locale's region; see [`Scanner::with_regions`]).
    pub fn new() -> Scanner {
        let patterns: Vec<&str> = PATTERNS.iter().map(|p| p.regex).collect();
        Scanner {
            all: ascii_regex(&patterns, MatchKind::LeftmostFirst),
            any: ascii_regex(&patterns, MatchKind::All),
            one: patterns
                .iter()
                .map(|p| ascii_regex(&[p], MatchKind::LeftmostFirst))
                .collect(),
            threshold: 0.5,
            regions: vec![Region::US],
        }
    }

    /// All detectors, reading national phone numbers of `regions`.
    pub fn with_regions(regions: Vec<Region>) -> Scanner {
        Scanner {
            regions,
            ..Scanner::new()
        }
    }

    /// Finds personal data in `text`, in order of position, reading
    /// national phone numbers of `regions` instead of the scanner's own
    /// (a request's override).
    pub fn scan_in(&self, text: &str, regions: &[Region]) -> Vec<Finding> {
        let Some(n) = normalize(text) else {
            return self.scan_plain(text, regions);
        };
        let mut chars = CharIndex::new(text);
        self.scan_plain(&n.text, regions)
            .into_iter()
            .map(|f| {
                let bytes = n.original(&f.bytes);
                Finding {
                    start: chars.at(bytes.start),
                    end: chars.at(bytes.end),
                    value: text[bytes.clone()].to_string(),
                    bytes,
                    ..f
                }
            })
            .collect()
    }

    /// Finds personal data in `text`, in order of position.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.scan_in(text, &self.regions)
    }

    fn scan_plain(&self, text: &str, regions: &[Region]) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut chars = CharIndex::new(text);
        let mut at = 0;
        while let Some(m) = self.all.search(&Input::new(text).range(at..)) {
            let start = m.start();
            let mut found = self.judge(text, m.pattern().as_usize(), m.range(), regions);
            if found.is_none() {
                // The first pattern failed its check: another may fit here
                // (a failed card number can be a phone number).
                let mut set = PatternSet::new(PATTERNS.len());
                self.any.which_overlapping_matches(
                    &Input::new(text).range(start..).anchored(Anchored::Yes),
                    &mut set,
                );
                found = set
                    .iter()
                    .map(|p| p.as_usize())
                    .filter(|&j| j != m.pattern().as_usize())
                    .find_map(|j| {
                        let hit = self.one[j]
                            .search(&Input::new(text).range(start..).anchored(Anchored::Yes))?;
                        self.judge(text, j, hit.range(), regions)
                    });
            }
            at = match &found {
                Some((_, range, _)) => range.end.max(start + 1),
                // Nothing here: an entity may still start inside the failed
                // candidate, after its first separator ("key=ghp_..."). Inside
                // a run of letters and digits no pattern can start (\b).
                // A number that failed its checks is one number: its digit
                // groups are not looked at again one by one.
                None if text[start..m.end()].bytes().all(|b| {
                    b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'+')
                }) =>
                {
                    m.end()
                }
                None => text[start..m.end()]
                    .char_indices()
                    .skip(1)
                    .find(|(_, c)| !c.is_ascii_alphanumeric())
                    .map_or(m.end(), |(i, c)| start + i + c.len_utf8()),
            };
            while at < text.len() && !text.is_char_boundary(at) {
                at += 1;
            }
            if let Some((entity, range, score)) = found {
                let (s, e) = (chars.at(range.start), chars.at(range.end));
                out.push(Finding {
                    entity,
                    start: s,
                    end: e,
                    value: text[range.clone()].to_string(),
                    bytes: range,
                    score,
                });
            }
            if at >= text.len() {
                break;
            }
        }
        out
    }

    fn judge(
        &self,
        text: &str,
        pattern: usize,
        mut range: Range<usize>,
        regions: &[Region],
    ) -> Option<(Entity, Range<usize>, f32)> {
        let p = &PATTERNS[pattern];
        let value = text.get(range.clone())?;
        let mut score = match p.check {
            Check::Score(_) if continues(text, &range) => return None,
            Check::Score(f) => f(value)?,
            Check::Phone if inside_figure(text, &range) => return None,
            Check::Phone => {
                let (len, score) = phone::judge(value, regions)?;
                range.end = range.start + len;
                score
            }
        };
        let shared: &[&str] = if p.entity.is_national_id() {
            ID_WORDS
        } else {
            &[]
        };
        if score < 1.0 && has_context(text, &range, &[p.context, shared]) {
            score = (score + CONTEXT_BOOST).min(1.0);
        }
        (score >= self.threshold).then_some((p.entity, range, score))
    }
}

/// Whether a digit match is part of a longer number: a digit just one
/// space or dash beyond either end (the first 12 digits of a card are no
/// Aadhaar number).
fn continues(text: &str, range: &Range<usize>) -> bool {
    let b = text.as_bytes();
    let digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let sep_at = |i: usize| b.get(i).is_some_and(|c| matches!(c, b' ' | b'-'));
    let (s, e) = (range.start, range.end);
    let after = e > s && digit_at(e - 1) && sep_at(e) && digit_at(e + 1);
    let before = digit_at(s) && s >= 2 && sep_at(s - 1) && digit_at(s - 2);
    after || before
}

/// Whether digits are the tail of a time or a decimal (`10:22:31.793988`,
/// `3,141592`) or run on into one: not a phone number.
fn inside_figure(text: &str, range: &Range<usize>) -> bool {
    let b = text.as_bytes();
    let digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let mark_at = |i: usize| b.get(i).is_some_and(|c| matches!(c, b':' | b'.' | b','));
    let (s, e) = (range.start, range.end);
    (s >= 2 && mark_at(s - 1) && digit_at(s - 2)) || (mark_at(e) && digit_at(e + 1))
}

/// Whether a word of any of `lists` stands near the match (the window is
/// cut and lowered once for all of them).
fn has_context(text: &str, range: &Range<usize>, lists: &[&[&str]]) -> bool {
    if lists.iter().all(|l| l.is_empty()) {
        return false;
    }
    let mut lo = range.start.saturating_sub(CONTEXT_BEFORE);
    while !text.is_char_boundary(lo) {
        lo -= 1;
    }
    let mut hi = (range.end + CONTEXT_AFTER).min(text.len());
    while !text.is_char_boundary(hi) {
        hi += 1;
    }
    let window = strip_labels(&format!(
        "{} {}",
        &text[lo..range.start],
        &text[range.end..hi]
    ))
    .to_ascii_lowercase();
    lists
        .iter()
        .flat_map(|l| l.iter())
        .any(|w| window.contains(w))
}

/// Removes the guard's own labels (`<PHONE_NUMBER>`, `<SECRET_2>`,
/// `<IBAN_CODE:1a2b>`): their names must not count as context words, or
/// redacting one value could make a neighbour detectable.
fn strip_labels(window: &str) -> String {
    let mut out = String::with_capacity(window.len());
    let mut rest = window;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt + 1..];
        match after.find('>') {
            Some(gt)
                if gt > 0
                    && after[..gt].chars().all(|c| {
                        c.is_ascii_uppercase()
                            || c.is_ascii_digit()
                            || c == '_'
                            || c == ':'
                            || c.is_ascii_hexdigit()
                    }) =>
            {
                out.push(' ');
                rest = &after[gt + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Byte → character offsets, for increasing byte positions.
struct CharIndex<'t> {
    text: &'t str,
    byte: usize,
    chars: usize,
}

impl<'t> CharIndex<'t> {
    fn new(text: &'t str) -> Self {
        CharIndex {
            text,
            byte: 0,
            chars: 0,
        }
    }
    fn at(&mut self, byte: usize) -> usize {
        if byte < self.byte {
            return self.text[..byte].chars().count();
        }
        self.chars += self.text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}
