//! A labelled evaluation corpus, generated: sentence templates × synthetic
//! values (valid checksums where the type has one), plus hard negatives that
//! look like personal data but are not (UUIDs, order and version numbers,
//! timestamps, cards and IBANs that fail their checksums, ISBNs).
//! Deterministic for a seed. Used by the tests and `outpost guard bench`.

use crate::detect::Scanner;
use crate::entity::Entity;
use crate::phone::Region;

/// One labelled text.
#[derive(Debug, Clone)]
pub struct Sample {
    pub text: String,
    /// (entity, start, end) in character offsets.
    pub labels: Vec<(Entity, usize, usize)>,
    /// The region whose national phone formats the text uses, when it is
    /// not the scanner's.
    pub region: Option<Region>,
}

pub use crate::rng::Rng;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_NUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const FIRST: &[&str] = &[
    "jane", "omar", "li", "maria", "tom", "aiko", "lars", "fatima", "noah", "zoe",
];
const LAST: &[&str] = &[
    "doe", "haddad", "wei", "garcia", "smith", "tanaka", "berg", "khan", "miller", "okafor",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "uni.example.edu",
];

fn luhn_complete(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut d = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
    for check in 0..10 {
        let candidate = format!("{d}{check}");
        if crate::validate::luhn_ok(&candidate) {
            d = candidate;
            break;
        }
    }
    d
}

fn group(s: &str, size: usize, sep: &str) -> String {
    s.as_bytes()
        .chunks(size)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(sep)
}

