//! Generated values and sentences for the national identity numbers in the
//! self-generated corpus: random bodies completed with whichever check
//! character the guard's own validator accepts. (The external corpora in
//! `scripts/pii-corpora.py` take theirs from Faker and python-stdnum.)

use crate::entity::Entity;
use crate::ids;
use crate::rng::Rng;

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Appends the first character of `alphabet` that makes `valid` pass.
fn complete(body: String, alphabet: &[u8], valid: fn(&str) -> Option<f32>) -> Option<String> {
    alphabet
        .iter()
        .map(|&c| format!("{body}{}", char::from(c)))
        .find(|s| valid(s).is_some())
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

fn letters(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(UPPER[rng.below(26) as usize]))
        .collect()
}

/// A valid value of a national-ID `entity` (`None` for other entities).
pub(crate) fn value(rng: &mut Rng, entity: Entity) -> Option<String> {
    const D: &[u8] = b"0123456789";
    for _ in 0..1000 {
        let v = match entity {
            Entity::UkNino => {
                let p = letters(rng, 2);
                let s = format!(
                    "{p}{}{}",
                    digits(rng, 6),
                    char::from(b"ABCD"[rng.below(4) as usize])
                );
                ids::uk_nino(&s)
                    .is_some()
                    .then_some(s)
                    .filter(|_| !p.contains(['D', 'F', 'I', 'Q', 'U', 'V']) && !p.ends_with('O'))
            }
            Entity::UkNhs => complete(digits(rng, 9), D, ids::uk_nhs),
            Entity::EsNif => complete(digits(rng, 8), UPPER, ids::es_nif),
            Entity::EsNie => {
                let lead = char::from(b"XYZ"[rng.below(3) as usize]);
                complete(format!("{lead}{}", digits(rng, 7)), UPPER, ids::es_nie)
            }
            Entity::ItFiscalCode => {
                let body = format!(
                    "{}{}{}{:02}{}{}",
                    letters(rng, 6),
                    digits(rng, 2),
                    char::from(b"ABCDEHLMPRST"[rng.below(12) as usize]),
                    1 + rng.below(71),
                    char::from(UPPER[rng.below(26) as usize]),
                    digits(rng, 3)
                );
                complete(body, UPPER, ids::it_fiscal_code)
            }
            Entity::FrNir => {
                let body = format!(
                    "{}{:02}{:02}{:02}{}",
                    1 + rng.below(2),
                    rng.below(100),
                    1 + rng.below(12),
                    1 + rng.below(95),
                    digits(rng, 6)
                );
                let n: u64 = body.parse().ok()?;
                Some(format!("{body}{:02}", 97 - n % 97))
            }
            Entity::DeTaxId => complete(
                format!("{}{}", 1 + rng.below(9), digits(rng, 9)),
                D,
                ids::de_tax_id,
            ),
            Entity::InAadhaar => {
                let body = format!("{}{}", 2 + rng.below(8), digits(rng, 10));
                complete(body, D, ids::in_aadhaar)
                    .map(|v| format!("{} {} {}", &v[..4], &v[4..8], &v[8..]))
            }
            Entity::PlPesel => {
                let body = format!(
                    "{:02}{:02}{:02}{}",
                    rng.below(100),
                    1 + rng.below(12),
                    1 + rng.below(28),
                    digits(rng, 4)
                );
                complete(body, D, ids::pl_pesel)
            }
            Entity::BrCpf => complete(digits(rng, 10), D, ids::br_cpf)
                .map(|v| format!("{}.{}.{}-{}", &v[..3], &v[3..6], &v[6..9], &v[9..])),
            _ => return None,
        };
        if let Some(v) = v {
            return Some(v);
        }
    }
    None
}

/// Sentence templates for a national-ID `entity`; `{}` is the value.
pub(crate) fn templates(entity: Entity) -> Option<&'static [&'static str]> {
    Some(match entity {
        Entity::UkNino => &["My National Insurance number is {}.", "NINO: {}"],
        Entity::UkNhs => &["NHS number {} for the patient.", "Patient NHS no. {}"],
        Entity::EsNif => &["Mi DNI es {}.", "NIF: {}"],
        Entity::EsNie => &["Mi NIE es {}.", "NIE {} (extranjero)"],
        Entity::ItFiscalCode => &["Il mio codice fiscale è {}.", "Codice fiscale: {}"],
        Entity::FrNir => &["Numéro de sécurité sociale : {}", "NIR {}"],
        Entity::DeTaxId => &["Meine Steuer-ID ist {}.", "Steueridentifikationsnummer: {}"],
        Entity::InAadhaar => &["My Aadhaar number is {}.", "Aadhaar: {}"],
        Entity::PlPesel => &["Mój PESEL to {}.", "PESEL: {}"],
        Entity::BrCpf => &["Meu CPF é {}.", "CPF: {}"],
        _ => return None,
    })
}
