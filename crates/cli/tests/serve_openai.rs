//! `outpost serve` through a real socket with the official `openai` Python
//! client (crates/cli/tests/openai_client.py), plus raw-HTTP checks.

mod common;

use std::time::Duration;

use common::server::{greedy_run_answer, http, metric, start_models, Server};
use common::{outpost, run_python_client};

fn start(extra: &[&str]) -> Server {
    start_models(&["smollm2-135m"], extra)
}

#[test]
fn the_official_openai_client_works_unchanged() {
    let expected = greedy_run_answer();
    let server = start(&[]);
    let base_url = format!("http://127.0.0.1:{}/v1", server.port);
    run_python_client(
        "openai_client.py",
        "openai",
        &[
            ("OUTPOST_BASE_URL", &base_url),
            ("EXPECTED_RUN_TEXT", &expected),
        ],
    );
}

#[test]
fn errors_have_openai_shape_and_the_api_key_is_enforced() {
    let server = start(&["--api-key", "s3cret"]);
    let p = server.port;
    assert_eq!(
        http(p, "GET", "/health", "", None).0,
        200,
        "health needs no key"
    );
    let (status, body) = http(p, "GET", "/v1/models", "", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"code\":\"invalid_api_key\""), "{body}");
    let key = Some("s3cret");
    assert_eq!(http(p, "GET", "/v1/models", "", key).0, 200);
    let (status, body) = http(p, "POST", "/v1/chat/completions", "{not json", key);
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json error body");
    assert_eq!(v["error"]["code"], "invalid_json");
    let (status, body) = http(
        p,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"smollm2-135m","messages":"hi"}"#,
        key,
    );
    assert_eq!(status, 400, "{body}");
    let big = format!(
        r#"{{"model":"smollm2-135m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5 << 20)
    );
    let (status, body) = http(p, "POST", "/v1/chat/completions", &big, key);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, body) = http(p, "GET", "/v2/nothing", "", key);
    assert_eq!(status, 404);
    assert!(body.contains("unknown_url"), "{body}");
    // The server still serves after all that.
    let (status, body) = http(
        p,
        "POST",
        "/v1/completions",
        r#"{"model":"smollm2-135m","prompt":"The capital of France is","max_tokens":4,"temperature":0}"#,
        key,
    );
    assert_eq!(status, 200, "{body}");
    // Gauges follow the scheduler's step loop: give it a moment to go idle.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = http(p, "GET", "/metrics", "", key).1;
        if metrics.contains("outpost_active_sequences{model=\"smollm2-135m\"} 0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        metrics
            .contains("outpost_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outpost_generated_tokens_total{model=\"smollm2-135m\"} 4"),
        "{metrics}"
    );
    for line in [
        "outpost_time_to_first_token_seconds_count 1",
        "outpost_inter_token_seconds_count 3",
        "outpost_active_sequences{model=\"smollm2-135m\"} 0",
        "outpost_queued_requests{model=\"smollm2-135m\"} 0",
        "outpost_resident_memory_bytes ",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");
    }
}

#[test]
fn drafting_flags_keep_the_greedy_answer_and_show_in_metrics() {
    let body = r#"{"model":"smollm2-135m","temperature":0,"max_tokens":80,
        "prompt":"Story 3: Once upon a time, a lighthouse keeper found a message in a bottle. It said"}"#;
    let run = |extra: &[&str]| {
        let server = start(extra);
        let (status, reply) = http(server.port, "POST", "/v1/completions", body, None);
        assert_eq!(status, 200, "{reply}");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("json");
        let text = v["choices"][0]["text"].as_str().expect("text").to_string();
        let counter = |name: &str| -> u64 {
            let line = format!("outpost_{name}_total{{model=\"smollm2-135m\"}}");
            metric(server.port, &line).unwrap_or_else(|| panic!("{line:?} missing from /metrics"))
                as u64
        };
        (
            text,
            counter("drafted_tokens"),
            counter("draft_accepted_tokens"),
        )
    };
    let (plain, none, _) = run(&["--draft-max", "0"]);
    assert_eq!(none, 0, "--draft-max 0 turns drafting off");
    let (forced, drafted, accepted) = run(&["--draft-always"]);
    assert!(
        drafted > 0 && accepted > 0,
        "--draft-always: {accepted}/{drafted} guesses confirmed"
    );
    assert_eq!(forced, plain, "drafting must not change greedy text");
    // The default decodes guesses only where they pay; same text either way.
    let (default, _, _) = run(&[]);
    assert_eq!(
        default, plain,
        "default drafting must not change greedy text"
    );

    let o = outpost(&["serve", "smollm2-135m", "--draft-max", "9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--draft-max 9 is more than 8"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn binding_beyond_loopback_needs_an_api_key() {
    let o = outpost(&["serve", "smollm2-135m", "--host", "0.0.0.0", "--port", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--api-key"));
}

#[test]
fn two_models_with_a_chat_template_for_the_one_that_lacks_it() {
    let chat = |model: &str| {
        format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"Hi"}}],"max_tokens":3}}"#
        )
    };
    // Without a template, chat on the base model is a 400 that says why.
    let server = start_models(&["smollm2-135m", "gemma3-270m"], &[]);
    let (status, body) = http(
        server.port,
        "POST",
        "/v1/chat/completions",
        &chat("gemma3-270m"),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("chat_template") && body.contains("--chat-template"),
        "{body}"
    );
    let (status, body) = http(
        server.port,
        "POST",
        "/v1/completions",
        r#"{"model":"gemma3-270m","prompt":"Hello","max_tokens":3}"#,
        None,
    );
    assert_eq!(status, 200, "raw completion still works: {body}");
    drop(server);
    // With `MODEL=NAME` only that model gets it; SmolLM2 keeps its own.
    let server = start_models(
        &["smollm2-135m", "gemma3-270m"],
        &["--chat-template", "gemma3-270m=gemma"],
    );
    for model in ["gemma3-270m", "smollm2-135m"] {
        let (status, body) = http(
            server.port,
            "POST",
            "/v1/chat/completions",
            &chat(model),
            None,
        );
        assert_eq!(status, 200, "{model}: {body}");
    }
    let (_, models) = http(server.port, "GET", "/v1/models", "", None);
    assert!(
        models.contains("gemma3-270m") && models.contains("smollm2-135m"),
        "{models}"
    );
    let o = outpost(&[
        "serve",
        "smollm2-135m",
        "--chat-template",
        "nope=chatml",
        "--port",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not among the served models"));
}
