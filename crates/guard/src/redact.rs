//! Redaction: replace what the scanner found, by one of five actions, and
//! restore reversible placeholders in a (streamed) answer.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::detect::{Finding, Scanner};
use crate::entity::Entity;

/// What to do with each finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `<EMAIL_ADDRESS>`.
    Redact,
    /// Letters and digits become `*`; numbers keep their last 4 digits.
    Mask,
    /// `<EMAIL_ADDRESS:1a2b3c4d5e6f>`: HMAC-SHA256 under `key`, so equal
    /// values stay linkable without being readable.
    Hash { key: Vec<u8> },
    /// `<EMAIL_ADDRESS_1>`, remembered in a [`Vault`] so the answer can be
    /// restored with a [`Restorer`].
    Placeholder,
    /// Refuse the text if anything is found.
    Block,
}

impl Action {
    /// Parses `redact`, `mask`, `hash`, `placeholder`, `block`.
    pub fn parse(name: &str, key: Option<&[u8]>) -> Option<Action> {
        Some(match name {
            "redact" => Action::Redact,
            "mask" => Action::Mask,
            "hash" => Action::Hash { key: key?.to_vec() },
            "placeholder" => Action::Placeholder,
            "block" => Action::Block,
            _ => return None,
        })
    }
}

/// Text that has been through the guard. Only this crate can make one, so
/// code that must send only guarded text (the router's cloud path) can ask
/// for this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    pub fn as_inner(&self) -> &T {
        &self.0
    }
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// A value holding texts the guard can rewrite in place (a request body
/// with several messages). [`redact_texts`] visits every text it yields,
/// so an implementation should yield all of them, not a chosen few.
pub trait Texts {
    fn for_each_text(&mut self, f: &mut dyn FnMut(&mut String));
}

/// Redacts every text of `value` (see [`redact`]) and returns the value as
/// [`Redacted`], with the number of replacements made. One vault serves all
/// texts, so a value repeated across messages gets one placeholder.
///
/// ```
/// use outpost_guard::{redact_texts, Action, Scanner, Texts, Vault};
/// struct Messages(Vec<String>);
/// impl Texts for Messages {
///     fn for_each_text(&mut self, f: &mut dyn FnMut(&mut String)) {
///         self.0.iter_mut().for_each(|t| f(t));
///     }
/// }
/// let msgs = Messages(vec!["Card 4111 1111 1111 1111".into(), "again: 4111 1111 1111 1111".into()]);
/// let mut vault = Vault::new();
/// let (safe, n) = redact_texts(&Scanner::new(), msgs, &Action::Placeholder, &mut vault).unwrap();
/// assert_eq!(n, 2);
/// assert_eq!(safe.as_inner().0, ["Card <CREDIT_CARD_1>", "again: <CREDIT_CARD_1>"]);
/// ```
pub fn redact_texts<T: Texts>(
    scanner: &Scanner,
    mut value: T,
    action: &Action,
    vault: &mut Vault,
) -> Result<(Redacted<T>, usize), GuardError> {
    let mut failed = None;
    let mut replaced = 0;
    value.for_each_text(&mut |text| {
        if failed.is_some() {
            return;
        }
        replaced += scanner.scan(text).len();
        match redact(scanner, text, action, vault) {
            Ok(r) => *text = r.0,
            Err(e) => failed = Some(e),
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok((Redacted(value), replaced)),
    }
}

/// Why a text was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "blocked: the text contains personal data ({summary}); remove it or choose another action"
    )]
    Blocked {
        summary: String,
        findings: Vec<Finding>,
    },
}

/// Placeholders handed out, and what they stand for.
#[derive(Debug, Clone, Default)]
pub struct Vault {
    by_placeholder: HashMap<String, String>,
    by_value: HashMap<(Entity, String), String>,
    counts: HashMap<Entity, usize>,
}

impl Vault {
    pub fn new() -> Self {
        Self::default()
    }

    /// The placeholder for `value` (the same value always gets the same one).
    fn placeholder(&mut self, entity: Entity, value: &str) -> String {
        if let Some(p) = self.by_value.get(&(entity, value.to_string())) {
            return p.clone();
        }
        let n = self.counts.entry(entity).or_insert(0);
        *n += 1;
        let p = format!("<{}_{}>", entity.name(), n);
        self.by_placeholder.insert(p.clone(), value.to_string());
        self.by_value.insert((entity, value.to_string()), p.clone());
        p
    }

    /// A vault from saved placeholder → original pairs (as
    /// [`Vault::entries`] lists them).
    pub fn from_entries(pairs: impl IntoIterator<Item = (String, String)>) -> Vault {
        let mut v = Vault::new();
        for (placeholder, original) in pairs {
            v.by_placeholder.insert(placeholder, original);
        }
        v
    }

    /// The original value behind a placeholder.
    pub fn original(&self, placeholder: &str) -> Option<&str> {
        self.by_placeholder.get(placeholder).map(String::as_str)
    }

