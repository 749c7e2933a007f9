//! Checks that turn a pattern match into a score or drop it: checksums
//! (Luhn and card schemes' prefixes, IBAN mod-97), number ranges (SSN,
//! IPv4, dates), parsing (IPv6) and character entropy (secrets).

/// Luhn checksum over the digits of `s`.
pub fn luhn_ok(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                (d * 2).div_euclid(10) + (d * 2) % 10
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// ISBN-13 (978/979) numbers are not cards even when Luhn passes.
fn isbn13_ok(d: &str) -> bool {
    if d.len() != 13 || !(d.starts_with("978") || d.starts_with("979")) {
        return false;
    }
    let sum: u32 = d
        .chars()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, v)| if i % 2 == 0 { v } else { 3 * v })
        .sum();
    sum % 10 == 0
}

/// E-mail: the pattern is loose (fast); lengths are checked here.
pub fn email(s: &str) -> Option<f32> {
    let (local, domain) = s.rsplit_once('@')?;
    let ok = (1..=64).contains(&local.len())
        && domain.len() <= 253
        && domain
            .split('.')
            .all(|l| (1..=63).contains(&l.len()) && !l.starts_with('-') && !l.ends_with('-'));
    ok.then_some(0.9)
}

/// A card scheme's issuer prefixes (inclusive ranges of the first digits,
/// all of one width) and the lengths its numbers have.
struct Scheme {
    name: &'static str,
    /// First and last prefix of each range, as digits of one width.
    ranges: &'static [(&'static str, &'static str)],
    lengths: std::ops::RangeInclusive<usize>,
}

/// The major schemes' IIN ranges and lengths, as the schemes and ISO/IEC
/// 7812 list them. Overlaps (Maestro's broad 5x/6x) are fine: a number
/// needs one scheme that takes both its prefix and its length.
const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "Visa",
        ranges: &[("4", "4")],
        lengths: 13..=19,
    },
    Scheme {
        name: "Mastercard",
        ranges: &[("51", "55"), ("2221", "2720")],
        lengths: 16..=16,
    },
    Scheme {
        name: "American Express",
        ranges: &[("34", "34"), ("37", "37")],
        lengths: 15..=15,
    },
    Scheme {
        name: "Maestro",
        ranges: &[("50", "50"), ("56", "69"), ("0604", "0604")],
        lengths: 12..=19,
    },
    Scheme {
        name: "UnionPay",
        ranges: &[("62", "62"), ("81", "81")],
        lengths: 16..=19,
    },
    Scheme {
        name: "JCB",
        ranges: &[("3528", "3589")],
        lengths: 16..=19,
    },
    Scheme {
        name: "JCB (15 digits)",
        ranges: &[("1800", "1800"), ("2131", "2131")],
        lengths: 15..=15,
    },
    Scheme {
        name: "Discover",
        ranges: &[("6011", "6011"), ("644", "649"), ("65", "65")],
        lengths: 16..=19,
    },
    Scheme {
        name: "Diners Club",
        ranges: &[("300", "305"), ("3095", "3095"), ("36", "36"), ("38", "39")],
        lengths: 14..=19,
    },
    Scheme {
        name: "Mir",
        ranges: &[("2200", "2204")],
        lengths: 16..=19,
    },
    Scheme {
        name: "RuPay",
        ranges: &[
            ("60", "60"),
            ("508", "508"),
            ("81", "82"),
            ("353", "353"),
            ("356", "356"),
        ],
        lengths: 16..=16,
    },
    Scheme {
        name: "Troy",
        ranges: &[("9792", "9792")],
        lengths: 16..=16,
    },
];

/// The scheme a number of these digits belongs to, if any takes both its
/// prefix and its length.
pub fn card_scheme(d: &str) -> Option<&'static str> {
    SCHEMES
        .iter()
        .find(|s| {
            s.lengths.contains(&d.len())
                && s.ranges
                    .iter()
                    .any(|&(lo, hi)| d.get(..lo.len()).is_some_and(|p| (lo..=hi).contains(&p)))
        })
        .map(|s| s.name)
}

/// Card numbers: Luhn, and a scheme whose prefix and length fit (then
/// certain). A Luhn-valid 13–19 digit number of no known scheme is weak and
/// needs a context word. Separators: one kind (space, dash or dot), single,
/// between groups of 3–6 digits.
pub fn credit_card(s: &str) -> Option<f32> {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return None;
    }
    if !seps.is_empty()
        && s.split(seps[0])
            .any(|g| !(3..=6).contains(&g.len()) || !g.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let d = digits(s);
    if !(12..=19).contains(&d.len()) || !luhn_ok(&d) || isbn13_ok(&d) {
        return None;
    }
    match card_scheme(&d) {
        // Only Maestro has 12 digits, and so has an Aadhaar number (whose
        // check passes with Luhn's one time in ten): the word "card" decides.
        Some(_) if d.len() == 12 => Some(0.45),
        Some(_) => Some(1.0),
        None if d.len() >= 13 => Some(0.4),
        None => None,
    }
}

