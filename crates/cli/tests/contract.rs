//! Contract tests: schemathesis (PyPI) generates requests from the
//! server's own OpenAPI document (`/openapi.json`) and sends them to the
//! server on a real socket; every answer must be no server error (5xx) and
//! must match the schema the document gives for its status.

mod common;

use std::process::Command;

use common::server::{http, start_models};

/// `schemathesis run URL`: (success, its output).
fn schemathesis(url: &str) -> (bool, String) {
    let hooks = common::root().join("crates/cli/tests/contract/hooks.py");
    let o = Command::new("schemathesis")
        .args([
            "run",
            url,
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "30",
            "--request-timeout",
            "60",
            "--generation-deterministic",
        ])
        .env("SCHEMATHESIS_HOOKS", hooks.with_extension("").file_name().expect("name"))
        .env("PYTHONPATH", hooks.parent().expect("dir"))
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis is missing: scripts/test.sh installs it (pip install schemathesis==4.32.5)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// "N generated, N passed" from the summary: (generated, passed).
fn cases(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no test-case summary in:\n{out}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums.get(1).copied().unwrap_or(0))
}

#[test]
fn the_servers_answers_match_its_openapi_document_and_none_is_a_5xx() {
    let server = start_models(&["smollm2-135m"], &[]);
    let (status, doc) = http(server.port, "GET", "/openapi.json", "", None);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&doc).expect("json");
    assert_eq!(v["openapi"], "3.1.0");
    let paths = v["paths"].as_object().expect("paths");
    for p in [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/api/chat",
        "/api/generate",
        "/api/show",
        "/health",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} is not in the document");
    }
    let (status, page) = http(server.port, "GET", "/docs", "", None);
    assert_eq!(status, 200);
    assert!(
        page.contains("/v1/chat/completions")
            && page.contains("id=\"schema-ChatCompletionRequest\"")
    );
    assert!(
        !page.contains("<script") && !page.contains("https://"),
        "the docs page works offline"
    );

    let url = format!("http://127.0.0.1:{}/openapi.json", server.port);
    let (ok, out) = schemathesis(&url);
    assert!(ok, "schemathesis found failures:\n{out}");
    let ops = format!("Selected: {n}/{n}", n = paths.len());
    assert!(
        out.contains(&ops),
        "not every operation was tested ({ops}):\n{out}"
    );
    let (generated, passed) = cases(&out);
    assert!(
        generated >= 500 && passed == generated,
        "{generated} generated, {passed} passed:\n{out}"
    );
}
