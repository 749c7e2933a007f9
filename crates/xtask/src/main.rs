//! `cargo xtask bench`: the engine's pp512/tg128 against llama-bench, same
//! GGUF, same threads, in one run, with the ratio of the two.
//!
//! The reference llama-bench comes from scripts/build-reference.sh. Runs
//! alternate (reference, ours, reference, ours, ...) so that drift in the
//! machine's speed hits both sides alike.
//!
//! Then aggregate decode with 1, 4 and 16 concurrent sequences: Outpost's
//! scheduler (`outpost bench --parallel`) against the reference llama-server
//! (continuous batching, one slot per sequence), same prompts, same threads,
//! 128 tokens each with end-of-generation ignored; also Outpost with greedy
//! drafting off, and the bound no scheduler can beat (`outpost bench
//! --bound`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod embed_bench;
mod fleet_bench;
mod index_bench;
mod progress;
mod router_bench;
mod sealed_bench;
mod serve_bench;
mod tools_bench;
mod variants_bench;

use anyhow::{bail, Context, Result};
use serde_json::Value;

const USAGE: &str =
    "usage: cargo xtask bench [--threads N] [--rounds N] [--reps N] [MODEL.gguf ...]
  Compares `outpost bench` with llama-bench (pp512, tg128) on each model
  (default: models/smollm2-135m.gguf and models/gemma3-270m.gguf).
       cargo xtask bench-serve [--threads N]
  Compares `outpost serve` with llama-server on SmolLM2: aggregate tok/s and
  TTFT p50/p99 at 1, 4, 16 streams; json_schema vs unconstrained decode.
       cargo xtask bench-tools [--threads N]
  Tool calling on SmolLM2 beside llama-server --jinja, under its own template
  and under Qwen 2.5's (Hermes calls): the share of valid calls under
  tool_choice \"required\" and the time to the complete call.
       cargo xtask bench-embed [--threads N]
  Embeddings/s on the converted all-MiniLM-L6-v2 at batch 1 and 32 beside
  llama-server --embedding (same GGUF and threads), and their cosine.
       cargo xtask bench-index [--vectors N]
  The on-device vector index at N vectors (default 100000): recall@10 vs
  brute force, query p50/p99, open time, resident memory, file size.
       cargo xtask bench-variants [--threads N]
  Times `outpost variants build` (all default tiers) on both models and
  compares the reference perplexity with llama-perplexity's.
       cargo xtask bench-fleet [--devices N] [--connections N] [--seconds N] [--db postgres://… [--replicas N]]
  Check-ins/s and latency p50/p99 of `outpost fleet serve` over loopback
  from simulated devices (default 10000 devices, 64 connections, 10 s).
       cargo xtask bench-router [--rounds N]
  Routing decision cost without model calls: decide() alone and the whole
  per-request path (guard scan, cues, signals), p50/p99 (goal p99 < 1 ms).
       cargo xtask bench-sealed [--rounds N]
  Sealed vs plain start of both models, in process: load, and load + first
  greedy token, medians over N rounds (default 5) and ratios (goal <= 1.1x).";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        Some("bench-serve") => bench_serve(&args[1..]),
        Some("bench-tools") => bench_tools(&args[1..]),
        Some("bench-index") => index_bench::run(&args[1..]),
        Some("bench-embed") => {
            let (threads, ref_dir, outpost) = prepare(&args[1..])?;
            embed_bench::run(&ref_dir, &outpost, &root(), threads)
        }
        Some("bench-variants") => bench_variants(&args[1..]),
        Some("bench-fleet") => bench_fleet(&args[1..]),
        Some("bench-router") => router_bench::bench_router(&args[1..]),
        Some("bench-sealed") => sealed_bench::run(&args[1..], &root()),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench(args: &[String]) -> Result<()> {
    let mut threads = 2u32;
    let mut rounds = 2u32;
    let mut reps = 5u32;
    let mut models = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u32> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} must be a positive integer"))
        };
        match a.as_str() {
            "--threads" | "-t" => threads = num("--threads")?,
            "--rounds" => rounds = num("--rounds")?,
            "--reps" | "-r" => reps = num("--reps")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            m => models.push(PathBuf::from(m)),
        }
    }
    if models.is_empty() {
        models = vec![
            root().join("models/smollm2-135m.gguf"),
            root().join("models/gemma3-270m.gguf"),
        ];
    }
    for m in &models {
        if !m.is_file() {
            bail!("{} is missing: run scripts/fetch-models.sh", m.display());
        }
    }
    run(Command::new("bash").arg(root().join("scripts/build-reference.sh")))?;
    let ref_dir = String::from_utf8(
        Command::new("bash")
            .arg(root().join("scripts/build-reference.sh"))
            .arg("--print-dir")
            .output()?
            .stdout,
    )?;
    let ref_dir = PathBuf::from(ref_dir.trim());
    let ref_commit = std::fs::read_to_string(ref_dir.join(".complete"))?
        .trim()
        .to_string();
    run(Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "outpost-cli"])
        .current_dir(root()))?;
    let outpost = root().join("target/release/outpost");
    let build = capture(Command::new(&outpost).args(["info", "--build", "--json"]))?;
    let build: Value = serde_json::from_str(&build)?;

    println!(
        "engine:    outpost, llama.cpp {}",
        build["llama_cpp_commit"].as_str().unwrap_or("?")
    );
    println!("reference: llama-bench, llama.cpp {ref_commit}");
    println!("threads {threads}, {rounds} alternating rounds of {reps} repetitions each\n");
    println!("| model | test | llama-bench t/s | outpost t/s | ratio |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let total = models.len() as u64 * u64::from(rounds) * (2 + 3);
    let mut steps = progress::Steps::new(total);
    for model in &models {
        let label = model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut theirs: Vec<(String, Vec<f64>)> = Vec::new();
        let mut ours: Vec<(String, Vec<f64>)> = Vec::new();
        for round in 1..=rounds {
            steps.next(&format!(
                "{label}: llama-bench pp512/tg128, round {round}/{rounds}"
            ));
            let out = capture(
                Command::new(ref_dir.join("llama-bench"))
                    .arg("-m")
                    .arg(model)
                    .args([
                        "-p",
                        "512",
                        "-n",
                        "128",
                        "-t",
                        &threads.to_string(),
                        "-r",
                        &reps.to_string(),
                        "-o",
                        "json",
                    ]),
            )?;
            for row in serde_json::from_str::<Value>(&out)?
                .as_array()
                .context("llama-bench json")?
            {
                let test = if row["n_prompt"].as_u64() > Some(0) {
                    format!("pp{}", row["n_prompt"])
                } else {
                    format!("tg{}", row["n_gen"])
                };
                push(&mut theirs, test, row["avg_ts"].as_f64().context("avg_ts")?);
            }
            steps.next(&format!(
                "{label}: outpost bench pp512/tg128, round {round}/{rounds}"
            ));
            let out = capture(Command::new(&outpost).arg("bench").arg(model).args([
                "-t",
                &threads.to_string(),
                "-r",
                &reps.to_string(),
                "--parallel",
                "0",
                "--json",
            ]))?;
            let v: Value = serde_json::from_str(&out)?;
            for row in v["results"].as_array().context("outpost json")? {
                push(
                    &mut ours,
                    row["test"].as_str().unwrap_or("?").to_string(),
                    row["avg_ts"].as_f64().context("avg_ts")?,
                );
            }
        }
        let name = model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for (test, t) in &theirs {
            let Some((_, o)) = ours.iter().find(|(k, _)| k == test) else {
                continue;
            };
            let (t, o) = (mean(t), mean(o));
            println!("| {name} | {test} | {t:.1} | {o:.1} | {:.3}x |", o / t);
        }
    }
    parallel_table(&models, &ref_dir, &outpost, threads, rounds, &mut steps)
}