fn iban_check(country: &str, bban: &str) -> String {
    let s = format!("{bban}{country}00");
    let mut rem = 0u32;
    for ch in s.chars() {
        let v = ch.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    format!("{:02}", 98 - rem)
}

/// A valid value of `entity`.
pub fn value(rng: &mut Rng, entity: Entity) -> String {
    if let Some(v) = crate::corpus_ids::value(rng, entity) {
        return v;
    }
    match entity {
        Entity::EmailAddress => format!(
            "{}.{}{}@{}",
            rng.pick(FIRST),
            rng.pick(LAST),
            rng.below(100),
            rng.pick(DOMAINS)
        ),
        Entity::PhoneNumber => {
            let a = 200 + rng.below(800);
            let b = 200 + rng.below(800);
            let c = rng.digits(4);
            match rng.below(7) {
                0 => format!("+1 ({a}) {b}-{c}"),
                1 => format!("({a}) {b}-{c}"),
                2 => format!("{a}-{b}-{c}"),
                3 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
                4 => format!("+49 30 {}", rng.digits(7)),
                5 => format!("020 {} {}", rng.digits(4), rng.digits(4)),
                _ => format!(
                    "+33 6 {} {} {} {}",
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2)
                ),
            }
        }
        Entity::CreditCard => {
            let (prefix, len) =
                *rng.pick(&[("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)]);
            let n = luhn_complete(rng, prefix, len);
            match rng.below(3) {
                0 if len == 16 => group(&n, 4, " "),
                1 if len == 16 => group(&n, 4, "-"),
                _ => n,
            }
        }
        Entity::IbanCode => {
            let (country, bban) = match rng.below(4) {
                0 => ("DE", rng.digits(18)),
                1 => (
                    "GB",
                    format!(
                        "{}{}",
                        rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                        rng.digits(14)
                    ),
                ),
                2 => (
                    "NL",
                    format!(
                        "{}{}",
                        rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                        rng.digits(10)
                    ),
                ),
                _ => ("ES", rng.digits(20)),
            };
            let iban = format!("{country}{}{bban}", iban_check(country, &bban));
            if rng.below(2) == 0 {
                group(&iban, 4, " ")
            } else {
                iban
            }
        }
        Entity::UsSsn => {
            let area = loop {
                let a = 1 + rng.below(899);
                if a != 666 {
                    break a;
                }
            };
            format!(
                "{area:03}-{:02}-{:04}",
                1 + rng.below(99),
                1 + rng.below(9999)
            )
        }
        Entity::IpAddress => {
            if rng.below(3) == 0 {
                let groups: Vec<String> =
                    (0..8).map(|_| format!("{:x}", rng.below(65536))).collect();
                if rng.below(2) == 0 {
                    groups.join(":")
                } else {
                    format!("2001:db8::{}:{}", groups[0], groups[1])
                }
            } else {
                format!(
                    "{}.{}.{}.{}",
                    1 + rng.below(223),
                    rng.below(256),
                    rng.below(256),
                    1 + rng.below(254)
                )
            }
        }
        Entity::MacAddress => (0..6)
            .map(|_| rng.chars(2, HEX))
            .collect::<Vec<_>>()
            .join(if rng.below(2) == 0 { ":" } else { "-" }),
        Entity::Url => format!(
            "{}://{}:{}@{}/{}",
            rng.pick(&["https", "postgres", "redis", "ftp"]),
            rng.pick(FIRST),
            rng.chars(10, ALNUM),
            rng.pick(DOMAINS),
            rng.pick(&["app", "db", "files/x"])
        ),
        Entity::AwsAccessKey => format!("AKIA{}", rng.chars(16, UPPER_NUM)),
        Entity::GithubToken => format!("ghp_{}", rng.chars(36, ALNUM)),
        Entity::SlackToken => format!(
            "xoxb-{}-{}-{}",
            rng.digits(11),
            rng.digits(12),
            rng.chars(24, ALNUM)
        ),
        Entity::Jwt => format!(
            "eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}",
            rng.chars(40, B64URL),
            rng.chars(43, B64URL)
        ),
        Entity::PrivateKey => format!(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE{}\n{}\n-----END RSA PRIVATE KEY-----",
            rng.chars(60, ALNUM),
            rng.chars(64, ALNUM)
        ),
        Entity::Secret => format!("{}{}", rng.chars(28, ALNUM), rng.digits(4)),
        Entity::DateOfBirth => {
            let (y, m, d) = (1940 + rng.below(65), 1 + rng.below(12), 1 + rng.below(28));
            const MONTHS: [&str; 12] = [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ];
            match rng.below(3) {
                0 => format!("{y}-{m:02}-{d:02}"),
                1 => format!("{d:02}/{m:02}/{y}"),
                _ => format!("{} {d}, {y}", MONTHS[(m - 1) as usize]),
            }
        }
        // National IDs come from `corpus_ids` above.
        _ => String::new(),
    }
}

/// Sentence templates per entity; `{}` is the value.
fn templates(entity: Entity) -> &'static [&'static str] {
    if let Some(t) = crate::corpus_ids::templates(entity) {
        return t;
    }
    match entity {
        Entity::EmailAddress => &[
            "Please write to {} with the details.",
            "From: {}\nSubject: invoice",
            "my email is {}",
        ],
        Entity::PhoneNumber => &[
            "Call me at {} after six.",
            "Phone: {}",
            "You can reach the office on {} tomorrow.",
        ],
        Entity::CreditCard => &[
            "My card number is {} exp 09/27.",
            "Charge it to {} please.",
            "card: {}",
        ],
        Entity::IbanCode => &[
            "Transfer it to IBAN {} by Friday.",
            "Bank account {} (main).",
            "iban={}",
        ],
        Entity::UsSsn => &[
            "My SSN is {}.",
            "social security number {} on file",
            "SSN: {}",
        ],
        Entity::IpAddress => &[
            "The server at {} is down.",
            "Login from IP {} was blocked.",
            "host {} answered",
        ],
        Entity::MacAddress => &[
            "Device MAC {} joined the network.",
            "interface {} is up",
            "mac address: {}",
        ],
        Entity::Url => &[
            "Connect with {} to debug.",
            "DATABASE_URL={}",
            "the repo is at {} now",
        ],
        Entity::AwsAccessKey => &[
            "aws_access_key_id = {}",
            "I pasted {} by mistake.",
            "key {} rotated",
        ],
        Entity::GithubToken => &[
            "export GITHUB_TOKEN={}",
            "use {} for the CI job",
            "token: {}",
        ],
        Entity::SlackToken => &[
            "slack bot {} posts alerts",
            "SLACK_TOKEN={}",
            "the token {} leaked",
        ],
        Entity::Jwt => &[
            "Authorization: Bearer {}",
            "cookie session={}",
            "jwt {} expired",
        ],
        Entity::PrivateKey => &["Here is the key:\n{}\nkeep it safe", "{}"],
        Entity::Secret => &[
            "api_key={}",
            "password: {}",
            "the secret is {} do not share",
        ],
        Entity::DateOfBirth => &[
            "I was born on {}.",
            "Date of birth: {}",
            "DOB {} (verified)",
        ],
        _ => &["{}"],
    }
}

const NEGATIVES: &[&str] = &[
    "Order #{order} shipped on {ts}.",
    "Upgrade to version v{ver} before {ts}.",
    "Request id {uuid} failed, retrying.",
    "Build {ver} took {n} seconds.",
    "The book's ISBN is {isbn}.",
    "Card {badcard} was declined.",
    "IBAN {badiban} is not valid.",
    "Meeting at {time} in room {n}.",
    "Invoice {order} totals {n}.{n2} EUR.",
    "Commit {sha} fixed the build.",
];

fn negative(rng: &mut Rng) -> String {
    let t = *rng.pick(NEGATIVES);
    let uuid = format!(
        "{}-{}-4{}-a{}-{}",
        rng.chars(8, HEX),
        rng.chars(4, HEX),
        rng.chars(3, HEX),
        rng.chars(3, HEX),
        rng.chars(12, HEX)
    );
    let mut badcard = luhn_complete(rng, "4", 16);
    let last = badcard.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
    badcard.push(char::from(b'0' + ((last + 1) % 10) as u8));
    let bban = rng.digits(18);
    let good = iban_check("DE", &bban);
    let bad_check = (good.parse::<u32>().unwrap_or(0) + 1) % 100;
    let isbn = {
        let body = format!("978{}", rng.digits(9));
        let sum: u32 = body
            .chars()
            .filter_map(|c| c.to_digit(10))
            .enumerate()
            .map(|(i, v)| if i % 2 == 0 { v } else { 3 * v })
            .sum();
        let d = format!("{body}{}", (10 - sum % 10) % 10);
        format!(
            "{}-{}-{}-{}-{}",
            &d[..3],
            &d[3..4],
            &d[4..6],
            &d[6..12],
            &d[12..]
        )
    };
    let order_len = 6 + rng.below(3) as usize;
    t.replace("{order}", &rng.digits(order_len))
        .replace(
            "{ts}",
            &format!(
                "2024-0{}-1{}T1{}:2{}:3{}Z",
                1 + rng.below(9),
                rng.below(10),
                rng.below(10),
                rng.below(10),
                rng.below(10)
            ),
        )
        .replace(
            "{ver}",
            &format!("{}.{}.{}", rng.below(20), rng.below(40), rng.below(100)),
        )
        .replace("{uuid}", &uuid)
        .replace("{isbn}", &isbn)
        .replace("{badcard}", &group(&badcard, 4, " "))
        .replace("{badiban}", &format!("DE{bad_check:02}{bban}"))
        .replace("{time}", &format!("1{}:{}0", rng.below(10), rng.below(6)))
        .replace("{n2}", &rng.digits(2))
        .replace("{n}", &(1 + rng.below(999)).to_string())
        .replace("{sha}", &rng.chars(7, HEX))
}

/// `n_per_type` labelled samples of every entity, and as many hard
/// negatives as there are entity types times `n_per_type`.
pub fn generate(n_per_type: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for entity in Entity::ALL {
        for _ in 0..n_per_type {
            let t = *rng.pick(templates(entity));
            let v = value(&mut rng, entity);
            let at = t.find("{}").unwrap_or(0);
            let start = t[..at].chars().count();
            let text = t.replacen("{}", &v, 1);
            // The one national format that is not North American: a London
            // number, written for a reader in the UK.
            let region = (entity == Entity::PhoneNumber && v.starts_with("020 "))
                .then(|| "GB".parse().ok())
                .flatten();
            out.push(Sample {
                labels: vec![(entity, start, start + v.chars().count())],
                text,
                region,
            });
        }
    }
    for _ in 0..n_per_type * Entity::ALL.len() {
        out.push(Sample {
            text: negative(&mut rng),
            labels: Vec::new(),
            region: None,
        });
    }
    out
}

/// Text of about `bytes` bytes mixing prose, hard negatives and personal
/// data (roughly one value per 300 bytes), for throughput measurement.
pub fn mixed_text(bytes: usize, seed: u64) -> String {
    const PROSE: &[&str] = &[
        "The quarterly report shows steady growth across all regions. ",
        "Please review the attached document before the meeting on Thursday. ",
        "We shipped the new release and the feedback has been positive so far. ",
        "Le rapport final sera envoyé après la réunion du comité. ",
        "Die Lieferung verzögert sich um zwei Tage wegen des Wetters. ",
    ];
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(bytes + 256);
    while s.len() < bytes {
        s.push_str(*rng.pick(PROSE));
        match rng.below(4) {
            0 => {
                let e = *rng.pick(&Entity::ALL);
                s.push_str(
                    &rng.pick(templates(e))
                        .replacen("{}", &value(&mut rng, e), 1),
                );
                s.push(' ');
            }
            1 => {
                s.push_str(&negative(&mut rng));
                s.push(' ');
            }
            _ => {}
        }
    }
    s
}

/// Precision, recall and F2 of one entity type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Score {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Score {
    pub fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    /// F-beta with beta 2: recall weighs four times precision.
    pub fn f2(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            5.0 * p * r / (4.0 * p + r)
        }
    }
}

