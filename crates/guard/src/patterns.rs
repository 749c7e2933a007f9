//! The detectors' table: per entity a pattern (scanned all at once, ASCII,
//! in a lazy DFA), a check that turns a match into a score or drops it, and
//! the context words that raise a weak match. Order matters: at one start
//! position the earlier pattern is tried first.

use crate::entity::Entity;
use crate::{ids, validate};

/// What decides a match.
#[derive(Clone, Copy)]
pub(crate) enum Check {
    /// A validator: a base score, or `None` to drop the match.
    Score(fn(&str) -> Option<f32>),
    /// Phone numbers: libphonenumber's rules for the scan's regions; the
    /// match may be shortened.
    Phone,
}

pub(crate) struct Pattern {
    pub entity: Entity,
    pub regex: &'static str,
    pub check: Check,
    pub context: &'static [&'static str],
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
const NINO_CTX: &[&str] = &["national insurance", "nino", "ni number", "insurance"];
const NHS_CTX: &[&str] = &["nhs", "health service", "patient"];
const ES_CTX: &[&str] = &["dni", "nif", "nie", "documento", "identidad", "extranjero"];
const CF_CTX: &[&str] = &["codice fiscale", "fiscal", "c.f."];
const NIR_CTX: &[&str] = &[
    "securite sociale",
    "sécurité sociale",
    "nir",
    "insee",
    "social security",
    "ssn",
];
const DE_TAX_CTX: &[&str] = &["steuer", "tax", "idnr", "identifikationsnummer", "tin"];
const AADHAAR_CTX: &[&str] = &["aadhaar", "aadhar", "uidai", "uid"];
const PESEL_CTX: &[&str] = &["pesel"];
const CPF_CTX: &[&str] = &["cpf", "cadastro"];
/// Words that announce any national identity number, whatever the
/// country ("his social security number is …").
pub(crate) const ID_WORDS: &[&str] = &[
    "social security",
    "ssn",
    "national id",
    "id number",
    "identity number",
    "identification number",
];
const CARD_CTX: &[&str] = &["card", "visa", "mastercard", "amex", "payment", "credit"];

