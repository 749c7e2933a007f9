//! Phone numbers as libphonenumber knows them. The scan finds a candidate
//! (digits in groups, maybe `+`, `00`, parentheses, an extension); here it is
//! parsed with libphonenumber's metadata (the `phonenumber` crate, compiled
//! in) for each of the device's regions, and for every region when it is
//! written internationally. A valid number is a finding; a number of a
//! possible length only when it is written the way phone numbers are, or
//! has a context word. A candidate that swallowed a neighbouring number is
//! shortened group by group until it parses.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

use crate::phone_rules::{self, Verdict};

/// A region whose national formats the scanner reads (CLDR code, `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(Id);

impl Region {
    /// The United States.
    pub const US: Region = Region(Id::US);
}

impl FromStr for Region {
    type Err = String;
    /// `US`, `gb`, `DE`: any region libphonenumber has metadata for.
    fn from_str(s: &str) -> Result<Region, String> {
        let up = s.trim().to_ascii_uppercase();
        let id = Id::from_str(&up).map_err(|_| {
            format!("{s:?} is not a region code libphonenumber knows: give a two-letter CLDR code such as US, GB or DE")
        })?;
        if DATABASE.by_id(up.as_str()).is_none() {
            return Err(format!(
                "libphonenumber has no phone metadata for region {up}"
            ));
        }
        Ok(Region(id))
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

/// The region of a POSIX or BCP 47 locale (`en_US.UTF-8`, `de-DE`,
/// `pt_BR@euro`); `None` for `C`, `POSIX` or a locale without a region.
pub fn locale_region(locale: &str) -> Option<Region> {
    let base = locale.split(['.', '@']).next()?;
    let mut parts = base.split(['_', '-']);
    parts.next()?;
    parts
        .filter(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_alphabetic()))
        .find_map(|p| p.parse().ok())
}

/// How a candidate is written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// Digit groups, parentheses or an extension: written as a phone number.
    Formatted,
    /// One run of digits.
    Bare,
}

/// Base score of a national number of `shape` with verdict `v`: a valid
/// formatted number is a finding alone, a bare one when it carries its
/// trunk prefix or is valid; lengths alone need a context word.
fn score(shape: Shape, v: Verdict, digits: usize) -> Option<f32> {
    use Verdict::*;
    Some(match (shape, v) {
        (_, ValidInternational) => 0.85,
        (Shape::Formatted, Valid | ValidWithPrefix) => 0.8,
        (Shape::Formatted, Possible) if digits >= 7 => 0.55,
        (Shape::Bare, ValidWithPrefix) => 0.6,
        (Shape::Bare, Valid) => 0.5,
        (_, Possible) if digits >= 7 => 0.3,
        (_, LocalOnly) if digits >= 7 => 0.3,
        _ => return None,
    })
}

/// Score of a number written with `+` or `00`.
fn score_international(valid: bool, digits: usize) -> Option<f32> {
    match valid {
        true => Some(0.9),
        false => (digits >= 8).then_some(0.6),
    }
}

/// Judges a candidate: the byte length of the accepted prefix (a candidate
/// may have run into a neighbouring number) and its base score.
pub(crate) fn judge(candidate: &str, regions: &[Region]) -> Option<(usize, f32)> {
    if looks_like_date(candidate) || starts_with_date(candidate) {
        return None;
    }
    let mut end = candidate.len();
    for _ in 0..3 {
        let part = &candidate[..end];
        if let Some(s) = judge_whole(part, regions) {
            return Some((end, s));
        }
        // Drop the last group of digits when a space sets it apart (a
        // neighbouring number: "555-108-7442 2 times"); groups joined by
        // '-', '.' or '/' belong to the number.
        let cut = part.trim_end_matches(|c: char| c.is_ascii_digit());
        if !cut.ends_with(' ') {
            return None;
        }
        let cut = cut.trim_end_matches(|c: char| !c.is_ascii_digit());
        if cut.bytes().filter(u8::is_ascii_digit).count() < 6 {
            return None;
        }
        end = cut.len();
    }
    None
}

/// The part before an extension (`x12`, `ext. 12`, `#12`) and whether one
/// was there.
fn split_extension(s: &str) -> (&str, bool) {
    if s.bytes().all(|b| !b.is_ascii_alphabetic() && b != b'#') {
        return (s, false);
    }
    let lower = s.to_ascii_lowercase();
    for marker in ["extension", "ext.", "ext", "x", "#"] {
        if let Some(at) = lower.rfind(marker) {
            let tail = &s[at + marker.len()..];
            if tail.trim().bytes().all(|b| b.is_ascii_digit()) && !tail.trim().is_empty() {
                return (s[..at].trim_end(), true);
            }
        }
    }
    (s, false)
}

