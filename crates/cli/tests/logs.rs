//! Logs and shell integration as a machine reads them: `RUST_LOG=debug
//! outpost serve --log-format json` writes only JSON lines, a request's
//! lines share its `x-request-id` (the client's, or one the server made and
//! echoed), llama.cpp's own log arrives as events of the target `llama_cpp`,
//! and `outpost completions` / `outpost man` print what the shells and man
//! read.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::server::{header_value, http_headers, start_with};
use common::{outpost, stdout};
use serde_json::Value;

/// The `request_id` of a log line's span, if it was logged inside one.
fn request_id(line: &Value) -> Option<&str> {
    line["span"]["request_id"].as_str()
}

#[test]
fn json_logs_parse_line_by_line_and_a_requests_lines_share_its_id() {
    // The only test in this binary: the child inherits RUST_LOG.
    std::env::set_var("RUST_LOG", "debug");
    let log = std::env::temp_dir().join(format!("outpost-json-log-{}.jsonl", std::process::id()));
    let file = std::fs::File::create(&log).expect("log file");
    let mut server = start_with(
        &["smollm2-135m"],
        &["--log-format", "json"],
        Stdio::from(file),
    );
    let body = r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}"#;
    let (status, head, _) = http_headers(
        server.port,
        "POST",
        "/v1/chat/completions",
        body,
        &[("x-request-id", "client-chosen-7")],
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header_value(&head, "x-request-id").as_deref(),
        Some("client-chosen-7")
    );
    // No id sent (and one with a space is replaced): the server makes one.
    let (status, head, _) = http_headers(
        server.port,
        "POST",
        "/api/show",
        r#"{"model":"nope"}"#,
        &[("x-request-id", "has space")],
    );
    assert_eq!(status, 404, "{head}");
    let made = header_value(&head, "x-request-id").expect("a made request id");
    assert!(!made.is_empty() && made != "has space", "{made}");

    let pid = server.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = server.child.try_wait().expect("wait") {
            break s.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));

    let text = std::fs::read_to_string(&log).expect("read log");
    let _ = std::fs::remove_file(&log);
    let lines: Vec<Value> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {l}", i + 1))
        })
        .collect();
    assert!(lines.len() > 20, "only {} lines", lines.len());
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    let of =
        |id: &str| -> Vec<&Value> { lines.iter().filter(|l| request_id(l) == Some(id)).collect() };
    let chat = of("client-chosen-7");
    let messages: Vec<&str> = chat
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(chat.len() >= 3, "the chat request's lines: {messages:?}");
    assert!(
        chat.iter()
            .all(|l| l["span"]["path"] == "/v1/chat/completions"),
        "{chat:?}"
    );
    assert!(
        messages.contains(&"chat completion"),
        "the handler logs inside the span: {messages:?}"
    );
    assert!(
        chat.iter().any(|l| l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("tower_http"))),
        "{messages:?}"
    );
    let show = of(&made);
    assert!(
        show.len() >= 2 && show.iter().all(|l| l["span"]["path"] == "/api/show"),
        "{show:?}"
    );
    assert!(
        show.iter().any(|l| l["fields"]["status"] == 404),
        "the refusal is logged with its status: {show:?}"
    );
    // llama.cpp's own log (model load) arrives as events, not raw stderr.
    assert!(lines
        .iter()
        .any(|l| l["target"] == "llama_cpp" && l["level"] == "DEBUG"));
    // The daemon's own reports are events too.
    for needle in ["listening on http://", "stopped"] {
        assert!(
            lines.iter().any(|l| l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(needle))),
            "no {needle:?} line"
        );
    }
}

#[test]
fn completions_and_man_pages_come_from_the_real_flags() {
    let bash = stdout(&outpost(&["completions", "bash"]));
    assert!(
        bash.contains("complete -F _outpost") && bash.contains("--draft-max"),
        "{}",
        &bash[..bash.len().min(400)]
    );
    let zsh = stdout(&outpost(&["completions", "zsh"]));
    assert!(
        zsh.starts_with("#compdef outpost"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    let fish = stdout(&outpost(&["completions", "fish"]));
    assert!(fish.contains("complete -c outpost") && fish.contains("log-format"));
    let o = outpost(&["completions", "tcsh"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let man = stdout(&outpost(&["man"]));
    assert!(
        man.contains(".TH outpost 1") && man.contains("serve"),
        "{}",
        &man[..man.len().min(300)]
    );
    let dir = std::env::temp_dir().join(format!("outpost-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = outpost(&["man", "--out", dir.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    for page in ["outpost.1", "outpost-serve.1", "outpost-fleet-rollout.1"] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
