//! The guard on its generated labelled corpus, and its properties.

use outpost_guard::corpus::{evaluate, generate, mixed_text, table};
use outpost_guard::{apply, redact, Action, Entity, Restorer, Scanner, Vault};
use proptest::prelude::*;

/// Types whose matches are backed by a checksum or a strict structure: the
/// guard must find at least 95 % of them.
const STRUCTURED: &[Entity] = &[
    Entity::EmailAddress,
    Entity::CreditCard,
    Entity::IbanCode,
    Entity::UsSsn,
    Entity::IpAddress,
    Entity::MacAddress,
    Entity::Url,
    Entity::AwsAccessKey,
    Entity::GithubToken,
    Entity::SlackToken,
    Entity::Jwt,
    Entity::PrivateKey,
];

#[test]
fn precision_recall_and_f2_on_the_labelled_corpus() {
    let scanner = Scanner::new();
    let samples = generate(200, 7);
    let scores = evaluate(&scanner, &samples);
    eprint!("{}", table(&scores));
    for (e, s) in &scores {
        if STRUCTURED.contains(e) {
            assert!(s.recall() >= 0.95, "{e}: recall {:.3} < 0.95", s.recall());
        }
        assert!(s.recall() >= 0.85, "{e}: recall {:.3} < 0.85", s.recall());
        assert!(
            s.precision() >= 0.85,
            "{e}: precision {:.3} < 0.85",
            s.precision()
        );
    }
}

#[test]
fn hard_negatives_are_not_reported() {
    let scanner = Scanner::new();
    for text in [
        "Request id 550e8400-e29b-41d4-a716-446655440000 failed",
        "Upgrade to version v2.14.3 before 2024-03-05T10:22:31Z.",
        "Order #1002345 shipped.",
        "Card 4111 1111 1111 1112 was declined.",
        "IBAN GB83 WEST 1234 5698 7654 32 is not valid.",
        "The book's ISBN is 978-3-16-148410-0.",
        "Meeting at 10:30 in room 4.",
    ] {
        let found = scanner.scan(text);
        assert!(found.is_empty(), "{text:?}: {found:?}");
    }
}

#[test]
fn findings_use_character_offsets_and_presidio_names() {
    let scanner = Scanner::new();
    let text = "Grüße! Écrivez à jane@example.com ou appelez +33 6 12 34 56 78.";
    let found = scanner.scan(text);
    let names: Vec<&str> = found.iter().map(|f| f.entity.name()).collect();
    assert_eq!(names, vec!["EMAIL_ADDRESS", "PHONE_NUMBER"]);
    let chars: Vec<char> = text.chars().collect();
    let email: String = chars[found[0].start..found[0].end].iter().collect();
    assert_eq!(email, "jane@example.com");
    assert_eq!(found[0].value, email);
}

#[test]
fn checksums_decide_and_context_raises() {
    let scanner = Scanner::new();
    // A bare 9-digit number is only an SSN with context.
    assert!(scanner.scan("ticket 123456788 closed").is_empty());
    let found = scanner.scan("my SSN is 123456788");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].entity, Entity::UsSsn);
    // A valid card is certain.
    let found = scanner.scan("pay with 4111 1111 1111 1111");
    assert_eq!(found[0].score, 1.0);
    // A random-looking token is a secret only next to a context word.
    assert!(scanner
        .scan("build wJalrXUtnFEMI7K7MDENGbPxRfiCY1234 done")
        .is_empty());
    assert_eq!(
        scanner.scan("api_key=wJalrXUtnFEMI7K7MDENGbPxRfiCY1234")[0].entity,
        Entity::Secret
    );
}

#[test]
fn every_action() {
    let scanner = Scanner::new();
    let text = "Card 4111 1111 1111 1111, mail jane@example.com, jane@example.com again.";
    let mut vault = Vault::new();
    let r = redact(&scanner, text, &Action::Redact, &mut vault)
        .expect("redact")
        .into_inner();
    assert_eq!(
        r,
        "Card <CREDIT_CARD>, mail <EMAIL_ADDRESS>, <EMAIL_ADDRESS> again."
    );
    let m = redact(&scanner, text, &Action::Mask, &mut vault)
        .expect("mask")
        .into_inner();
    assert!(
        m.starts_with("Card **** **** **** 1111, mail ****@*******.***"),
        "{m}"
    );
    let key = Action::Hash {
        key: b"k1".to_vec(),
    };
    let h1 = redact(&scanner, text, &key, &mut vault)
        .expect("hash")
        .into_inner();
    let h2 = redact(
        &scanner,
        text,
        &Action::Hash {
            key: b"k2".to_vec(),
        },
        &mut vault,
    )
    .expect("hash")
    .into_inner();
    assert_ne!(h1, h2, "the hash depends on the key");
    let parts: Vec<&str> = h1.split("<EMAIL_ADDRESS:").collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1][..12], parts[2][..12], "equal values hash equally");
    let p = redact(&scanner, text, &Action::Placeholder, &mut vault)
        .expect("placeholder")
        .into_inner();
    assert_eq!(
        p,
        "Card <CREDIT_CARD_1>, mail <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_1> again."
    );
    let err = redact(&scanner, text, &Action::Block, &mut vault)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CREDIT_CARD") && err.contains("EMAIL_ADDRESS"),
        "{err}"
    );
    assert!(redact(&scanner, "nothing here", &Action::Block, &mut vault).is_ok());
}