/// `2024-03-05 10…`: a timestamp's date and hour.
fn starts_with_date(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    b.len() > 10
        && (0..4).all(d)
        && b[4] == b'-'
        && d(5)
        && d(6)
        && b[7] == b'-'
        && looks_like_date(&s[..10])
}

/// `2024-03-05`, `05.03.2024`, `3/5/24`: a date, not a phone number.
fn looks_like_date(s: &str) -> bool {
    if s.len() > 10 {
        return false;
    }
    let groups: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if groups.len() != 3 || seps.len() != 2 || seps[0] != seps[1] || seps[0] == ' ' {
        return false;
    }
    let n: Vec<u32> = groups.iter().filter_map(|g| g.parse().ok()).collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let dm = |a: u32, b: u32| (1..=31).contains(&a) && (1..=12).contains(&b);
    match lens.as_slice() {
        [4, 2, 2] => (1..=12).contains(&n[1]) && (1..=31).contains(&n[2]),
        [1 | 2, 1 | 2, 2 | 4] => dm(n[0], n[1]) || dm(n[1], n[0]),
        _ => false,
    }
}

fn judge_whole(candidate: &str, regions: &[Region]) -> Option<f32> {
    let (number, has_ext) = split_extension(candidate);
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if !(4..=17).contains(&digits.len()) {
        return None;
    }
    let body = number.trim_start_matches('(');
    if body.starts_with('+') || body.starts_with("00") {
        // `00` is the international prefix in most of the world; read it as
        // `+` whatever the device's region.
        let after = if body.starts_with('+') {
            &digits[..]
        } else {
            &digits[2..]
        };
        return phone_rules::international(after)
            .and_then(|valid| score_international(valid, digits.len()));
    }
    let shape = if has_ext || number.bytes().any(|b| !b.is_ascii_digit()) {
        Shape::Formatted
    } else {
        Shape::Bare
    };
    let mut best: Option<Verdict> = None;
    for r in regions {
        let Some(rules) = phone_rules::rules(r.0.as_ref()) else {
            continue;
        };
        best = best.max(phone_rules::national(&digits, &rules));
    }
    score(shape, best?, digits.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(codes: &[&str]) -> Vec<Region> {
        codes.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn regions_and_locales() {
        assert_eq!(locale_region("en_US.UTF-8").unwrap().to_string(), "US");
        assert_eq!(locale_region("de-DE").unwrap().to_string(), "DE");
        assert_eq!(locale_region("pt_BR@euro").unwrap().to_string(), "BR");
        assert!(locale_region("C").is_none());
        assert!(locale_region("C.UTF-8").is_none());
        assert!("ZQ".parse::<Region>().is_err());
        assert_eq!("gb".parse::<Region>().unwrap().to_string(), "GB");
    }

    #[test]
    fn national_formats_in_their_region() {
        let us = r(&["US"]);
        for s in [
            "555-108-7442",
            "486.592.1340",
            "(591)341-7776",
            "206.269.0743x9150",
        ] {
            assert!(judge(s, &us).is_some(), "{s}");
        }
        assert!(judge("06-50669214", &r(&["NL"])).is_some());
        assert!(judge("0341 59 12 34", &r(&["DE"])).is_some());
        assert!(judge("(011) 4706-6184", &r(&["AR"])).is_some());
        assert!(judge("12-34", &us).is_none(), "too short anywhere");
        assert!(
            judge("0650669214", &us).is_some_and(|(_, s)| s < 0.5),
            "bare: needs context"
        );
    }

    #[test]
    fn international_in_any_region() {
        let us = r(&["US"]);
        for s in [
            "+44 115 496 0914",
            "+49 (0) 9141 777631",
            "0033 1 83 41 77 76",
            "+1-780-563-6083x7783",
        ] {
            let (len, score) = judge(s, &us).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(len, s.len(), "{s}");
            assert!(score >= 0.5, "{s}: {score}");
        }
    }

    #[test]
    fn dates_and_swallowed_neighbours() {
        let de = r(&["DE", "US"]);
        assert!(judge("2024-03-05", &de).is_none());
        assert!(judge("05.03.2024", &de).is_none());
        let s = "555-108-7442 2";
        assert_eq!(judge(s, &r(&["US"])).map(|x| x.0), Some(12));
    }
}
