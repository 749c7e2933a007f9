//! Fuzz target: the PII scanner and redaction on arbitrary input never
//! panic, findings are well-formed, a redacted text has nothing left to
//! find, and the placeholder restorer accepts any byte stream.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use outpost_guard::{redact, Action, Restorer, Scanner, Vault};

static SCANNER: OnceLock<Scanner> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let scanner = SCANNER.get_or_init(Scanner::new);
    // The restorer takes raw bytes, split anywhere.
    let vault = Vault::from_entries([("<EMAIL_ADDRESS_1>".to_string(), "a@b.co".to_string())]);
    let mut r = Restorer::new(&vault);
    let mid = data.len() / 2;
    let _ = r.push(&data[..mid]);
    let _ = r.push(&data[mid..]);
    let _ = r.finish();

    let Ok(text) = std::str::from_utf8(data) else { return };
    let found = scanner.scan(text);
    let mut last_end = 0;
    for f in &found {
        assert!(f.bytes.start >= last_end && f.bytes.start < f.bytes.end && f.bytes.end <= text.len());
        assert!(f.start < f.end && f.score >= scanner.threshold && f.score <= 1.0);
        assert_eq!(&text[f.bytes.clone()], f.value);
        last_end = f.bytes.end;
    }
    for action in [Action::Redact, Action::Mask, Action::Placeholder] {
        let mut vault = Vault::new();
        let out = redact(scanner, text, &action, &mut vault).expect("only block refuses").into_inner();
        let left = scanner.scan(&out);
        assert!(left.is_empty(), "{action:?} left {left:?} in {out:?}");
    }
});