const PARALLEL: [u32; 3] = [1, 4, 16];
const N_GEN: u32 = 128;

/// Aggregate decode with 1, 4, 16 concurrent sequences, both sides.
fn parallel_table(
    models: &[PathBuf],
    ref_dir: &Path,
    outpost: &Path,
    threads: u32,
    rounds: u32,
    steps: &mut progress::Steps,
) -> Result<()> {
    println!(
        "\naggregate decode, {N_GEN} tokens per sequence, threads {threads}, mean of {rounds} alternating rounds\n"
    );
    println!("| model | sequences | llama-server t/s | outpost t/s | / llama-server | / best other | outpost, no drafting t/s | / llama-server | bound, no drafting | no drafting / its bound | bound, ideal drafting |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for model in models {
        let name = model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut theirs = [0.0f64; PARALLEL.len()];
        let mut ours = [0.0f64; PARALLEL.len()];
        let mut plain = [0.0f64; PARALLEL.len()];
        let mut bound = [0.0f64; PARALLEL.len()];
        let mut ideal = [0.0f64; PARALLEL.len()];
        let list = PARALLEL.map(|n| n.to_string()).join(",");
        for round in 1..=rounds {
            {
                steps.next(&format!(
                    "{name}: llama-server at {list} sequences, round {round}/{rounds}"
                ));
                let server = RefServer::start(&ref_dir.join("llama-server"), model, threads)?;
                for (i, n) in PARALLEL.iter().enumerate() {
                    theirs[i] += server.aggregate(*n)? / f64::from(rounds);
                }
            }
            // Ours as served by default (drafting where it pays), with the
            // bound any scheduler could reach; then with drafting off.
            for (draft_max, into) in [("8", &mut ours), ("0", &mut plain)] {
                steps.next(&format!(
                    "{name}: outpost bench at {list} sequences, draft-max {draft_max}, round {round}/{rounds}"
                ));
                let mut cmd = Command::new(outpost);
                cmd.arg("bench");
                if draft_max == "8" {
                    cmd.arg("--bound");
                }
                let out = capture(cmd.arg(model).args([
                    "-t",
                    &threads.to_string(),
                    "-p",
                    "0",
                    "-g",
                    "0",
                    "--parallel",
                    &list,
                    "--draft-max",
                    draft_max,
                    "--json",
                ]))?;
                let v: Value = serde_json::from_str(&out)?;
                let rows = v["parallel"].as_array().context("parallel results")?;
                for (i, _) in PARALLEL.iter().enumerate() {
                    let row = rows.get(i).context("a parallel result per count")?;
                    into[i] +=
                        row["aggregate_ts"].as_f64().context("aggregate_ts")? / f64::from(rounds);
                    if let Some(b) = row["bound"]["no_drafting_ts"].as_f64() {
                        bound[i] += b / f64::from(rounds);
                    }
                    if let Some(b) = row["bound"]["ideal_drafting_ts"].as_f64() {
                        ideal[i] += b / f64::from(rounds);
                    }
                }
            }
        }
        for (i, n) in PARALLEL.iter().enumerate() {
            println!(
                "| {name} | {n} | {:.1} | {:.1} | {:.3}x | {:.3}x | {:.1} | {:.3}x | {:.1} | {:.3}x | {:.1} |",
                theirs[i],
                ours[i],
                ours[i] / theirs[i],
                ours[i] / theirs[i].max(plain[i]),
                plain[i],
                plain[i] / theirs[i],
                bound[i],
                plain[i] / bound[i],
                ideal[i],
            );
        }
    }
    println!(
        "\n`/ best other`: outpost's default against the better of llama-server and outpost without drafting. \
         Bounds (`outpost bench --bound`): the prompts in one batch plus one row with logits per generated \
         token, at llama.cpp's measured rate for steps of one row per sequence (no drafting), or of the \
         fastest width drafting may use (up to 8 rows a step) with every guess confirmed (ideal drafting); \
         no sampling or scheduling. No scheduler beats the bound of its mode on this build and machine."
    );
    Ok(())
}

