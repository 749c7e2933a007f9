//! Route telemetry from a real device to the fleet's economics report: an
//! `outpost serve --store` device running the release its agent installed
//! (real SmolLM2 q4_0), routing with a policy to a cloud (another `outpost
//! serve`, SmolLM2 from the model cache). Each answered request leaves a
//! route event with its decision signals and what it cost (tokens from the
//! answer's usage, or a stream's chunks; latency); the agent ships them,
//! and `outpost fleet economics` counts the same requests and tokens per
//! route as the answers reported.

mod common;
#[path = "agent_support/fixture.rs"]
mod fixture;

use common::server::{http_headers, start_models, start_second, Stream};
use fixture::*;
use serde_json::{json, Value};

#[test]
fn a_devices_routed_answers_reach_the_economics_report_with_their_tokens() {
    let root = temp("route-economics");
    let fleet = Fleet::start(&root.0.join("fleet"), free_port(), &[]);
    let (q4, t4) = tier("q4_0");
    fleet.publish(&release(&root.0, "1.0.0", &q4, &t4));
    fleet.release_to_stable("1.0.0");
    let store = root.0.join("device");
    let o = run(agent(&fleet, &store, &["--no-canary"], &[]));
    assert!(o.status.success(), "{}", text(&o));

    let cloud = start_models(&[MODEL], &[]);
    let policy = root.0.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "mode = \"auto\"\n[cloud]\nmodel = \"{MODEL}\"\n\
             [device]\nthermal_throttled = false\nbattery_percent = 100\n"
        ),
    )
    .expect("policy");
    let device = start_second(
        &cloud,
        &[],
        &[
            "--store",
            store.to_str().expect("utf8"),
            "--route-policy",
            policy.to_str().expect("utf8"),
            "--cloud-url",
            &format!("http://127.0.0.1:{}/v1", cloud.port),
        ],
    );
    let chat = |content: &str, stream: bool| {
        json!({"model": MODEL, "messages": [{"role": "user", "content": content}],
               "max_tokens": 12, "temperature": 0, "stream": stream})
        .to_string()
    };
    // (prompt, completion) tokens each answer reported, per route.
    let mut want = [(0u64, 0u64, 0u64), (0, 0, 0)];
    for (mode, route) in [("local_only", 0), ("cloud_only", 1), ("auto", 0)] {
        let (status, head, body) = http_headers(
            device.port,
            "POST",
            "/v1/chat/completions",
            &chat("Name a colour.", false),
            &[("x-outpost-route-mode", mode)],
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let h = head.to_ascii_lowercase();
        assert!(
            h.contains(if route == 1 {
                "x-outpost-route: cloud"
            } else {
                "x-outpost-route: local"
            }),
            "{head}"
        );
        let u = &v["usage"];
        want[route].0 += 1;
        want[route].1 += u["prompt_tokens"].as_u64().expect("prompt");
        want[route].2 += u["completion_tokens"].as_u64().expect("completion");
    }
    // A streamed local answer: its tokens are its text chunks.
    let mut s = Stream::open(
        device.port,
        "/v1/chat/completions",
        &chat("Name a fruit.", true),
    );
    let mut chunks = 0;
    while let Some(line) = s.next_line() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data).expect("chunk");
        if v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
        {
            chunks += 1;
        }
    }
    drop(s);
    assert!(chunks > 0);
    // The event is written when the body has gone out; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = run(agent(&fleet, &store, &["--no-canary"], &[]));
    assert!(
        o.status.success() && text(&o).contains("telemetry:"),
        "{}",
        text(&o)
    );

    let prices = root.0.join("prices.toml");
    std::fs::write(
        &prices,
        "[cloud]\ninput_per_1m_tokens = 1\noutput_per_1m_tokens = 2\n",
    )
    .expect("prices");
    let r = fleet.admin(&[
        "economics",
        "--prices",
        prices.to_str().expect("utf8"),
        "--minutes",
        "60",
    ]);
    let c = &r["cohorts"][0];
    assert_eq!(c["model_version"], "1.0.0", "{r}");
    assert_eq!(c["local"]["requests"].as_u64(), Some(want[0].0 + 1), "{r}");
    assert_eq!(c["cloud"]["requests"].as_u64(), Some(want[1].0), "{r}");
    assert_eq!(c["cloud"]["prompt_tokens"].as_u64(), Some(want[1].1), "{r}");
    assert_eq!(
        c["cloud"]["completion_tokens"].as_u64(),
        Some(want[1].2),
        "{r}"
    );
    // Local: the non-streamed answers' usage plus the stream's chunks.
    assert_eq!(
        c["local"]["completion_tokens"].as_u64(),
        Some(want[0].2 + chunks),
        "{r}"
    );
    let spend = (want[1].1 as f64 + 2.0 * want[1].2 as f64) / 1e6;
    assert!(
        (r["cloud_spend"].as_f64().expect("spend") - spend).abs() < 1e-12,
        "{r}"
    );
    for route in ["local", "cloud"] {
        assert!(
            c[route]["latency_ms_mean"]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "{c}"
        );
    }
    // The `auto` request was decided at the complexity rule (simple): it
    // is in a complexity bin, so the what-if can replay it.
    let cohorts = fleet.admin(&["cohorts", "--minutes", "60"]);
    let bins = &cohorts[0]["routes"]["bins"];
    let (in_bins, pred) = bins
        .as_object()
        .expect("bins")
        .values()
        .fold((0, 0), |(n, p), b| {
            let count = |k: &str| b[0][k].as_u64().unwrap_or(0);
            (n + count("requests"), p + count("predicted"))
        });
    assert!(in_bins >= 1, "{bins}");
    assert_eq!(
        pred, in_bins,
        "the cloud's predicted latency is logged: {bins}"
    );
}
