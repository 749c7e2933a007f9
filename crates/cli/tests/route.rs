//! The hybrid router end to end: a routed `outpost serve smollm2-135m` and a
//! "cloud" that is a second real `outpost serve gemma3-270m` on loopback
//! (its `--log-requests` file proves what it received). Routes are forced
//! by policy and headers, never by timing.

mod common;

use std::path::PathBuf;

use common::server::{header_value, http, http_headers, start_models, start_second, Server};
use common::{outpost, run_python_client};

/// A card number that passes Luhn but is no well-known test number, so a
/// model cannot produce it unless the router gave it back.
const CARD: &str = "4539 1488 0343 6467";

struct Pair {
    /// Dropped first: the local server runs under the cloud's turn.
    local: Server,
    cloud: Option<Server>,
    log: PathBuf,
    _dir: PathBuf,
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outpost-route-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Device state fixed, so a hot CI machine cannot change a route.
const FIXED_DEVICE: &str = "[device]\nthermal_throttled = false\nbattery_percent = 100\n";

/// The cloud (gemma3-270m, context 8192, logging bodies) and a routed
/// local server with `policy` (+ the cloud's URL and model).
fn pair(name: &str, policy: &str) -> Pair {
    let dir = temp_dir(name);
    let log = dir.join("cloud-requests.jsonl");
    let cloud = start_models(
        &["gemma3-270m"],
        &[
            "--chat-template",
            "gemma3-270m=gemma",
            "-c",
            "8192",
            "--log-requests",
            log.to_str().expect("utf-8 path"),
        ],
    );
    let policy_file = dir.join("policy.toml");
    std::fs::write(
        &policy_file,
        format!("{policy}\n[cloud]\nmodel = \"gemma3-270m\"\n{FIXED_DEVICE}"),
    )
    .expect("write policy");
    let local = start_second(
        &cloud,
        &["smollm2-135m"],
        &[
            "--route-policy",
            policy_file.to_str().expect("utf-8 path"),
            "--cloud-url",
            &format!("http://127.0.0.1:{}/v1", cloud.port),
        ],
    );
    Pair {
        local,
        cloud: Some(cloud),
        log,
        _dir: dir,
    }
}

/// POST with headers; (status, x-outpost-route, JSON body).
fn post(
    port: u16,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> (u16, String, serde_json::Value) {
    let (status, head, text) = http_headers(port, "POST", path, &body.to_string(), headers);
    let route = header_value(&head, "x-outpost-route").unwrap_or_default();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} answered {status} with non-JSON {text:?}: {e}"));
    (status, route, v)
}

/// [`post`] that must answer 200 through `route`; the body.
fn answered(
    port: u16,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
    route: &str,
) -> serde_json::Value {
    let (status, got, v) = post(port, path, body, headers);
    assert_eq!(status, 200, "{v}");
    assert_eq!(got, route, "{v}");
    v
}

/// [`answered`] by `model`; the body.
fn routed(
    port: u16,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
    route: &str,
    model: &str,
) -> serde_json::Value {
    let v = answered(port, path, body, headers, route);
    assert_eq!(v["model"], model, "{v}");
    v
}

fn cloud_log(p: &Pair) -> String {
    std::fs::read_to_string(&p.log).unwrap_or_default()
}

fn chat(content: &str, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": max_tokens,
    })
}

fn metrics(port: u16) -> String {
    http(port, "GET", "/metrics", "", None).1
}

