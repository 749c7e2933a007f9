//! On-device retrieval end to end, on the real MiniLM (converted here) and
//! news stories of the Lee corpus as documents: `outpost index`
//! create/add/search/list/rm, a kill during an add leaving the index whole,
//! `outpost ask` citing its sources, and `outpost serve`'s
//! `outpost.retrieve` extension returning citations whose offsets point
//! into the documents — on `/v1/chat/completions` and Ollama's `/api/chat`,
//! whole and streamed (the streamed words joined equal the whole answer).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::minilm::{convert_into, scratch};
use common::server::{http, start_models, Stream};
use common::{models_dir, outpost, stderr, stdout};

/// The first `n` stories of the Lee corpus, one file each (`story-NN.txt`).
fn stories(dir: &Path, n: usize) -> Vec<(PathBuf, String)> {
    let text =
        std::fs::read_to_string(models_dir().join("eval/lee-background.txt")).expect("Lee corpus");
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).expect("docs");
    text.lines()
        .filter(|l| l.split_whitespace().count() >= 40)
        .take(n)
        .enumerate()
        .map(|(i, l)| {
            let p = docs.join(format!("story-{i:02}.txt"));
            std::fs::write(&p, l).expect("write story");
            (p, l.to_string())
        })
        .collect()
}

fn ix(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["index", "--dir", dir.to_str().expect("utf-8"), "-t", "2"];
    full.extend_from_slice(args);
    outpost(&full)
}

/// The first sentence of a story.
fn first_sentence(s: &str) -> &str {
    s.find(". ").map_or(s, |i| &s[..=i])
}