/// IBAN: country letters, check digits, mod-97 == 1.
pub fn iban(s: &str) -> Option<f32> {
    let c: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&c.len()) {
        return None;
    }
    let rearranged = format!("{}{}", &c[4..], &c[..4]);
    let mut rem: u32 = 0;
    for ch in rearranged.chars() {
        let v = match ch {
            '0'..='9' => ch as u32 - '0' as u32,
            'A'..='Z' => ch as u32 - 'A' as u32 + 10,
            _ => return None,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    (rem == 1).then_some(1.0)
}

/// US SSN validity: area not 000, 666 or 9xx; group not 00; serial not
/// 0000; not a well-known fake; separators consistent. Dashed numbers are a
/// medium match, bare ones weak (they need context).
pub fn ssn(s: &str) -> Option<f32> {
    let d = digits(s);
    if d.len() != 9 {
        return None;
    }
    let (area, group, serial) = (&d[..3], &d[3..5], &d[5..]);
    if area == "000" || area == "666" || area.starts_with('9') || group == "00" || serial == "0000"
    {
        return None;
    }
    if d == "123456789" || d.chars().all(|c| c == d.as_bytes()[0] as char) {
        return None;
    }
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    match seps.as_slice() {
        ['-', '-'] => Some(0.6),
        [' ', ' '] => Some(0.4),
        [] => Some(0.3),
        _ => None,
    }
}

pub fn ipv4(s: &str) -> Option<f32> {
    s.parse::<std::net::Ipv4Addr>().ok().map(|_| 0.6)
}

pub fn ipv6(s: &str) -> Option<f32> {
    if s.matches(':').count() < 2 {
        return None;
    }
    s.parse::<std::net::Ipv6Addr>().ok().map(|_| 0.8)
}

/// A date that could be a birth date: real month and day. Weak on its own;
/// context words ("born", "DOB") make it a finding.
pub fn date(s: &str) -> Option<f32> {
    let nums: Vec<u32> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    let has_month_name = s.chars().any(|c| c.is_ascii_alphabetic());
    let (day, month) = match (nums.as_slice(), has_month_name) {
        ([y, m, d], false) if *y >= 1900 => (*d, *m),
        ([a, b, _y], false) => {
            // d/m/Y or m/d/Y: either reading must be a real date.
            if (1..=12).contains(b) || (1..=12).contains(a) {
                (*a.max(b), *a.min(b))
            } else {
                return None;
            }
        }
        // "April 23, 1987" or "23 April 1987": the small number is the day.
        ([a, b], true) => (*a.min(b), 1),
        _ => return None,
    };
    ((1..=31).contains(&day) && (1..=12).contains(&month)).then_some(0.15)
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f32 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(&n, p)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A high-entropy token: weak alone, a finding next to "key", "token",
/// "password" and the like. UUIDs and plain words are not secrets.
pub fn secret(s: &str) -> Option<f32> {
    let s = s.trim_end_matches('=');
    if s.len() < 20 || s.len() > 512 || is_uuid(s) {
        return None;
    }
    let has_digit = s.chars().any(|c| c.is_ascii_digit());
    let has_alpha = s.chars().any(|c| c.is_ascii_alphabetic());
    if !(has_digit && has_alpha) || entropy(s) < 3.5 {
        return None;
    }
    Some(0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert!(luhn_ok("4111 1111 1111 1111"));
        assert!(!luhn_ok("4111 1111 1111 1112"));
        assert_eq!(iban("GB82 WEST 1234 5698 7654 32"), Some(1.0));
        assert_eq!(iban("GB82 WEST 1234 5698 7654 33"), None);
        assert_eq!(
            credit_card("978-3-16-148410-0"),
            None,
            "an ISBN is not a card"
        );
        assert_eq!(card_scheme("5020123456789017"), Some("Maestro"));
        assert_eq!(card_scheme("2221000000000009"), Some("Mastercard"));
        assert_eq!(card_scheme("378282246310005"), Some("American Express"));
        assert_eq!(card_scheme("4111111111111"), Some("Visa"));
        assert_eq!(card_scheme("3711111111111111"), None, "Amex is 15 digits");
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn("123-45-6788").is_some());
        assert!(ssn("000-45-6788").is_none());
        assert!(ssn("666-45-6788").is_none());
        assert!(ssn("923-45-6788").is_none());
        assert!(ssn("123-00-6788").is_none());
        assert!(ssn("123-45-0000").is_none());
        assert!(ssn("123-45 6788").is_none(), "mixed separators");
    }

    #[test]
    fn addresses_and_dates() {
        assert!(ipv4("192.168.1.20").is_some());
        assert!(ipv4("300.1.1.1").is_none());
        assert!(ipv6("2001:db8::8a2e:370:7334").is_some());
        assert!(ipv6("10:22:31").is_none());
        assert!(date("1987-04-23").is_some());
        assert!(date("1987-13-23").is_none());
        assert!(date("23 April 1987").is_some());
    }

    #[test]
    fn secrets_need_entropy() {
        assert!(secret("wJalrXUtnFEMI7K7MDENGbPxRfiCYEXAMPLEKEY").is_some());
        assert!(secret("aaaaaaaaaaaaaaaaaaaaaaaaa1").is_none());
        assert!(secret("550e8400-e29b-41d4-a716-446655440000").is_none());
    }
}
