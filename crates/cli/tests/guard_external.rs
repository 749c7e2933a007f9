//! The guard measured on data its code did not make: the four corpora of
//! `scripts/pii-corpora.py` (presidio-evaluator's templates filled by Faker
//! in 12 locales, libphonenumber's example numbers for every region and
//! type, payment processors' published test cards, Faker's national IDs
//! that python-stdnum validates), scored by `outpost guard bench --corpus`.
//! Every structured type with enough labels must reach precision and
//! recall 0.95. Needs python3 with faker, phonenumbers and python-stdnum
//! (scripts/test.sh installs them) and models/eval/presidio-templates.txt
//! (scripts/fetch-models.sh).

use std::path::Path;
use std::process::Command;

/// Types whose findings rest on a checksum, a number plan or a strict
/// shape. DATE_OF_BIRTH is a context judgement, not held to this.
const STRUCTURED: &[&str] = &[
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "UK_NHS",
    "ES_NIF",
    "ES_NIE",
    "IT_FISCAL_CODE",
    "FR_NIR",
    "DE_TAX_ID",
    "IN_AADHAAR",
    "PL_PESEL",
    "BR_CPF",
];

#[test]
fn structured_types_reach_095_on_external_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("outpost-pii-corpora-{}", std::process::id()));
    let made = Command::new("python3")
        .arg(root.join("scripts/pii-corpora.py"))
        .arg(&dir)
        .output()
        .expect("python3 must be installed");
    assert!(
        made.status.success(),
        "scripts/pii-corpora.py failed (run scripts/fetch-models.sh, and pip install faker==40.54.0 phonenumbers==9.0.43 python-stdnum==2.2): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&made.stdout));
    let files = [
        "presidio-faker.jsonl",
        "libphonenumber-examples.jsonl",
        "card-test-numbers.jsonl",
        "national-ids.jsonl",
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outpost"));
    cmd.args(["guard", "bench", "--json", "--region", "US"]);
    for f in files {
        cmd.arg("--corpus").arg(dir.join(f));
    }
    let o = cmd.output().expect("run outpost");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bench --json prints JSON");
    let mut checked = 0;
    for f in files {
        let types = &v[dir.join(f).to_str().expect("utf-8")]["types"];
        let types = types
            .as_object()
            .unwrap_or_else(|| panic!("{f}: no scores"));
        for (name, s) in types {
            let (tp, fp, fn_) = (
                s["tp"].as_u64().unwrap_or(0),
                s["fp"].as_u64().unwrap_or(0),
                s["fn"].as_u64().unwrap_or(0),
            );
            eprintln!("{f} {name}: tp {tp} fp {fp} fn {fn_}");
            if !STRUCTURED.contains(&name.as_str()) || tp + fn_ < 20 {
                continue;
            }
            let p = s["precision"].as_f64().unwrap_or(0.0);
            let r = s["recall"].as_f64().unwrap_or(0.0);
            assert!(
                p >= 0.95 && r >= 0.95,
                "{f} {name}: precision {p:.3}, recall {r:.3} (tp {tp} fp {fp} fn {fn_})"
            );
            checked += 1;
        }
    }
    // Every file contributed, and the corpora hold the types they should.
    assert!(
        checked >= 15,
        "only {checked} (file, type) pairs had 20 labels"
    );
    assert!(
        v[dir.join("presidio-faker.jsonl").to_str().expect("utf-8")]["texts"].as_u64() > Some(4000)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