#[test]
fn index_adds_searches_replaces_removes_and_survives_a_kill() {
    let dir = scratch("retr-cli");
    let model = convert_into(&dir);
    let idx = dir.join("ix");
    let o = ix(
        &idx,
        &[
            "create",
            "news",
            "--model",
            model.to_str().expect("utf-8"),
            "--chunk-tokens",
            "96",
            "--overlap",
            "16",
        ],
    );
    assert!(o.status.success(), "create: {}", stderr(&o));
    let docs = stories(&dir, 12);
    let mut args = vec!["add", "news"];
    let paths: Vec<String> = docs.iter().map(|(p, _)| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let o = ix(&idx, &args);
    assert!(o.status.success(), "add: {}", stderr(&o));
    // Each story's first sentence finds that story first.
    let mut top1 = 0;
    for (i, (_, text)) in docs.iter().enumerate() {
        let o = ix(
            &idx,
            &["search", "news", first_sentence(text), "-k", "3", "--json"],
        );
        assert!(o.status.success(), "search: {}", stderr(&o));
        let hits: Vec<serde_json::Value> = stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(hits.len(), 3);
        let (start, end) = (
            hits[0]["start"].as_u64().expect("start") as usize,
            hits[0]["end"].as_u64().expect("end") as usize,
        );
        let doc = hits[0]["doc"].as_str().expect("doc");
        if doc == format!("story-{i:02}.txt") {
            top1 += 1;
            assert_eq!(
                &text[start..end],
                hits[0]["text"].as_str().expect("text"),
                "offsets point into the document"
            );
        }
    }
    assert!(
        top1 >= 11,
        "only {top1}/12 stories found by their own first sentence"
    );
    // Adding a story again replaces it; removing drops it.
    let list = |idx: &Path| stdout(&ix(idx, &["list", "news"]));
    let before = list(&idx);
    assert!(before.contains("12 documents"), "{before}");
    assert!(ix(&idx, &["add", "news", &paths[0]]).status.success());
    assert_eq!(list(&idx), before, "re-adding a document replaces it");
    assert!(ix(&idx, &["rm", "news", "story-00.txt"]).status.success());
    assert!(list(&idx).contains("11 documents"));
    let o = ix(&idx, &["rm", "news", "story-00.txt"]);
    assert!(stderr(&o).contains("not in the index"), "{}", stderr(&o));
    // A kill in the middle of a large add leaves the index as it was.
    let big = dir.join("all.txt");
    std::fs::copy(models_dir().join("eval/lee-background.txt"), &big).expect("copy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args([
            "index",
            "--dir",
            idx.to_str().expect("utf-8"),
            "-t",
            "2",
            "add",
            "news",
        ])
        .arg(&big)
        .env("OUTPOST_MODELS_DIR", models_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn add");
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().expect("kill");
    let _ = child.wait();
    let after = list(&idx);
    assert!(
        after.contains("11 documents") && !after.contains("all.txt"),
        "after the kill: {after}"
    );
    let o = ix(&idx, &["search", "news", "bushfire", "-k", "1"]);
    assert!(o.status.success(), "the index still opens: {}", stderr(&o));
    // Refusals.
    let o = ix(
        &idx,
        &["create", "news", "--model", model.to_str().expect("utf-8")],
    );
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = ix(&idx, &["search", "absent", "x"]);
    assert!(
        stderr(&o).contains("outpost index create"),
        "{}",
        stderr(&o)
    );
    let o = ix(&idx, &["create", "x", "--model", "smollm2-135m"]);
    assert!(
        stderr(&o).contains("does not serve embeddings"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ask_and_the_servers_retrieve_extension_cite_their_sources() {
    let dir = scratch("retr-ask");
    let model = convert_into(&dir);
    let idx = dir.join("ix");
    assert!(ix(
        &idx,
        &["create", "news", "--model", model.to_str().expect("utf-8")]
    )
    .status
    .success());
    let docs = stories(&dir, 8);
    let mut args = vec!["add", "news"];
    let paths: Vec<String> = docs.iter().map(|(p, _)| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    assert!(ix(&idx, &args).status.success());
    let text_of = |doc: &str| {
        docs.iter()
            .find(|(p, _)| p.file_name().is_some_and(|f| f == doc))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("unknown document {doc}"))
    };
    let check_citations = |cs: &serde_json::Value| {
        let cs = cs.as_array().expect("citations");
        assert_eq!(cs.len(), 3, "{cs:?}");
        assert!(
            cs.iter().any(|c| c["cited"] == true),
            "no source cited: {cs:?}"
        );
        for c in cs {
            let t = text_of(c["doc"].as_str().expect("doc"));
            let (s, e) = (
                c["start"].as_u64().expect("start") as usize,
                c["end"].as_u64().expect("end") as usize,
            );
            assert_eq!(&t[s..e], c["text"].as_str().expect("text"));
        }
    };
    let q = "Why was the Hume Highway closed?";
    let o = outpost(&[
        "ask",
        idx.join("news.sqlite").to_str().expect("utf-8"),
        q,
        "-k",
        "3",
        "--json",
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "ask: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("ask json");
    assert!(v["answer"].as_str().is_some_and(|a| !a.is_empty()), "{v}");
    check_citations(&v["citations"]);
    assert_eq!(
        v["citations"][0]["doc"], "story-00.txt",
        "the bushfire story ranks first: {v}"
    );

    let server = start_models(
        &[model.to_str().expect("utf-8"), "smollm2-135m"],
        &["--index-dir", idx.to_str().expect("utf-8")],
    );
    let body = serde_json::json!({
        "model": "smollm2-135m", "temperature": 0, "max_tokens": 120,
        "messages": [{"role": "user", "content": q}],
        "outpost": {"retrieve": {"index": "news", "k": 3}}
    });
    let (status, answer) = http(
        server.port,
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(
        content.contains('['),
        "the answer carries its citation marks: {content}"
    );
    check_citations(&v["outpost"]["citations"]);

    // Streamed: the same words, as they are decoded from the JSON the
    // answer is written in; the citations ride on the finishing chunk.
    // Compared with the same request answered whole a second time: from
    // then on both find the prompt in the KV cache (a cached prefix gives
    // slightly different floats, and greedy text parts after ~25 tokens).
    let (status, again) = http(
        server.port,
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
        None,
    );
    assert_eq!(status, 200, "{again}");
    let again: serde_json::Value = serde_json::from_str(&again).expect("json");
    let content = again["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    let mut streamed = body.clone();
    streamed["stream"] = serde_json::json!(true);
    let mut s = Stream::open(server.port, "/v1/chat/completions", &streamed.to_string());
    assert_eq!(s.status, 200);
    let (mut text, mut pieces, mut finished) = (String::new(), 0, None);
    while let Some(l) = s.next_line() {
        let d = l.trim_start_matches("data:").trim();
        if d == "[DONE]" {
            break;
        }
        let c: serde_json::Value = serde_json::from_str(d).expect("chunk");
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            assert!(!t.contains("\"sources\""), "no raw JSON in the stream: {t}");
            if !t.is_empty() {
                text.push_str(t);
                pieces += 1;
            }
        }
        if !c["choices"][0]["finish_reason"].is_null() {
            finished = Some(c);
        }
    }
    assert_eq!(text, content, "the streamed and the whole answer agree");
    assert!(pieces > 3, "the answer came in {pieces} pieces");
    let fin = finished.expect("a finishing chunk");
    assert_eq!(fin["outpost"], v["outpost"], "{fin}");

    // Ollama's /api/chat takes the same extension, whole and streamed.
    let mut ollama = serde_json::json!({
        "model": "smollm2-135m", "stream": false,
        "options": {"temperature": 0, "num_predict": 120},
        "messages": [{"role": "user", "content": q}],
        "outpost": {"retrieve": {"index": "news", "k": 3}}
    });
    let (status, answer) = http(server.port, "POST", "/api/chat", &ollama.to_string(), None);
    assert_eq!(status, 200, "{answer}");
    let ov: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let whole = ov["message"]["content"]
        .as_str()
        .expect("content")
        .to_string();
    assert!(whole.contains('['), "{whole}");
    check_citations(&ov["outpost"]["citations"]);
    ollama["stream"] = serde_json::json!(true);
    let mut s = Stream::open(server.port, "/api/chat", &ollama.to_string());
    assert_eq!(s.status, 200);
    let (mut text, mut last) = (String::new(), serde_json::Value::Null);
    while let Some(l) = s.next_line() {
        let c: serde_json::Value = serde_json::from_str(&l).expect("line");
        text.push_str(c["message"]["content"].as_str().unwrap_or(""));
        last = c;
    }
    assert_eq!(
        text, whole,
        "the streamed and the whole Ollama answer agree"
    );
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(last["outpost"], ov["outpost"], "{last}");
    ollama["outpost"]["retrieve"]["index"] = serde_json::json!("absent");
    ollama["stream"] = serde_json::json!(false);
    let (status, answer) = http(server.port, "POST", "/api/chat", &ollama.to_string(), None);
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer.starts_with("{\"error\""),
        "Ollama's error shape: {answer}"
    );
    drop(server);

    // With a router that sends everything to the cloud (cloud_only, and a
    // cloud nobody listens on), a grounded request is still answered here:
    // the index never leaves the device.
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "mode = \"cloud_only\"\n[cloud]\nmodel = \"gpt-x\"\n[device]\nthermal_throttled = false\nbattery_percent = 100\n",
    )
    .expect("policy");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let server = start_models(
        &[model.to_str().expect("utf-8"), "smollm2-135m"],
        &[
            "--index-dir",
            idx.to_str().expect("utf-8"),
            "--route-policy",
            policy.to_str().expect("utf-8"),
            "--cloud-url",
            &format!("http://127.0.0.1:{dead}/v1"),
        ],
    );
    let (status, answer) = http(
        server.port,
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
        None,
    );
    assert_eq!(status, 200, "a grounded request under cloud_only: {answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
    check_citations(&v["outpost"]["citations"]);
    let mut plain = body.clone();
    plain.as_object_mut().expect("object").remove("outpost");
    let (status, text) = http(
        server.port,
        "POST",
        "/v1/chat/completions",
        &plain.to_string(),
        None,
    );
    assert_eq!(
        status, 503,
        "the same question without retrieval goes to the (dead) cloud: {text}"
    );
    for (patch, status, needle) in [
        (
            serde_json::json!({"index": "absent"}),
            404,
            "no index \\\"absent\\\"",
        ),
        (
            serde_json::json!({"index": "news", "k": 0}),
            400,
            "outpost.retrieve.k",
        ),
        (
            serde_json::json!({"index": "../news"}),
            400,
            "outpost.retrieve.index",
        ),
    ] {
        let mut b = body.clone();
        b["outpost"]["retrieve"] = patch;
        let (s, text) = http(
            server.port,
            "POST",
            "/v1/chat/completions",
            &b.to_string(),
            None,
        );
        assert_eq!(s, status, "{text}");
        assert!(text.contains(needle), "{needle} in {text}");
    }
}
