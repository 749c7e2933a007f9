//! `cargo xtask bench-variants`: the variant pipeline's two measurable
//! promises. (1) The reference perplexity equals llama-perplexity's on the
//! same text, window and chunk count (same scored tokens, PPL ratio).
//! (2) How long `outpost variants build` takes for all default tiers of a
//! model on this host (goal for SmolLM2: under 3 minutes on 2 cores).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// llama-perplexity's final PPL and scored-token count from its log.
fn llama_perplexity(
    bin: &Path,
    model: &Path,
    text: &Path,
    n_ctx: u32,
    chunks: u32,
    threads: u32,
) -> Result<(f64, u64)> {
    let out = Command::new(bin)
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(text)
        .args([
            "-c",
            &n_ctx.to_string(),
            "-b",
            &n_ctx.to_string(),
            "--chunks",
            &chunks.to_string(),
            "-t",
            &threads.to_string(),
        ])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("llama-perplexity failed:\n{log}");
    }
    let ppl: f64 = log
        .lines()
        .find_map(|l| l.split("Final estimate: PPL = ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no 'Final estimate' in llama-perplexity's log:\n{log}"))?;
    let chunks_done: u64 = log
        .lines()
        .find_map(|l| l.split("calculating perplexity over ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no chunk count in llama-perplexity's log")?;
    // llama-perplexity scores n_ctx - n_ctx/2 - 1 tokens per chunk.
    let per_chunk = u64::from(n_ctx - n_ctx / 2 - 1);
    Ok((ppl, chunks_done * per_chunk))
}

pub fn run(ref_dir: &Path, outpost: &Path, root: &Path, threads: u32) -> Result<()> {
    let text = root.join("models/eval/lee-background.txt");
    if !text.is_file() {
        bail!("{} is missing: run scripts/fetch-models.sh", text.display());
    }
    let (n_ctx, chunks) = (512u32, 4u32);
    println!(
        "text: {} (n_ctx {n_ctx}, {chunks} chunks, {threads} threads)\n",
        text.display()
    );
    println!("| model | tiers | distinct | build s | outpost PPL | llama-perplexity PPL | PPL ratio | scored (ours / theirs) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, file) in [
        ("smollm2-135m", "smollm2-135m.gguf"),
        ("gemma3-270m", "gemma3-270m.gguf"),
    ] {
        let model = root.join("models").join(file);
        let out = std::env::temp_dir().join(format!("outpost-bench-variants-{name}"));
        let _ = std::fs::remove_dir_all(&out);
        let started = Instant::now();
        let status = Command::new(outpost)
            .args(["variants", "build", name, "--out"])
            .arg(&out)
            .args(["--ctx", &n_ctx.to_string(), "--chunks", &chunks.to_string()])
            .args(["-t", &threads.to_string()])
            .current_dir(root)
            .status()?;
        if !status.success() {
            bail!("outpost variants build {name} failed");
        }
        let secs = started.elapsed().as_secs_f64();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(out.join("variants.json"))?)?;
        let ours = v["eval"]["reference_ppl"].as_f64().unwrap_or(f64::NAN);
        let scored = v["eval"]["scored_tokens"].as_u64().unwrap_or(0);
        let distinct = v["tiers"].as_array().map_or(0, Vec::len);
        let merged = v["merged"].as_array().map_or(0, Vec::len);
        let (theirs, their_scored) = llama_perplexity(
            &ref_dir.join("llama-perplexity"),
            &model,
            &text,
            n_ctx,
            chunks,
            threads,
        )?;
        println!(
            "| {name} | {} | {distinct} | {secs:.0} | {ours:.4} | {theirs:.4} | {:.4} | {scored} / {their_scored} |",
            distinct + merged,
            ours / theirs
        );
    }
    Ok(())
}
