//! `cargo xtask bench-embed`: embeddings on `outpost serve` beside the
//! reference llama-server (`--embedding --pooling mean`), same GGUF (the
//! converted all-MiniLM-L6-v2, f32), threads and batch sizes, in one run:
//! embeddings per second over `/v1/embeddings` with one input per request
//! (sequential requests) and with 32 inputs per request, on 200 sentences
//! of the Lee news corpus; and the cosine between the two servers' vectors.
//! Both servers run at once and are measured round by round in
//! alternation (best round per side, and each round's ratio), because a
//! shared machine's speed drifts by more than the difference measured.

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

/// Embeddings per second over all sentences in requests of `batch`
/// inputs (one pass), and the vectors.
fn measure(base: &str, model: &str, all: &[String], batch: usize) -> Result<(f64, Vec<Vec<f32>>)> {
    let t = Instant::now();
    let mut got = Vec::with_capacity(all.len());
    for chunk in all.chunks(batch) {
        got.extend(embed(base, model, chunk)?);
    }
    Ok((all.len() as f64 / t.elapsed().as_secs_f64(), got))
}

/// Rounds per batch size; each round measures both servers, one after the
/// other, and each side keeps its best round.
const ROUNDS: usize = 4;

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
    let mut steps = crate::progress::Steps::new(3);
    steps.next("starting llama-server and outpost");
    let mut servers = Vec::new();
    for side in ["llama-server", "outpost"] {
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
        let (guard, base, served) = start_server(cmd, side, port, threads, &model, name)?;
        embed(&base, &served, &all[..32])?; // warm-up
        servers.push((side, guard, base, served));
    }
    // Both servers run throughout (an idle one takes no CPU) and are
    // measured in alternation, so that a slow spell of a shared machine
    // hits both sides rather than one.
    let mut rows: Vec<(&str, f64, f64, Vec<Vec<f32>>, Vec<Vec<f32>>)> = servers
        .iter()
        .map(|s| (s.0, 0.0, 0.0, Vec::new(), Vec::new()))
        .collect();
    let mut rounds = Vec::new();
    for batch in [1usize, 32] {
        steps.next(&format!(
            "{} sentences at batch {batch}, {ROUNDS} rounds in alternation",
            all.len()
        ));
        for _ in 0..ROUNDS {
            let mut round = Vec::new();
            for (row, (_, _, base, served)) in rows.iter_mut().zip(&servers) {
                let (rate, vectors) = measure(base, served, &all, batch)?;
                round.push(rate);
                if batch == 1 {
                    row.1 = row.1.max(rate);
                    row.3 = vectors;
                } else {
                    row.2 = row.2.max(rate);
                    row.4 = vectors;
                }
            }
            rounds.push((batch, round[1] / round[0]));
        }
    }
    drop(steps);
    drop(servers);
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
        "\nratio outpost / llama-server (best round each): batch 1 {:.2}x, batch 32 {:.2}x",
        o.1 / r.1,
        o.2 / r.2
    );
    for batch in [1, 32] {
        let per: Vec<String> = rounds
            .iter()
            .filter(|(b, _)| *b == batch)
            .map(|(_, x)| format!("{x:.2}"))
            .collect();
        println!("ratio per round, batch {batch}: {}", per.join(" "));
    }
    let worst =
        r.3.iter()
            .zip(&o.3)
            .chain(r.4.iter().zip(&o.4))
            .map(|(a, b)| outpost_engine::cosine(a, b))
            .fold(1.0f64, f64::min);
    println!("min cosine between the two servers' vectors: {worst:.6}");
    Ok(())
}