/// The reference llama-server with one slot per concurrent sequence and
/// 256 tokens of context each.
struct RefServer {
    child: Child,
    base: String,
}

impl RefServer {
    fn start(bin: &Path, model: &Path, threads: u32) -> Result<RefServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let slots = PARALLEL[PARALLEL.len() - 1];
        let child = Command::new(bin)
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-np", &slots.to_string(), "-c", &(slots * 256).to_string()])
            .args(["-t", &threads.to_string(), "--no-webui", "--cont-batching"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting llama-server")?;
        let mut s = RefServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while ureq::get(&format!("{}/health", s.base)).call().is_err() {
            if Instant::now() > deadline || s.child.try_wait()?.is_some() {
                bail!("llama-server did not start");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(s)
    }

    /// Aggregate generated tokens/s of `n` concurrent requests.
    fn aggregate(&self, n: u32) -> Result<f64> {
        let started = Instant::now();
        let workers: Vec<_> = (0..n)
            .map(|i| {
                let url = format!("{}/completion", self.base);
                std::thread::spawn(move || -> Result<u64> {
                    let v: Value = ureq::post(&url)
                        .send_json(serde_json::json!({
                            "prompt": outpost_engine::parallel_bench_prompt(i),
                            "n_predict": N_GEN, "temperature": 0.0, "ignore_eos": true,
                            "cache_prompt": false,
                        }))?
                        .into_json()?;
                    v["tokens_predicted"].as_u64().context("tokens_predicted")
                })
            })
            .collect();
        let mut total = 0;
        for w in workers {
            total += w
                .join()
                .map_err(|_| anyhow::anyhow!("request thread panicked"))??;
        }
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }
}

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push(v: &mut Vec<(String, Vec<f64>)>, k: String, x: f64) {
    match v.iter_mut().find(|(key, _)| *key == k) {
        Some((_, xs)) => xs.push(x),
        None => v.push((k, vec![x])),
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `--threads N` (default 2), the reference tools' folder (built once)
/// and a release build of `outpost`.
fn prepare(args: &[String]) -> Result<(u32, PathBuf, PathBuf)> {
    let threads = match args {
        [] => 2,
        [flag, n] if flag == "--threads" || flag == "-t" => {
            n.parse().context("--threads must be a positive integer")?
        }
        _ => bail!("{USAGE}"),
    };
    for m in ["models/smollm2-135m.gguf", "models/gemma3-270m.gguf"] {
        if !root().join(m).is_file() {
            bail!("{m} is missing: run scripts/fetch-models.sh");
        }
    }
    run(Command::new("bash").arg(root().join("scripts/build-reference.sh")))?;
    let out = Command::new("bash")
        .arg(root().join("scripts/build-reference.sh"))
        .arg("--print-dir")
        .output()?;
    let ref_dir = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    run(Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "outpost-cli"])
        .current_dir(root()))?;
    Ok((threads, ref_dir, root().join("target/release/outpost")))
}

fn bench_serve(args: &[String]) -> Result<()> {
    let (threads, ref_dir, outpost) = prepare(args)?;
    serve_bench::run(
        &ref_dir,
        &outpost,
        &root().join("models/smollm2-135m.gguf"),
        threads,
    )
}

fn bench_tools(args: &[String]) -> Result<()> {
    let (threads, ref_dir, outpost) = prepare(args)?;
    let out = Command::new("bash")
        .arg(root().join("scripts/build-reference.sh"))
        .arg("--print-templates")
        .output()?;
    let templates = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    tools_bench::run(
        &ref_dir,
        &templates,
        &outpost,
        &root().join("models/smollm2-135m.gguf"),
        threads,
    )
}

fn bench_fleet(args: &[String]) -> Result<()> {
    run(Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "outpost-cli"])
        .current_dir(root()))?;
    fleet_bench::run(&root().join("target/release/outpost"), args)
}

fn bench_variants(args: &[String]) -> Result<()> {
    let (threads, ref_dir, outpost) = prepare(args)?;
    variants_bench::run(&ref_dir, &outpost, &root(), threads)
}
