//! Personal data written to slip past patterns — other scripts' digits,
//! full-width forms, zero-width characters, look-alike letters, `[at]` —
//! is still found, its offsets point into the text as written, and
//! redaction and restoring work on that text.

use outpost_guard::{apply, redact, Action, Entity, Region, Restorer, Scanner, Vault};
use proptest::prelude::*;

fn one(scanner: &Scanner, text: &str) -> (Entity, String) {
    let found = scanner.scan(text);
    assert_eq!(found.len(), 1, "{text:?}: {found:?}");
    let f = &found[0];
    let chars: String = text.chars().skip(f.start).take(f.end - f.start).collect();
    assert_eq!(chars, f.value, "character offsets and value agree");
    assert_eq!(
        &text[f.bytes.clone()],
        f.value,
        "byte offsets and value agree"
    );
    (f.entity, f.value.clone())
}

#[test]
fn hidden_forms_are_found_where_they_are_written() {
    let s = Scanner::new();
    let cases = [
        (
            "Card ４１１１ １１１１ １１１１ １１１１ ok",
            Entity::CreditCard,
            "４１１１ １１１１ １１１１ １１１１",
        ),
        (
            "card 4111\u{200B}1111\u{200B}1111\u{200B}1111.",
            Entity::CreditCard,
            "4111\u{200B}1111\u{200B}1111\u{200B}1111",
        ),
        (
            "mail jane [at] example (dot) com please",
            Entity::EmailAddress,
            "jane [at] example (dot) com",
        ),
        (
            "mail jane{at}example{dot}com",
            Entity::EmailAddress,
            "jane{at}example{dot}com",
        ),
        (
            "write to jаne@ехаmple.com",
            Entity::EmailAddress,
            "jаne@ехаmple.com",
        ),
        (
            "call +٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨ now",
            Entity::PhoneNumber,
            "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨",
        ),
        (
            "call +४४ २० ७९४६ ०९५८ now",
            Entity::PhoneNumber,
            "+४४ २० ७९४६ ०९५८",
        ),
        (
            "SSN 123\u{2011}45\u{2011}6788",
            Entity::UsSsn,
            "123\u{2011}45\u{2011}6788",
        ),
    ];
    for (text, entity, value) in cases {
        assert_eq!(one(&s, text), (entity, value.to_string()), "{text:?}");
    }
}

#[test]
fn redaction_replaces_the_written_form_and_restores_it() {
    let s = Scanner::new();
    let text =
        "Grüße — mail jane [at] example (dot) com, card ４１１１ １１１１ １１１１ １１１１.";
    let mut vault = Vault::new();
    let safe = redact(&s, text, &Action::Placeholder, &mut vault)
        .expect("placeholder")
        .into_inner();
    assert_eq!(
        safe,
        "Grüße — mail <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>."
    );
    let mut r = Restorer::new(&vault);
    let back = r.push(safe.as_bytes()) + &r.finish();
    assert_eq!(back, text);
}

#[test]
fn national_numbers_are_read_in_the_scanners_regions() {
    let text = "ring 020 7946 0958 tonight";
    assert!(
        Scanner::new().scan(text).is_empty(),
        "eleven digits: no US number"
    );
    let gb = Scanner::with_regions(vec!["GB".parse::<Region>().expect("GB")]);
    assert_eq!(one(&gb, text).0, Entity::PhoneNumber);
    let us = Scanner::new();
    assert_eq!(us.scan_in(text, &["GB".parse().expect("GB")]).len(), 1);
    // Written internationally, it is found whatever the regions.
    assert_eq!(one(&us, "ring +44 20 7946 0958").0, Entity::PhoneNumber);
}

/// Hides a value: digits become full-width or Arabic-Indic, and zero-width
/// spaces go between characters, each by a coin from `coins`.
fn hide(value: &str, coins: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        let coin = coins[i % coins.len()];
        match (c.to_digit(10), coin % 4) {
            (Some(d), 1) => out.push(char::from_u32(0xFF10 + d).expect("full-width digit")),
            (Some(d), 2) => out.push(char::from_u32(0x0660 + d).expect("Arabic-Indic digit")),
            _ => out.push(c),
        }
        if coin % 5 == 0 && i + 1 < value.chars().count() {
            out.push('\u{200B}');
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A card, an e-mail address or an IBAN hidden in any of these ways is
    /// found as that entity, placeholders restore the text exactly, and
    /// nothing detectable is left after redaction.
    #[test]
    fn hidden_values_are_found_and_round_trip(
        kind in 0usize..3,
        seed in any::<u64>(),
        coins in proptest::collection::vec(any::<u8>(), 1..16),
        before in "[a-zé ]{0,12}",
    ) {
        let entity = [Entity::CreditCard, Entity::EmailAddress, Entity::IbanCode][kind];
        let value = outpost_guard::corpus::value(&mut outpost_guard::corpus::Rng::new(seed), entity);
        let text = format!("{before} {} end", hide(&value, &coins));
        let s = Scanner::new();
        let found = s.scan(&text);
        prop_assert!(found.iter().any(|f| f.entity == entity), "{:?} in {:?}: {:?}", entity, text, found);
        let mut vault = Vault::new();
        let safe = apply(&text, &found, &Action::Placeholder, &mut vault).expect("placeholder").into_inner();
        let mut r = Restorer::new(&vault);
        prop_assert_eq!(r.push(safe.as_bytes()) + &r.finish(), text.clone());
        let mut vault = Vault::new();
        let out = redact(&s, &text, &Action::Redact, &mut vault).expect("redact").into_inner();
        prop_assert!(s.scan(&out).is_empty(), "left in {:?}", out);
    }
}