#[test]
fn a_card_number_reaches_the_cloud_only_as_a_placeholder_and_comes_back_in_the_answer() {
    let p = pair(
        "card",
        "mode = \"auto\"\n[auto]\nsensitive = \"redact\"\ncomplexity_threshold = 0.25\n\
         [apps.private]\nmode = \"auto\"\nsensitive = \"local\"\n",
    );
    // "Step by step" makes the prompt complex enough for the cloud; the
    // repeated line makes the (base) cloud model repeat what it was given.
    let prompt = format!("Step by step. Card: {CARD}\nCard: {CARD}\nCard:");
    let body = serde_json::json!({
        "model": "smollm2-135m", "prompt": prompt, "temperature": 0, "max_tokens": 12,
    });
    let v = answered(
        p.local.port,
        "/v1/completions",
        &body,
        &[],
        "cloud; reason=complexity; redacted=2",
    );
    assert_eq!(v["model"], "gemma3-270m", "the cloud answered: {v}");
    let text = v["choices"][0]["text"].as_str().expect("text");
    assert!(
        text.contains(CARD),
        "the placeholder the cloud repeated is restored: {text:?}"
    );
    assert!(!text.contains("<CREDIT_CARD"), "{text:?}");
    // What the cloud received: the placeholder, never the number.
    let log = cloud_log(&p);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(
        lines[0]["body"]["prompt"],
        "Step by step. Card: <CREDIT_CARD_1>\nCard: <CREDIT_CARD_1>\nCard:"
    );
    assert!(!log.contains("4539") && !log.contains("6467"), "{log}");

    // Streamed through the router: restored too, even when the placeholder
    // arrives split over several tokens.
    let mut stream_body = body.clone();
    stream_body["stream"] = serde_json::Value::Bool(true);
    let (status, head, raw) = http_headers(
        p.local.port,
        "POST",
        "/v1/completions",
        &stream_body.to_string(),
        &[],
    );
    assert_eq!(status, 200, "{raw}");
    assert_eq!(
        header_value(&head, "x-outpost-route").as_deref(),
        Some("cloud; reason=complexity; redacted=2")
    );
    let streamed: String = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(streamed, text, "stream and whole answer agree");
    assert!(raw.contains("data: [DONE]"), "{raw}");

    // An app whose policy keeps personal data local: nothing new reaches the cloud.
    routed(
        p.local.port,
        "/v1/completions",
        &body,
        &[("x-outpost-app", "private")],
        "local; reason=sensitive",
        "smollm2-135m",
    );
    assert_eq!(
        cloud_log(&p).lines().count(),
        2,
        "only the stream was added"
    );
    let m = metrics(p.local.port);
    for line in [
        "outpost_route_decisions_total{route=\"cloud\",reason=\"complexity\"} 2",
        "outpost_route_decisions_total{route=\"local\",reason=\"sensitive\"} 1",
    ] {
        assert!(m.contains(line), "{line} missing from:\n{m}");
    }
    // Headers the router cannot use are 400s that say why.
    let (status, _, v) = post(
        p.local.port,
        "/v1/chat/completions",
        &chat("hi", 4),
        &[("x-outpost-route-mode", "sometimes")],
    );
    assert_eq!(status, 400);
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("sometimes") && msg.contains("prefer_local"),
        "{v}"
    );
    let (status, _, v) = post(
        p.local.port,
        "/v1/chat/completions",
        &chat("hi", 4),
        &[("x-outpost-app", "nope")],
    );
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("private"),
        "{v}"
    );
}

#[test]
fn cloud_down_falls_back_to_local_then_the_breaker_opens_and_cloud_only_is_a_503() {
    let mut p = pair(
        "down",
        "mode = \"prefer_cloud\"\n[breaker]\nfailures = 2\ncooldown_ms = 600000\n",
    );
    // While the cloud is up, prefer_cloud goes there.
    answered(
        p.local.port,
        "/v1/chat/completions",
        &chat("Hi!", 4),
        &[],
        "cloud; reason=prefer_cloud",
    );
    drop(p.cloud.take());
    for _ in 0..2 {
        let v = routed(
            p.local.port,
            "/v1/chat/completions",
            &chat("Hi!", 4),
            &[],
            "local; reason=cloud_failed",
            "smollm2-135m",
        );
        assert!(!v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty());
    }
    // Two failures opened the breaker: the cloud is not even tried.
    answered(
        p.local.port,
        "/v1/chat/completions",
        &chat("Hi!", 4),
        &[],
        "local; reason=cloud_unavailable",
    );
    // cloud_only never answers locally: a clear 503.
    let (status, _, v) = post(
        p.local.port,
        "/v1/chat/completions",
        &chat("Hi!", 4),
        &[("x-outpost-route-mode", "cloud_only")],
    );
    assert_eq!(status, 503, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("could not be reached") && msg.contains("cloud_only"),
        "{msg}"
    );
    let m = metrics(p.local.port);
    for line in [
        "outpost_route_decisions_total{route=\"local\",reason=\"cloud_failed\"} 2",
        "outpost_route_decisions_total{route=\"local\",reason=\"cloud_unavailable\"} 1",
    ] {
        assert!(m.contains(line), "{line} missing from:\n{m}");
    }
}

