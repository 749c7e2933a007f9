//! `cargo xtask bench-router`: the cost of a routing decision, excluding
//! model calls. Two numbers per prompt mix: `decide` alone (the pure
//! function) and the whole per-request path before any model runs
//! (`Router::signals`: guard scan, complexity cues, token estimate, device
//! state, breaker, speeds; then `decide`). Goal: p99 < 1 ms.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use outpost_router::{decide, Policy, RequestInfo, Router};

/// Prompts of the kinds the router sees: short, personal data, code,
/// reasoning, and a long document (about 12 KB).
fn prompts() -> Vec<String> {
    vec![
        "What is the capital of France?".to_string(),
        "My card is 4111 1111 1111 1111 and my email is jane.doe@example.com; why was I charged twice?".to_string(),
        "Explain step by step why this fails:\n```rust\nfn main() { let v: Vec<u8> = Vec::new(); println!(\"{}\", v[0]); }\n```".to_string(),
        "Compare the trade-offs of three caching strategies for a mobile app, then recommend one.".to_string(),
        "Summarise this report.\n".to_string() + &"The quarterly numbers rose in most regions while costs stayed flat. ".repeat(180),
    ]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn report(name: &str, mut ns: Vec<f64>) {
    ns.sort_by(f64::total_cmp);
    println!(
        "{name:<34} p50 {:>9.2} µs   p99 {:>9.2} µs   max {:>9.2} µs   ({} calls)",
        percentile(&ns, 0.5) / 1000.0,
        percentile(&ns, 0.99) / 1000.0,
        ns[ns.len() - 1] / 1000.0,
        ns.len()
    );
}

pub fn bench_router(args: &[String]) -> Result<()> {
    let rounds: usize = match args {
        [flag, n] if flag == "--rounds" => {
            n.parse().context("--rounds must be a positive integer")?
        }
        [] => 4000,
        _ => anyhow::bail!("usage: cargo xtask bench-router [--rounds N]"),
    };
    let policy = Policy::parse(
        "mode = \"auto\"\n[auto]\nsensitive = \"redact\"\n[cloud]\nurl = \"http://127.0.0.1:9/v1\"\n",
        Path::new("bench-policy.toml"),
    )?;
    // The cloud URL is never contacted: only decisions are measured.
    let router = Router::new(policy, None)?;
    let prompts = prompts();
    let infos: Vec<RequestInfo> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| RequestInfo {
            text: p,
            max_tokens: Some(if i % 2 == 0 { 64 } else { 1024 }),
            local_ctx: 2048,
            latency_budget_ms: (i == 3).then_some("1500"),
            ..RequestInfo::default()
        })
        .collect();
    let mut routes = std::collections::BTreeMap::new();
    for info in &infos {
        let d = decide(&router.signals(info)?);
        *routes
            .entry(format!(
                "{}; reason={}",
                d.target.as_str(),
                d.reason.as_str()
            ))
            .or_insert(0) += 1;
    }
    let mut whole = Vec::with_capacity(rounds * infos.len());
    let mut pure = Vec::with_capacity(rounds * infos.len());
    let mut by_prompt = vec![Vec::with_capacity(rounds); infos.len()];
    for _ in 0..rounds {
        for (i, info) in infos.iter().enumerate() {
            let t = Instant::now();
            let s = router.signals(info)?;
            let d = decide(&s);
            let ns = t.elapsed().as_nanos() as f64;
            std::hint::black_box(d);
            whole.push(ns);
            by_prompt[i].push(ns);
            let t = Instant::now();
            std::hint::black_box(decide(std::hint::black_box(&s)));
            pure.push(t.elapsed().as_nanos() as f64);
        }
    }
    println!(
        "router decision cost, {} prompt kinds × {rounds} rounds, one thread (no model calls)",
        infos.len()
    );
    println!("routes taken: {routes:?}");
    report("decide() alone", pure);
    report("signals + decide (per request)", whole.clone());
    for (i, ns) in by_prompt.into_iter().enumerate() {
        report(
            &format!("  prompt {} ({} bytes)", i + 1, prompts[i].len()),
            ns,
        );
    }
    whole.sort_by(f64::total_cmp);
    let p99_ms = percentile(&whole, 0.99) / 1e6;
    println!(
        "goal p99 < 1 ms: {} ({p99_ms:.3} ms)",
        if p99_ms < 1.0 { "met" } else { "MISSED" }
    );
    Ok(())
}
