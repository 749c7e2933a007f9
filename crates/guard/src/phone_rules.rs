//! libphonenumber's parsing rules over its metadata: country codes,
//! international and national prefixes (with Argentina-style transform
//! rules), possible lengths and the per-type number patterns, matched
//! whole. The metadata is the `phonenumber` crate's compiled-in copy; its
//! patterns are compiled here once per region, on first use, into anchored
//! lazy-DFA regexes (the crate's own matcher takes a global lock per match
//! and matches prefixes only).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex_automata::meta::Regex;

/// One number pattern with the lengths it allows.
struct Pattern {
    whole: Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn new(d: &Descriptor, general: &[u16]) -> Option<Pattern> {
        let src = squeeze(d.national_number().as_str());
        if src.is_empty() || src == "NA" {
            return None;
        }
        let whole = Regex::new(&format!("^(?:{src})$")).ok()?;
        let lengths = if d.possible_length().is_empty() {
            general.to_vec()
        } else {
            d.possible_length().to_vec()
        };
        Some(Pattern { whole, lengths })
    }
    fn matches(&self, nsn: &str) -> bool {
        self.lengths.contains(&(nsn.len() as u16)) && self.whole.is_match(nsn)
    }
}

/// A region's rules, compiled.
pub(crate) struct Rules {
    pub code: u16,
    /// The country code as digits (`44`), to find it written without `+`.
    code_digits: String,
    international_prefix: Option<Regex>,
    national_prefix: Option<Regex>,
    transform: Option<String>,
    general: Option<Pattern>,
    /// The lengths of fixed-line and mobile numbers, the ones people write
    /// (a length only special services have, like Brazil's 8-digit 4004
    /// numbers, is no evidence: it is every Brazilian postcode's too).
    common: Vec<u16>,
    local: Vec<u16>,
    types: Vec<Pattern>,
}

/// The metadata's patterns are laid out over several lines; whitespace in
/// them means nothing.
fn squeeze(src: &str) -> String {
    src.chars().filter(|c| !c.is_whitespace()).collect()
}

fn prefix_regex(src: Option<&str>) -> Option<Regex> {
    let src = squeeze(src?);
    Regex::new(&format!("^(?:{src})")).ok()
}

impl Rules {
    fn new(m: &Metadata) -> Rules {
        let d = m.descriptors();
        let g = d.general();
        let descs: Vec<&Descriptor> = [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .collect();
        // The general lengths are the union of the types' (the metadata
        // leaves them out of the general description).
        let union = |f: fn(&Descriptor) -> &[u16], own: &[u16]| {
            let mut v: Vec<u16> = own.to_vec();
            v.extend(descs.iter().flat_map(|d| f(d).iter().copied()));
            v.sort_unstable();
            v.dedup();
            v
        };
        let possible = union(Descriptor::possible_length, g.possible_length());
        let local = union(Descriptor::possible_local_length, g.possible_local_length());
        let mut common: Vec<u16> = [d.fixed_line(), d.mobile()]
            .into_iter()
            .flatten()
            .flat_map(|t| t.possible_length().iter().copied())
            .collect();
        common.sort_unstable();
        common.dedup();
        if common.is_empty() {
            common = possible.clone();
        }
        let types = descs
            .iter()
            .filter_map(|t| Pattern::new(t, &possible))
            .collect();
        Rules {
            code: m.country_code(),
            code_digits: m.country_code().to_string(),
            international_prefix: prefix_regex(m.international_prefix().map(|r| r.as_str())),
            national_prefix: prefix_regex(
                m.national_prefix_for_parsing()
                    .map(|r| r.as_str())
                    .or(m.national_prefix()),
            ),
            transform: m.national_prefix_transform_rule().map(str::to_string),
            general: Pattern::new(g, &possible),
            local,
            common,
            types,
        }
    }

    /// Whether `nsn` (a national significant number) is valid here.
    pub fn valid(&self, nsn: &str) -> bool {
        self.general.as_ref().is_some_and(|g| g.whole.is_match(nsn))
            && self.types.iter().any(|t| t.matches(nsn))
    }

    /// Whether `nsn` has a length numbers here can have; with `local`,
    /// also the length of a number dialled within its area only.
    pub fn possible(&self, nsn: &str, local: bool) -> bool {
        let n = nsn.len() as u16;
        self.common.contains(&n) || (local && self.local.contains(&n))
    }

    /// The international prefix at the start of `digits` (`011` in the US,
    /// `00` in most places): the digits after it.
    pub fn strip_international<'d>(&self, digits: &'d str) -> Option<&'d str> {
        let m = self.international_prefix.as_ref()?.find(digits)?;
        (m.end() > 0).then(|| &digits[m.end()..])
    }

    /// The national significant numbers `digits` (written nationally, or
    /// after the country code) can stand for: with the national prefix
    /// removed (or transformed) when it is there, and as written.
    pub fn national_readings(&self, digits: &str) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        if let Some(np) = &self.national_prefix {
            let mut caps = np.create_captures();
            np.captures(digits, &mut caps);
            if let Some(whole) = caps.get_match() {
                let rest = &digits[whole.end()..];
                let last = caps.group_len().saturating_sub(1);
                match (&self.transform, caps.get_group(last)) {
                    (Some(rule), Some(_)) if last > 0 => {
                        let mut t = rule.clone();
                        for i in 1..caps.group_len() {
                            let v = caps.get_group(i).map_or("", |s| &digits[s.range()]);
                            t = t.replace(&format!("${i}"), v);
                        }
                        out.push(format!("{t}{rest}"));
                    }
                    _ if whole.end() > 0 => out.push(rest.to_string()),
                    _ => {}
                }
            }
        }
        out.push(digits.to_string());
        out
    }
}