#[test]
fn a_latency_budget_too_tight_for_the_local_model_goes_to_the_cloud() {
    // Local speed fixed at 5 tokens/s: 16 answer tokens alone take 3.2 s.
    let p = pair(
        "budget",
        "mode = \"auto\"\n[local]\nprefill_tok_s = 5\ndecode_tok_s = 5\n",
    );
    let body = chat("What is the capital of France?", 16);
    answered(
        p.local.port,
        "/v1/chat/completions",
        &body,
        &[],
        "local; reason=simple",
    );
    routed(
        p.local.port,
        "/v1/chat/completions",
        &body,
        &[("x-outpost-latency-budget-ms", "1000")],
        "cloud; reason=latency_budget",
        "gemma3-270m",
    );
    let log = cloud_log(&p);
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains("What is the capital of France?"), "{log}");
    // A generous budget keeps it local.
    let (_, route, _) = post(
        p.local.port,
        "/v1/chat/completions",
        &body,
        &[("x-outpost-latency-budget-ms", "600000")],
    );
    assert_eq!(route, "local; reason=simple");
}

#[test]
fn a_prompt_longer_than_the_local_context_goes_to_the_cloud() {
    let p = pair("fit", "mode = \"prefer_local\"\n");
    // About 3000 tokens: the local server has 2048 per sequence, the cloud 8192.
    let long = format!(
        "{}\nSummarise the list above in one word.",
        "apple pear ".repeat(1500)
    );
    let v = answered(
        p.local.port,
        "/v1/chat/completions",
        &chat(&long, 4),
        &[],
        "cloud; reason=fit",
    );
    assert!(
        v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 2048,
        "{v}"
    );
    // Short prompts stay local under prefer_local.
    answered(
        p.local.port,
        "/v1/chat/completions",
        &chat("Hi", 4),
        &[],
        "local; reason=prefer_local",
    );
    // local_only does not send it anywhere: the local context error says why.
    let (status, route, v) = post(
        p.local.port,
        "/v1/chat/completions",
        &chat(&long, 4),
        &[("x-outpost-route-mode", "local_only")],
    );
    assert_eq!((status, route.as_str()), (400, "local; reason=mode"), "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(cloud_log(&p).lines().count(), 1);
}

#[test]
fn the_official_openai_client_streams_through_the_router() {
    let p = pair(
        "client",
        "mode = \"auto\"\n[auto]\nsensitive = \"redact\"\ncomplexity_threshold = 0.25\n",
    );
    let base_url = format!("http://127.0.0.1:{}/v1", p.local.port);
    run_python_client(
        "route_client.py",
        "openai",
        &[("OUTPOST_BASE_URL", &base_url), ("CARD", CARD)],
    );
    let log = cloud_log(&p);
    assert!(log.lines().count() >= 2, "{log}");
    assert!(
        !log.contains("4539"),
        "the number reached the cloud:\n{log}"
    );
}

#[test]
fn an_invalid_policy_is_refused_with_its_line() {
    let dir = temp_dir("invalid");
    let f = dir.join("policy.toml");
    std::fs::write(&f, "mode = \"auto\"\n\n[auto]\nsensitive = \"sometimes\"\n").expect("write");
    let o = outpost(&["route", "check", f.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("line 4") && err.contains("sometimes"), "{err}");
    let o = outpost(&[
        "serve",
        "smollm2-135m",
        "--route-policy",
        f.to_str().expect("utf-8"),
        "--port",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 4"));
    std::fs::write(&f, "mode = \"cloud_only\"\n").expect("write");
    let o = outpost(&[
        "serve",
        "smollm2-135m",
        "--route-policy",
        f.to_str().expect("utf-8"),
        "--port",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--cloud-url"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cascade_escalates_a_weak_local_answer_and_keeps_a_confident_one() {
    // A threshold above any mean logprob (they are <= 0): every local
    // answer is too weak, so the cloud answers.
    let p = pair(
        "cascade",
        "mode = \"auto\"\n[cascade]\nenabled = true\nmin_mean_logprob = 0.5\n",
    );
    let body = chat("What is the capital of France?", 8);
    routed(
        p.local.port,
        "/v1/chat/completions",
        &body,
        &[],
        "cloud; reason=cascade",
        "gemma3-270m",
    );
    let log = cloud_log(&p);
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        !log.contains("logprobs"),
        "the cloud gets the client's request: {log}"
    );
    let local_tokens = metrics(p.local.port)
        .lines()
        .find_map(|l| {
            l.strip_prefix("outpost_generated_tokens_total{model=\"smollm2-135m\"} ")
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    assert!(local_tokens > 0, "the local model answered first");
    drop(p);
    // A threshold no answer falls below: the local answer stays, without
    // the logprobs the client did not ask for.
    let p = pair(
        "cascade-keep",
        "mode = \"auto\"\n[cascade]\nenabled = true\nmin_mean_logprob = -1000\n",
    );
    let v = answered(
        p.local.port,
        "/v1/chat/completions",
        &body,
        &[],
        "local; reason=simple",
    );
    assert_eq!(v["model"], "smollm2-135m");
    assert!(v["choices"][0]["logprobs"].is_null(), "{v}");
    assert_eq!(cloud_log(&p).lines().count(), 0);
}

/// A tool request goes to the cloud redacted (the cloud is another
/// `outpost serve`, so it answers with calls too), and comes back as valid
/// calls with no placeholder left. Gemma 3 270M does not copy the
/// placeholder into its arguments, so the restoring itself is checked by
/// the router's unit test (`restore.rs`), quotes in restored values
/// included.
#[test]
fn tool_calls_route_like_any_request_and_their_arguments_get_the_values_back() {
    let p = pair("tools", "mode = \"auto\"\n[auto]\nsensitive = \"redact\"\n");
    let body = serde_json::json!({
        "model": "smollm2-135m", "temperature": 0, "max_tokens": 120, "parallel_tool_calls": false,
        "messages": [{"role": "user", "content": format!("Card: {CARD}\nSave this card, as written.")}],
        "tools": [{"type": "function", "function": {"name": "save_card", "description": "Stores a card number",
            "parameters": {"type": "object", "properties": {"card": {"type": "string", "maxLength": 40}},
                "required": ["card"], "additionalProperties": false}}}],
        "tool_choice": {"type": "function", "function": {"name": "save_card"}},
    });
    let v = answered(
        p.local.port,
        "/v1/chat/completions",
        &body,
        &[("x-outpost-route-mode", "cloud_only")],
        "cloud; reason=mode; redacted=1",
    );
    assert_eq!(v["model"], "gemma3-270m", "the cloud answered: {v}");
    let log = cloud_log(&p);
    assert!(
        log.contains("<CREDIT_CARD_1>") && !log.contains("4539"),
        "{log}"
    );
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "save_card", "{v}");
    let args: serde_json::Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments"))
            .expect("arguments are JSON");
    let card = args["card"].as_str().expect("a card string");
    assert!(
        !card.contains("<CREDIT_CARD"),
        "no placeholder is left: {v}"
    );
    eprintln!("the cloud model's argument, restored: {card:?}");
}
