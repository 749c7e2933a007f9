//! `outpost guard` end to end through the binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn guard(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .arg("guard")
        .args(args)
        .env_remove("OUTPOST_GUARD_KEY")
        // The region comes from the locale when --region is not given.
        .env_remove("LC_ALL")
        .env_remove("LC_TELEPHONE")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // A command refused before it reads stdin (a bad flag) closes the pipe
    // early: that write may fail, the answer is still checked below.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("wait")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn scan_plain_text_reports_types_and_character_offsets() {
    let o = guard(
        &["scan"],
        "Grüße: jane@example.com, card 4111 1111 1111 1111",
    );
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
    let f = v["findings"].as_array().expect("findings");
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["type"], "EMAIL_ADDRESS");
    assert_eq!(f[0]["start"], 7, "offsets count characters, not bytes");
    assert_eq!(f[0]["end"], 23);
    assert_eq!(f[1]["type"], "CREDIT_CARD");
    assert_eq!(f[1]["score"], 1.0);
}

#[test]
fn scan_json_lines_gives_one_line_per_input() {
    let o = guard(
        &["scan"],
        "{\"text\":\"ssn 123-45-6788\"}\n{\"text\":\"nothing here\"}\n",
    );
    let lines: Vec<serde_json::Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["findings"][0]["type"], "US_SSN");
    assert_eq!(lines[1]["findings"].as_array().map(Vec::len), Some(0));
}

#[test]
fn redact_actions_and_their_errors() {
    let o = guard(
        &["redact", "--action", "redact"],
        "mail jane@example.com now",
    );
    assert_eq!(out(&o), "mail <EMAIL_ADDRESS> now");
    let o = guard(&["redact", "--action", "hash"], "x");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("OUTPOST_GUARD_KEY"));
    let o = guard(
        &["redact", "--action", "hash", "--key", "k"],
        "mail jane@example.com",
    );
    assert!(out(&o).starts_with("mail <EMAIL_ADDRESS:"), "{}", out(&o));
    let o = guard(&["redact", "--action", "block"], "mail jane@example.com");
    assert_eq!(o.status.code(), Some(3));
    let o = guard(&["redact", "--action", "shred"], "x");
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown --action \"shred\""));
    let o = guard(&["scan", "--threshold", "2"], "x");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threshold 2"));
}

#[test]
fn placeholders_round_trip_through_a_vault_file() {
    let dir = std::env::temp_dir().join(format!("outpost-guard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let vault = dir.join("vault.json");
    let v = vault.to_str().expect("utf-8 path");
    let o = guard(
        &["redact", "--action", "placeholder", "--vault", v],
        "Mail jane@example.com and bob@example.org",
    );
    assert_eq!(out(&o), "Mail <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>");
    let o = guard(
        &["restore", "--vault", v],
        "Wrote to <EMAIL_ADDRESS_2>, cc <EMAIL_ADDRESS_1>.",
    );
    assert_eq!(out(&o), "Wrote to bob@example.org, cc jane@example.com.");
}

#[test]
fn regions_come_from_the_flag_or_the_locale() {
    let text = "ring 020 7946 0958 tonight";
    let count = |o: &Output| {
        let v: serde_json::Value = serde_json::from_str(out(o).trim()).expect("json");
        v["findings"].as_array().expect("findings").len()
    };
    assert_eq!(
        count(&guard(&["scan"], text)),
        0,
        "C locale: US numbers only"
    );
    assert_eq!(count(&guard(&["scan", "--region", "GB"], text)), 1);
    let o = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["guard", "scan"])
        .env("LANG", "en_GB.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_TELEPHONE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("run");
    assert_eq!(count(&o), 1, "en_GB locale reads UK numbers");
    let bad = guard(&["scan", "--region", "US,ZQ"], text);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--region") && err.contains("ZQ"), "{err}");
}

#[test]
fn bench_corpus_names_the_bad_line() {
    let dir = std::env::temp_dir().join(format!("outpost-guard-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("c.jsonl");
    std::fs::write(
        &f,
        "{\"text\": \"mail jane@example.com\", \"spans\": [{\"type\": \"EMAIL_ADDRESS\", \"start\": 5, \"end\": 21}]}\n{\"text\": \"short\", \"spans\": [{\"type\": \"EMAIL_ADDRESS\", \"start\": 2, \"end\": 40}]}\n",
    )
    .expect("write");
    let o = guard(&["bench", "--corpus", f.to_str().expect("utf-8")], "");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 2") && err.contains("2..40"), "{err}");
    std::fs::write(
        &f,
        "{\"text\": \"mail jane@example.com or call 555-108-7442\", \"spans\": [{\"type\": \"EMAIL_ADDRESS\", \"start\": 5, \"end\": 21}, {\"type\": \"PERSON\", \"start\": 0, \"end\": 4}]}\n",
    )
    .expect("write");
    let o = guard(
        &["bench", "--corpus", f.to_str().expect("utf-8"), "--json"],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
    let file = &v[f.to_str().expect("utf-8")];
    assert_eq!(file["types"]["EMAIL_ADDRESS"]["tp"], 1);
    assert_eq!(
        file["types"]["PHONE_NUMBER"]["fp"], 1,
        "an unlabelled phone number is a false positive"
    );
    assert_eq!(file["not_detected_types"]["PERSON"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}
