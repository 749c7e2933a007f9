//! Detection: one multi-pattern scan over the text, then per match a
//! validator (checksums, ranges, entropy) and context words, Presidio-style:
//! a base score per pattern, a passing checksum makes it certain, a failing
//! one drops the match, context words nearby raise the score.

use std::ops::Range;

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

use crate::entity::Entity;
use crate::validate;

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

/// A validator turns a candidate into a base score, or drops it.
type Validator = fn(&str) -> Option<f32>;

struct Pattern {
    entity: Entity,
    regex: &'static str,
    validate: Validator,
    context: &'static [&'static str],
}

const PHONE_CTX: &[&str] = &[
    "phone", "call", "tel", "mobile", "cell", "fax", "contact", "number", "whatsapp",
];
const SSN_CTX: &[&str] = &["ssn", "social security", "social-security", "taxpayer"];
const SECRET_CTX: &[&str] = &[
    "key",
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "credential",
    "auth",
    "bearer",
];
const DOB_CTX: &[&str] = &["born", "birth", "dob", "birthday", "b-day", "age"];
const IP_CTX: &[&str] = &["ip", "address", "host", "server", "client", "connect"];
const CARD_CTX: &[&str] = &["card", "visa", "mastercard", "amex", "payment", "credit"];

/// Order matters: at the same start position the earlier pattern wins, so
/// the most specific patterns come first and the generic secret last.
const PATTERNS: &[Pattern] = &[
    Pattern {
        entity: Entity::PrivateKey,
        regex: r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        validate: |_| Some(1.0),
        context: &[],
    },
    Pattern {
        entity: Entity::Url,
        regex: r"\b[A-Za-z][A-Za-z0-9+.-]+://[^\s:/@]+:[^\s@/]+@[^\s/?#]+[^\s]*",
        validate: |_| Some(0.95),
        context: &[],
    },
    Pattern {
        entity: Entity::EmailAddress,
        regex: r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        validate: validate::email,
        context: &[],
    },
    Pattern {
        entity: Entity::AwsAccessKey,
        regex: r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b",
        validate: |_| Some(1.0),
        context: &[],
    },
    Pattern {
        entity: Entity::GithubToken,
        regex: r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,})",
        validate: |_| Some(1.0),
        context: &[],
    },
    Pattern {
        entity: Entity::SlackToken,
        regex: r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
        validate: |_| Some(0.95),
        context: &[],
    },
    Pattern {
        entity: Entity::Jwt,
        regex: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
        validate: |_| Some(0.95),
        context: &[],
    },
    Pattern {
        entity: Entity::IbanCode,
        regex: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        validate: validate::iban,
        context: &["iban", "account", "bank"],
    },
    Pattern {
        entity: Entity::MacAddress,
        regex: r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b",
        validate: |_| Some(0.85),
        context: &["mac", "device", "interface"],
    },
    Pattern {
        entity: Entity::IpAddress,
        regex: r"\b(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})",
        validate: validate::ipv6,
        context: IP_CTX,
    },
    Pattern {
        entity: Entity::IpAddress,
        regex: r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        validate: validate::ipv4,
        context: IP_CTX,
    },
    Pattern {
        entity: Entity::UsSsn,
        regex: r"\b[0-9]{3}([- ]?)[0-9]{2}([- ]?)[0-9]{4}\b",
        validate: validate::ssn,
        context: SSN_CTX,
    },
    Pattern {
        entity: Entity::CreditCard,
        regex: r"\b[0-9][0-9 -]{11,26}[0-9]\b",
        validate: validate::credit_card,
        context: CARD_CTX,
    },
    Pattern {
        entity: Entity::DateOfBirth,
        regex: r"\b(?:(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]|[0-3]?[0-9][/.][01]?[0-9][/.](?:19|20)[0-9]{2}|[0-3]?[0-9] (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.? (?:19|20)[0-9]{2}|(?:January|February|March|April|May|June|July|August|September|October|November|December) [0-3]?[0-9],? (?:19|20)[0-9]{2})\b",
        validate: validate::date,
        context: DOB_CTX,
    },
    Pattern {
        entity: Entity::PhoneNumber,
        regex: r"(?:\+[1-9][0-9]{0,2}[ .-]?(?:\(?[0-9]{1,4}\)?[ .-]?){1,4}[0-9]{2,4}|\(?\b[2-9][0-9]{2}\)?[ .-]?[2-9][0-9]{2}[ .-]?[0-9]{4}|\b0[1-9][0-9]{1,3}[ -]?[0-9]{3,4}[ -]?[0-9]{3,4})\b",
        validate: validate::phone,
        context: PHONE_CTX,
    },
    Pattern {
        entity: Entity::Secret,
        regex: r"\b[A-Za-z0-9][A-Za-z0-9+/_=-]{19,}",
        validate: validate::secret,
        context: SECRET_CTX,
    },
];

/// Bytes before a match searched for context words, and after it.
const CONTEXT_BEFORE: usize = 48;
const CONTEXT_AFTER: usize = 16;
/// Presidio's context enhancement.
const CONTEXT_BOOST: f32 = 0.35;

/// The detector set, compiled once; cheap to share across threads.
#[derive(Debug)]
pub struct Scanner {
    all: Regex,
    one: Vec<Regex>,
    /// Findings below this score are not reported.
    pub threshold: f32,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

fn ascii_regex(patterns: &[&str]) -> Regex {
    // ASCII semantics keep the scan in the lazy DFA (Unicode \b would not).
    Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .configure(
            meta::Config::new()
                .utf8_empty(false)
                .hybrid_cache_capacity(16 << 20),
        )
        .build_many(patterns)
        .unwrap_or_else(|e| panic!("built-in PII patterns must compile: {e}"))
}

impl Scanner {
    /// All detectors, threshold 0.5.
    pub fn new() -> Scanner {
        let patterns: Vec<&str> = PATTERNS.iter().map(|p| p.regex).collect();
        Scanner {
            all: ascii_regex(&patterns),
            one: patterns.iter().map(|p| ascii_regex(&[p])).collect(),
            threshold: 0.5,
        }
    }

    /// Finds personal data in `text`, in order of position.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut chars = CharIndex::new(text);
        let mut at = 0;
        while let Some(m) = self.all.search(&Input::new(text).range(at..)) {
            let start = m.start();
            let mut found = self.judge(text, m.pattern().as_usize(), m.range());
            if found.is_none() {
                // The first pattern failed its check: another may fit here
                // (a failed card number can be a phone number).
                found = (0..PATTERNS.len())
                    .filter(|&j| j != m.pattern().as_usize())
                    .find_map(|j| {
                        let hit = self.one[j]
                            .search(&Input::new(text).range(start..).anchored(Anchored::Yes))?;
                        self.judge(text, j, hit.range())
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
        range: Range<usize>,
    ) -> Option<(Entity, Range<usize>, f32)> {
        let p = &PATTERNS[pattern];
        let value = text.get(range.clone())?;
        let mut score = (p.validate)(value)?;
        if score < 1.0 && has_context(text, &range, p.context) {
            score = (score + CONTEXT_BOOST).min(1.0);
        }
        (score >= self.threshold).then_some((p.entity, range, score))
    }
}

fn has_context(text: &str, range: &Range<usize>, words: &[&str]) -> bool {
    if words.is_empty() {
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
    words.iter().any(|w| window.contains(w))
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