/// the most specific patterns come first and the generic secret last.
pub(crate) const PATTERNS: &[Pattern] = &[
    Pattern {
        entity: Entity::PrivateKey,
        regex: r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        check: Check::Score(|_| Some(1.0)),
        context: &[],
    },
    Pattern {
        entity: Entity::Url,
        regex: r"\b[A-Za-z][A-Za-z0-9+.-]+://[^\s:/@]+:[^\s@/]+@[^\s/?#]+[^\s]*",
        check: Check::Score(|_| Some(0.95)),
        context: &[],
    },
    Pattern {
        entity: Entity::EmailAddress,
        regex: r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        check: Check::Score(validate::email),
        context: &[],
    },
    Pattern {
        entity: Entity::AwsAccessKey,
        regex: r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b",
        check: Check::Score(|_| Some(1.0)),
        context: &[],
    },
    Pattern {
        entity: Entity::GithubToken,
        regex: r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,})",
        check: Check::Score(|_| Some(1.0)),
        context: &[],
    },
    Pattern {
        entity: Entity::SlackToken,
        regex: r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
        check: Check::Score(|_| Some(0.95)),
        context: &[],
    },
    Pattern {
        entity: Entity::Jwt,
        regex: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
        check: Check::Score(|_| Some(0.95)),
        context: &[],
    },
    Pattern {
        entity: Entity::ItFiscalCode,
        regex: r"\b[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]\b",
        check: Check::Score(ids::it_fiscal_code),
        context: CF_CTX,
    },
    Pattern {
        entity: Entity::UkNino,
        regex: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
        check: Check::Score(ids::uk_nino),
        context: NINO_CTX,
    },
    Pattern {
        entity: Entity::EsNie,
        regex: r"\b[XYZ]-?[0-9]{7}-?[A-Z]\b",
        check: Check::Score(ids::es_nie),
        context: ES_CTX,
    },
    Pattern {
        entity: Entity::EsNif,
        regex: r"\b[0-9]{8}-?[A-Z]\b",
        check: Check::Score(ids::es_nif),
        context: ES_CTX,
    },
    Pattern {
        entity: Entity::IbanCode,
        regex: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        check: Check::Score(validate::iban),
        context: &["iban", "account", "bank"],
    },
    Pattern {
        entity: Entity::MacAddress,
        regex: r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b",
        check: Check::Score(|_| Some(0.85)),
        context: &["mac", "device", "interface"],
    },
    Pattern {
        entity: Entity::IpAddress,
        regex: r"\b(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})",
        check: Check::Score(validate::ipv6),
        context: IP_CTX,
    },
    Pattern {
        entity: Entity::IpAddress,
        regex: r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        check: Check::Score(validate::ipv4),
        context: IP_CTX,
    },
    Pattern {
        entity: Entity::UsSsn,
        regex: r"\b[0-9]{3}([- ]?)[0-9]{2}([- ]?)[0-9]{4}\b",
        check: Check::Score(validate::ssn),
        context: SSN_CTX,
    },
    Pattern {
        entity: Entity::CreditCard,
        regex: r"\b[0-9](?:[0-9]|[ .-][0-9]){11,18}\b",
        check: Check::Score(validate::credit_card),
        context: CARD_CTX,
    },
    Pattern {
        entity: Entity::FrNir,
        regex: r"\b[1278] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b",
        check: Check::Score(ids::fr_nir),
        context: NIR_CTX,
    },
    Pattern {
        entity: Entity::BrCpf,
        regex: r"\b[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}\b",
        check: Check::Score(ids::br_cpf),
        context: CPF_CTX,
    },
    Pattern {
        entity: Entity::InAadhaar,
        regex: r"\b[2-9][0-9]{3}([ -]?)[0-9]{4}([ -]?)[0-9]{4}\b",
        check: Check::Score(ids::in_aadhaar),
        context: AADHAAR_CTX,
    },
    Pattern {
        entity: Entity::DeTaxId,
        regex: r"\b[1-9][0-9] ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}\b",
        check: Check::Score(ids::de_tax_id),
        context: DE_TAX_CTX,
    },
    Pattern {
        entity: Entity::PlPesel,
        regex: r"\b[0-9]{11}\b",
        check: Check::Score(ids::pl_pesel),
        context: PESEL_CTX,
    },
    Pattern {
        entity: Entity::UkNhs,
        regex: r"\b[0-9]{3}([ -]?)[0-9]{3}([ -]?)[0-9]{4}\b",
        check: Check::Score(ids::uk_nhs),
        context: NHS_CTX,
    },
    Pattern {
        entity: Entity::DateOfBirth,
        regex: r"\b(?:(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]|[0-3]?[0-9][/.][01]?[0-9][/.](?:19|20)[0-9]{2}|[0-3]?[0-9] (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.? (?:19|20)[0-9]{2}|(?:January|February|March|April|May|June|July|August|September|October|November|December) [0-3]?[0-9],? (?:19|20)[0-9]{2})\b",
        check: Check::Score(validate::date),
        context: DOB_CTX,
    },
    Pattern {
        entity: Entity::PhoneNumber,
        regex: r"(?:\(?\+ ?|\()?\b[0-9](?:(?:[ .\-/]|\)[ .\-/]?|[ .\-/]?\()?[0-9]){5,16}(?: {0,2}(?:x|ext\.?|extension|#) ?[0-9]{1,6})?\b",
        check: Check::Phone,
        context: PHONE_CTX,
    },
    Pattern {
        entity: Entity::Secret,
        regex: r"\b[A-Za-z0-9][A-Za-z0-9+/_=-]{19,}",
        check: Check::Score(validate::secret),
        context: SECRET_CTX,
    },
];