/// Scores the scanner on `samples`: a finding counts when it has the
/// label's type and overlaps its span.
pub fn evaluate(scanner: &Scanner, samples: &[Sample]) -> Vec<(Entity, Score)> {
    let mut scores: Vec<(Entity, Score)> =
        Entity::ALL.iter().map(|&e| (e, Score::default())).collect();
    let idx = |e: Entity| Entity::ALL.iter().position(|&x| x == e).unwrap_or(0);
    for s in samples {
        let found = match s.region {
            Some(r) => scanner.scan_in(&s.text, &[r]),
            None => scanner.scan(&s.text),
        };
        let mut matched = vec![false; s.labels.len()];
        for f in &found {
            let hit = s
                .labels
                .iter()
                .position(|&(e, a, b)| e == f.entity && f.start < b && a < f.end);
            match hit {
                Some(i) if !matched[i] => {
                    matched[i] = true;
                    scores[idx(f.entity)].1.tp += 1;
                }
                Some(_) => {}
                None => scores[idx(f.entity)].1.fp += 1,
            }
        }
        for (i, &(e, _, _)) in s.labels.iter().enumerate() {
            if !matched[i] {
                scores[idx(e)].1.fn_ += 1;
            }
        }
    }
    scores
}

/// The scores as a Markdown table (entity, precision, recall, F2, counts).
pub fn table(scores: &[(Entity, Score)]) -> String {
    let mut out = String::from("| entity | precision | recall | F2 | tp | fp | fn |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (e, s) in scores {
        out.push_str(&format!(
            "| {e} | {:.3} | {:.3} | {:.3} | {} | {} | {} |\n",
            s.precision(),
            s.recall(),
            s.f2(),
            s.tp,
            s.fp,
            s.fn_
        ));
    }
    out
}