    /// Placeholder → original pairs.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_placeholder
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Scans `text` and applies `action` to every finding. Replacing a value
/// can, rarely, make its neighbourhood match a pattern it did not match
/// before (in `95::5::1.2.3.4` the embedded address goes and the head
/// becomes a valid IPv6 address), so the result is scanned again until
/// nothing is left.
pub fn redact(
    scanner: &Scanner,
    text: &str,
    action: &Action,
    vault: &mut Vault,
) -> Result<Redacted<String>, GuardError> {
    let mut out = apply(text, &scanner.scan(text), action, vault)?;
    // Each round replaces at least one character of the original text that
    // labels cannot contain again, so this ends; real text needs one round,
    // adversarial chains of `::` fragments (found by the fuzzer) a few more.
    for _ in 0..text.len() {
        let left = scanner.scan(&out.0);
        if left.is_empty() {
            break;
        }
        out = apply(&out.0, &left, action, vault)?;
    }
    Ok(out)
}

/// Applies `action` to given findings (sorted, non-overlapping, as
/// [`Scanner::scan`] returns them).
pub fn apply(
    text: &str,
    findings: &[Finding],
    action: &Action,
    vault: &mut Vault,
) -> Result<Redacted<String>, GuardError> {
    if *action == Action::Block && !findings.is_empty() {
        let mut names: Vec<&str> = findings.iter().map(|f| f.entity.name()).collect();
        names.dedup();
        return Err(GuardError::Blocked {
            summary: names.join(", "),
            findings: findings.to_vec(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        out.push_str(&text[at..f.bytes.start]);
        match action {
            Action::Redact | Action::Block => {
                out.push('<');
                out.push_str(f.entity.name());
                out.push('>');
            }
            Action::Mask => out.push_str(&mask(f)),
            Action::Hash { key } => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
                mac.update(f.value.as_bytes());
                let digest = mac.finalize().into_bytes();
                let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
                out.push_str(&format!("<{}:{hex}>", f.entity.name()));
            }
            Action::Placeholder => out.push_str(&vault.placeholder(f.entity, &f.value)),
        }
        at = f.bytes.end;
    }
    out.push_str(&text[at..]);
    Ok(Redacted(out))
}

fn mask(f: &Finding) -> String {
    let keep = match f.entity {
        Entity::CreditCard | Entity::PhoneNumber | Entity::IbanCode | Entity::UsSsn => 4,
        _ => 0,
    };
    let alnum = f.value.chars().filter(char::is_ascii_alphanumeric).count();
    let mut seen = 0;
    f.value
        .chars()
        .map(|c| {
            if !c.is_ascii_alphanumeric() {
                return c;
            }
            seen += 1;
            if seen > alnum - keep.min(alnum) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// Longest placeholder text (`<` + name + `_` + digits + `>`).
const MAX_PLACEHOLDER: usize = 40;

/// Restores placeholders in an answer that arrives in pieces split at any
/// byte: text that could be the start of a placeholder (or of a UTF-8
/// character) is held until it is complete.
#[derive(Debug)]
pub struct Restorer<'v> {
    vault: &'v Vault,
    pending: Vec<u8>,
}

impl<'v> Restorer<'v> {
    pub fn new(vault: &'v Vault) -> Self {
        Restorer {
            vault,
            pending: Vec::new(),
        }
    }

    /// Adds a piece of the answer; returns restored text that is final.
    pub fn push(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Invalid bytes mid-stream: pass them on, replaced.
            Err(_) => self.pending.len(),
        };
        let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        let hold = held_from(&text);
        let out = self.restore(&text[..hold]);
        let rest = text.len() - hold;
        let tail: Vec<u8> = text.as_bytes()[hold..]
            .iter()
            .chain(&self.pending[valid..])
            .copied()
            .collect();
        debug_assert_eq!(tail.len(), rest + self.pending.len() - valid);
        self.pending = tail;
        out
    }

    /// The rest, at the end of the answer.
    pub fn finish(mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.restore(&text)
    }

    fn restore(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(lt) = rest.find('<') {
            out.push_str(&rest[..lt]);
            let after = &rest[lt..];
            match after
                .find('>')
                .map(|gt| &after[..=gt])
                .and_then(|p| self.vault.original(p).map(|o| (p.len(), o)))
            {
                Some((len, original)) => {
                    out.push_str(original);
                    rest = &after[len..];
                }
                None => {
                    out.push('<');
                    rest = &after[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Where the text stops being safe to restore: at a trailing `<...` that
/// may still become a placeholder.
fn held_from(text: &str) -> usize {
    let Some(lt) = text.rfind('<') else {
        return text.len();
    };
    let tail = &text[lt + 1..];
    let could_be = tail.len() < MAX_PLACEHOLDER
        && tail
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if could_be {
        lt
    } else {
        text.len()
    }
}
