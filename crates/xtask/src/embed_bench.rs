//! `cargo xtask bench-embed`: embeddings on `outpost serve` beside the
//! reference llama-server (`--embedding --pooling mean`), same GGUF (the
//! converted all-MiniLM-L6-v2, f32), threads and batch sizes, in one run:
//! embeddings per second over `/v1/embeddings` with one input per request
//! (sequential requests) and with 32 inputs per request, on 200 sentences
//! of the Lee news corpus; and the cosine between the two servers' vectors.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::serve_bench::{free_port, start_server};

/// 200 sentences, split as `outpost variants build` splits them.
fn sentences(root: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(root.join("models/eval/lee-background.txt"))
        .context("models/eval/lee-background.txt: run scripts/fetch-models.sh")?;
    Ok(outpost_variants::embedding::sentences(&text, 200))
}

fn embed(base: &str, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>> {
    let body = json!({"model": model, "input": inputs, "encoding_format": "float"});
    let v: Value = ureq::post(&format!("{base}/v1/embeddings"))
        .send_json(body)
        .context("embeddings request")?
        .into_json()?;
    let data = v["data"].as_array().context("no data in the answer")?;
    if data.len() != inputs.len() {
        bail!("{} vectors for {} inputs", data.len(), inputs.len());
    }
    Ok(data
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect())
}

/// Embeddings per second over all sentences in requests of `batch` inputs,
/// best of `reps`; and the vectors.
fn measure(
    base: &str,
    model: &str,
    all: &[String],
    batch: usize,
    reps: u32,
) -> Result<(f64, Vec<Vec<f32>>)> {
    embed(base, model, &all[..batch.min(all.len())])?; // warm-up
    let mut best = 0f64;
    let mut vectors = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let mut got = Vec::with_capacity(all.len());
        for chunk in all.chunks(batch) {
            got.extend(embed(base, model, chunk)?);
        }
        best = best.max(all.len() as f64 / t.elapsed().as_secs_f64());
        vectors = got;
    }
    Ok((best, vectors))
}

pub fn run(ref_dir: &Path, outpost: &Path, root: &Path, threads: u32) -> Result<()> {
    let model = root.join("models/minilm-f32.gguf");
    if !model.is_file() {
        let st = Command::new(outpost)
            .arg("convert")
            .arg(root.join("models/all-minilm-l6-v2"))
            .arg("--out")
            .arg(&model)
            .status()?;
        if !st.success() {
            bail!("outpost convert failed (run scripts/fetch-models.sh first)");
        }
    }
    let all = sentences(root)?;
    let name = "minilm-f32";
    let mut steps = crate::progress::Steps::new(2);
    let mut rows = Vec::new();
    for side in ["llama-server", "outpost"] {
        steps.next(&format!(
            "{side}: {} sentences at batch 1 and 32",
            all.len()
        ));
        let port = free_port()?;
        let cmd = if side == "outpost" {
            let mut c = Command::new(outpost);
            c.arg("serve")
                .arg(&model)
                .args(["--port", &port.to_string()]);
            c
        } else {
            // 32 slots of 512 tokens and one 2048-token micro-batch, as
            // Outpost's embedding worker packs them.
            let mut c = Command::new(ref_dir.join("llama-server"));
            c.arg("-m").arg(&model).args([
                "--port",
                &port.to_string(),
                "--embedding",
                "--pooling",
                "mean",
                "-c",
                "16384",
                "-np",
                "32",
                "-b",
                "2048",
                "-ub",
                "2048",
                "--no-webui",
                "--alias",
                name,
            ]);
            c
        };
        let (_guard, base, served) = start_server(cmd, side, port, threads, &model, name)?;
        let (b1, v1) = measure(&base, &served, &all, 1, 2)?;
        let (b32, v32) = measure(&base, &served, &all, 32, 3)?;
        rows.push((side, b1, b32, v1, v32));
    }
    drop(steps);
    println!(
        "all-MiniLM-L6-v2 f32 GGUF, {} Lee-corpus sentences, threads {threads}, /v1/embeddings over loopback\n",
        all.len()
    );
    println!("| server | batch 1, embeddings/s | batch 32, embeddings/s |");
    println!("| --- | ---: | ---: |");
    for (side, b1, b32, _, _) in &rows {
        println!("| {side} | {b1:.1} | {b32:.1} |");
    }
    let (r, o) = (&rows[0], &rows[1]);
    println!(
        "\nratio outpost / llama-server: batch 1 {:.2}x, batch 32 {:.2}x",
        o.1 / r.1,
        o.2 / r.2
    );
    let worst =
        r.3.iter()
            .zip(&o.3)
            .chain(r.4.iter().zip(&o.4))
            .map(|(a, b)| outpost_engine::cosine(a, b))
            .fold(1.0f64, f64::min);
    println!("min cosine between the two servers' vectors: {worst:.6}");
    Ok(())
}