type Cache<K> = RwLock<HashMap<K, Arc<Rules>>>;

fn by_id() -> &'static Cache<String> {
    static CACHE: OnceLock<Cache<String>> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The compiled rules of region `id` (`US`, or `001` for non-geographic
/// codes), `None` when libphonenumber has no metadata for it.
pub(crate) fn rules(id: &str) -> Option<Arc<Rules>> {
    if let Some(r) = by_id().read().ok()?.get(id) {
        return Some(r.clone());
    }
    let meta = DATABASE.by_id(id)?;
    let r = Arc::new(Rules::new(meta));
    by_id().write().ok()?.insert(id.to_string(), r.clone());
    Some(r)
}

type CodeCache = RwLock<HashMap<u16, Arc<Vec<Arc<Rules>>>>>;

/// The rules of every region sharing country calling code `code` (`1`:
/// the US, Canada and the Caribbean); empty for a code that is not one.
pub(crate) fn rules_for_code(code: u16) -> Arc<Vec<Arc<Rules>>> {
    static CACHE: OnceLock<CodeCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| RwLock::new(HashMap::new()));
    if let Some(r) = cache.read().ok().and_then(|c| c.get(&code).cloned()) {
        return r;
    }
    let list: Vec<Arc<Rules>> = DATABASE
        .region(&code)
        .unwrap_or_default()
        .iter()
        .filter_map(|id| rules(id))
        .collect();
    let list = Arc::new(list);
    if let Ok(mut c) = cache.write() {
        c.insert(code, list.clone());
    }
    list
}

/// Whether a number written internationally (`digits`: everything after
/// `+` or the international prefix) is a phone number: `Some(true)` valid,
/// `Some(false)` only of a possible length.
pub(crate) fn international(digits: &str) -> Option<bool> {
    let mut best = None;
    for cc in 1..=3.min(digits.len()) {
        let Ok(code) = digits[..cc].parse::<u16>() else {
            continue;
        };
        let regions = rules_for_code(code);
        if regions.is_empty() {
            continue;
        }
        let rest = &digits[cc..];
        for r in regions.iter() {
            for nsn in r.national_readings(rest) {
                if r.valid(&nsn) {
                    return Some(true);
                }
                if r.possible(&nsn, false) {
                    best = Some(false);
                }
            }
        }
        // Country codes are prefix-free: the first that exists is the one.
        break;
    }
    best
}

/// What a national reading of a number came to, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verdict {
    /// Only the length of a number dialled within its area (7 in the US).
    LocalOnly,
    /// A length numbers of the region have, but no number range fits.
    Possible,
    /// Valid as written.
    Valid,
    /// Valid once the national prefix (`0` in most of Europe) is taken
    /// off: a number written with its trunk prefix is almost surely one.
    ValidWithPrefix,
    /// Written with the international prefix (`011` in the US) and valid.
    ValidInternational,
}

/// What `digits`, written as a number of region `r`, is there.
pub(crate) fn national(digits: &str, r: &Rules) -> Option<Verdict> {
    if let Some(rest) = r.strip_international(digits) {
        match international(rest) {
            Some(true) => return Some(Verdict::ValidInternational),
            Some(false) => return Some(Verdict::Possible),
            None => {}
        }
    }
    // (reading, whether a national prefix or the country code came off)
    let mut readings: Vec<(String, bool)> = r
        .national_readings(digits)
        .into_iter()
        .map(|n| {
            let cut = n != digits;
            (n, cut)
        })
        .collect();
    // `1 555 …` in the US: the country code written without `+`.
    if let Some(rest) = digits.strip_prefix(r.code_digits.as_str()) {
        readings.extend(r.national_readings(rest).into_iter().map(|n| (n, true)));
    }
    let mut best: Option<Verdict> = None;
    let mut note = |v: Verdict| best = best.max(Some(v));
    // Regions sharing the code count too (Canada's numbers for the US).
    let shared = rules_for_code(r.code);
    for (nsn, cut) in &readings {
        let valid = r.valid(nsn) || shared.iter().any(|o| o.valid(nsn));
        if valid {
            note(if *cut {
                Verdict::ValidWithPrefix
            } else {
                Verdict::Valid
            });
        } else if r.possible(nsn, false) {
            note(Verdict::Possible);
        } else if !cut && r.possible(nsn, true) {
            // An area-local length only as written: taking a prefix off
            // would read any 8 digits starting with 1 as a US number.
            note(Verdict::LocalOnly);
        }
    }
    best
}