#[test]
fn redacting_mixed_text_leaves_nothing_to_find() {
    let scanner = Scanner::new();
    let text = mixed_text(200_000, 3);
    for action in [
        Action::Redact,
        Action::Mask,
        Action::Hash { key: b"k".to_vec() },
        Action::Placeholder,
    ] {
        let mut vault = Vault::new();
        let out = redact(&scanner, &text, &action, &mut vault)
            .expect("redact")
            .into_inner();
        let again = scanner.scan(&out);
        assert!(
            again.is_empty(),
            "{action:?} left {:?}",
            &again[..again.len().min(3)]
        );
    }
}

fn restore_in_pieces(vault: &Vault, answer: &[u8], cuts: &[usize]) -> String {
    let mut r = Restorer::new(vault);
    let mut out = String::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (answer.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts {
        out.push_str(&r.push(&answer[at..c.max(at)]));
        at = c.max(at);
    }
    out.push_str(&r.push(&answer[at..]));
    out + &r.finish()
}

fn entity_value() -> impl Strategy<Value = String> {
    (0usize..Entity::ALL.len(), any::<u64>()).prop_map(|(i, seed)| {
        outpost_guard::corpus::value(&mut outpost_guard::corpus::Rng::new(seed), Entity::ALL[i])
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any text with personal data in it: placeholders out, the answer
    /// echoing them comes back split at arbitrary bytes, and restoring gives
    /// the original text.
    #[test]
    fn placeholders_round_trip_across_any_split(
        parts in proptest::collection::vec(("[ -~é€😀\n]{0,20}", entity_value()), 1..5),
        tail in "[ -~é€😀]{0,20}",
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let scanner = Scanner::new();
        let text: String = parts.iter().map(|(a, b)| format!("{a} {b} ")).collect::<String>() + &tail;
        let mut vault = Vault::new();
        let found = scanner.scan(&text);
        let safe = apply(&text, &found, &Action::Placeholder, &mut vault).expect("placeholder").into_inner();
        let restored = restore_in_pieces(&vault, safe.as_bytes(), &cuts);
        prop_assert_eq!(restored, text);
    }

    /// Text with no placeholders passes through the restorer unchanged, at
    /// any split (including inside UTF-8 characters).
    #[test]
    fn restorer_is_transparent_for_other_text(text in "[ -~é€😀<>_A-Z0-9]{0,80}", cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let vault = Vault::new();
        prop_assert_eq!(restore_in_pieces(&vault, text.as_bytes(), &cuts), text);
    }

    /// Never panics on any input, and after redaction nothing is left.
    #[test]
    fn scan_never_panics_and_redaction_is_complete(text in "\\PC{0,200}", value in entity_value()) {
        let scanner = Scanner::new();
        let text = format!("{text} {value} {text}");
        let mut vault = Vault::new();
        let out = redact(&scanner, &text, &Action::Redact, &mut vault).expect("redact").into_inner();
        prop_assert!(scanner.scan(&out).is_empty(), "left in {:?}", out);
    }
}

/// Inputs the fuzzer (fuzz/fuzz_targets/guard_scan.rs) found: after
/// redaction, something detectable was left.
#[test]
fn fuzzer_regressions_leave_nothing_after_redaction() {
    let scanner = Scanner::new();
    for text in [
        "\u{4}95::5::955::5::\u{b}",
        "z::7473::43::3",
        "<\u{c}3::E<<<8:: 5::3777:3::E::3::3777:3::E::3777:3777:3::E::3::377::(y:3z::56@066:+77856@06::02::9::2::59::02::59::F::02::9::2::59::F::F::02::92::9::3:7:3::E::3777:2*3777:2*325<<<<<<<<2*3754:2*325<<<<<<<<<<8:: 55'<",
    ] {
        for action in [Action::Redact, Action::Mask, Action::Placeholder] {
            let mut vault = Vault::new();
            let out = redact(&scanner, text, &action, &mut vault)
                .expect("redact")
                .into_inner();
            assert!(scanner.scan(&out).is_empty(), "{action:?}: {out:?}");
        }
    }
}
