//! `outpost serve`'s Ollama API and operations through a real socket: the
//! official `ollama` Python client (crates/cli/tests/ollama_client.py),
//! keep-alive unloads seen in /api/ps, the memory budget, the bounded
//! queue, client disconnects and graceful shutdown.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::run_python_client;
use common::server::{
    greedy_run_answer, http, http_full, metric, start_models, start_with, wait_until, Stream,
};

const BOTH: &[&str] = &["smollm2-135m", "gemma3-270m"];
const GEMMA_TEMPLATE: &[&str] = &["--chat-template", "gemma3-270m=gemma"];

/// An Ollama generate body that keeps SmolLM2 counting for `n` tokens.
/// A greedy count that goes on for hundreds of tokens. Without Ollama's
/// default repeat penalty (1.1), which on some CPUs' kernels turned the
/// count into code that ended after 47 tokens.
fn counting(n: u32) -> String {
    format!(
        r#"{{"model":"smollm2-135m","prompt":"1, 2, 3, 4, 5, 6,","raw":true,"options":{{"temperature":0,"repeat_penalty":1.0,"num_predict":{n}}}}}"#
    )
}

fn loaded(port: u16) -> Vec<String> {
    let (status, body) = http(port, "GET", "/api/ps", "", None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("ps json");
    v["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_official_ollama_client_works_unchanged() {
    let expected = greedy_run_answer();
    let server = start_models(BOTH, GEMMA_TEMPLATE);
    assert!(
        loaded(server.port).is_empty(),
        "models load on first use, not at start"
    );
    let host = format!("http://127.0.0.1:{}", server.port);
    run_python_client(
        "ollama_client.py",
        "ollama",
        &[("OUTPOST_HOST", &host), ("EXPECTED_RUN_TEXT", &expected)],
    );
    let (status, body) = http(server.port, "GET", "/api/version", "", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"version\""), "{body}");
}

#[test]
fn keep_alive_unloads_and_the_memory_budget_holds() {
    // A budget that holds SmolLM2 (~260 MiB here) and Gemma (~830 MiB), not both.
    let server = start_models(
        BOTH,
        &[
            "--chat-template",
            "gemma3-270m=gemma",
            "--memory-budget",
            "1000MiB",
        ],
    );
    let p = server.port;
    let ask = |model: &str, keep_alive: &str| {
        let body = format!(
            r#"{{"model":"{model}","prompt":"Hi","stream":false,"keep_alive":{keep_alive},"options":{{"num_predict":2}}}}"#
        );
        let (status, body) = http(p, "POST", "/api/generate", &body, None);
        assert_eq!(status, 200, "{body}");
    };
    // keep_alive "1s": loaded, then unloaded by the reaper.
    ask("smollm2-135m", "\"1s\"");
    assert_eq!(loaded(p), ["smollm2-135m"]);
    assert!(
        wait_until(30, || loaded(p).is_empty()),
        "smollm2 still loaded 30 s after a 1 s keep-alive"
    );
    // keep_alive 0: unloaded as soon as the request ends.
    ask("smollm2-135m", "0");
    assert!(wait_until(5, || loaded(p).is_empty()), "{:?}", loaded(p));
    // keep_alive -1 keeps it; loading Gemma beyond the budget evicts the idle
    // SmolLM2 (least recently used) instead of failing.
    ask("smollm2-135m", "-1");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(loaded(p), ["smollm2-135m"]);
    ask("gemma3-270m", "-1");
    assert_eq!(loaded(p), ["gemma3-270m"]);
    assert_eq!(metric(p, "outpost_model_unloads_total"), Some(3.0));
    assert_eq!(metric(p, "outpost_models_loaded"), Some(1.0));
    drop(server);

    // A model larger than the whole budget is refused, saying by how much.
    let server = start_models(
        BOTH,
        &[
            "--chat-template",
            "gemma3-270m=gemma",
            "--memory-budget",
            "500MiB",
        ],
    );
    let (status, body) = http(
        server.port,
        "POST",
        "/api/generate",
        r#"{"model":"gemma3-270m","prompt":"Hi","stream":false}"#,
        None,
    );
    assert_eq!(status, 507, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("ollama error json");
    let msg = v["error"].as_str().expect("error string");
    for part in ["gemma3-270m", "KV cache", "500 MiB", "--memory-budget"] {
        assert!(msg.contains(part), "{part:?} missing from {msg:?}");
    }
    // The OpenAI API says the same in its own shape; SmolLM2 still fits.
    let (status, body) = http(
        server.port,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"gemma3-270m","messages":[{"role":"user","content":"Hi"}]}"#,
        None,
    );
    assert_eq!(status, 507, "{body}");
    assert!(body.contains("\"code\":\"model_too_large\""), "{body}");
    let (status, body) = http(
        server.port,
        "POST",
        "/api/generate",
        r#"{"model":"smollm2-135m","prompt":"Hi","stream":false,"options":{"num_predict":2}}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        metric(server.port, "outpost_memory_refused_total"),
        Some(2.0)
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let server = start_models(&["smollm2-135m"], &["--slots", "1", "--queue", "1"]);
    let p = server.port;
    // One request runs, one waits: the model is full.
    let mut running = Stream::open(p, "/api/generate", &counting(3000));
    assert_eq!(running.status, 200);
    assert!(running.next_line().is_some(), "the first request streams");
    let mut queued = Stream::open(p, "/api/generate", &counting(5));
    assert_eq!(queued.status, 200);
    for (path, body) in [
        ("/api/generate", counting(5)),
        (
            "/v1/completions",
            r#"{"model":"smollm2-135m","prompt":"Hi","max_tokens":2}"#.to_string(),
        ),
    ] {
        let (status, head, body) = http_full(p, "POST", path, &body, None);
        assert_eq!(status, 503, "{path}: {body}");
        let retry: u64 = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("retry-after:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{path}: no Retry-After in\n{head}"));
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert!(body.contains("--queue 1"), "{path}: {body}");
    }
    assert_eq!(metric(p, "outpost_queue_full_total"), Some(2.0));
    // Ending the running request lets the queued one through.
    drop(running);
    let mut last = String::new();
    while let Some(l) = queued.next_line() {
        last = l;
    }
    assert!(last.contains("\"done\":true"), "{last}");
}

#[test]
fn a_client_that_disconnects_cancels_its_generation_and_frees_the_slot() {
    let server = start_models(&["smollm2-135m"], &["--slots", "1"]);
    let p = server.port;
    for (path, body) in [
        ("/api/generate", counting(3000)),
        (
            "/v1/completions",
            r#"{"model":"smollm2-135m","prompt":"1, 2, 3, 4, 5, 6,","max_tokens":3000,"temperature":0,"stream":true}"#
                .to_string(),
        ),
    ] {
        let cancelled_before = metric(p, "outpost_streams_cancelled_total").unwrap_or(0.0);
        let mut s = Stream::open(p, path, &body);
        assert_eq!(s.status, 200, "{path}");
        for _ in 0..10 {
            assert!(s.next_line().is_some(), "{path} streams");
        }
        drop(s);
        assert!(
            wait_until(10, || {
                metric(p, "outpost_streams_cancelled_total") == Some(cancelled_before + 1.0)
                    && metric(p, "outpost_active_sequences{model=\"smollm2-135m\"}") == Some(0.0)
            }),
            "{path}: the disconnect was not counted or the slot stayed busy"
        );
        let generated = metric(p, "outpost_generated_tokens_total{model=\"smollm2-135m\"}")
            .expect("generated tokens");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            metric(p, "outpost_generated_tokens_total{model=\"smollm2-135m\"}"),
            Some(generated),
            "{path}: generation went on after the slot was freed"
        );
    }
    // The only slot serves the next request.
    let (status, body) = http(
        p,
        "POST",
        "/api/generate",
        r#"{"model":"smollm2-135m","prompt":"Hi","stream":false,"options":{"num_predict":3}}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn shutdown_lets_streams_finish_then_cancels_the_rest_and_exits_0() {
    // The short stream has 3 tokens left when SIGTERM arrives and 20 s of
    // grace for them: ample even when CI runs ~100x slower than usual (one
    // CI run took 1.6 s per token). The long one cannot finish in 20 s.
    let mut server = start_with(&["smollm2-135m"], &["--grace", "20"], Stdio::piped());
    let p = server.port;
    let mut short = Stream::open(p, "/api/generate", &counting(4));
    let mut long = Stream::open(p, "/api/generate", &counting(100_000));
    assert!(short.next_line().is_some() && long.next_line().is_some());
    let pid = server.child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    // New connections are refused once the server stops accepting.
    assert!(
        wait_until(5, || http(p, "GET", "/health", "", None).0 == 0),
        "the server still accepts connections after SIGTERM"
    );
    let drain = |s: &mut Stream| {
        let mut last = String::new();
        while let Some(l) = s.next_line() {
            last = l;
        }
        last
    };
    let short_end = drain(&mut short);
    assert!(
        short_end.contains("\"done_reason\":\"length\""),
        "the short stream finishes within the grace period: {short_end}"
    );
    let long_end = drain(&mut long);
    assert!(
        long_end.contains("\"done_reason\":\"cancelled\""),
        "the long stream is cancelled after the grace period, with a final line: {long_end}"
    );
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut e) = server.child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        err.contains("shutting down") && err.contains("cancelled 1 requests"),
        "{err}"
    );
}
