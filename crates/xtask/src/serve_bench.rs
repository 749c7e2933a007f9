//! `cargo xtask bench-serve`: `outpost serve` against the reference
//! llama-server, same model, threads and slots: aggregate generated tok/s
//! and time to first token (p50, p99) with 1, 4 and 16 concurrent streams;
//! then grammar-constrained (json_schema) against unconstrained decode on
//! `outpost serve`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const STREAMS: [u32; 3] = [1, 4, 16];
const N_GEN: u32 = 128;

pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn wait_healthy(base: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while ureq::get(&format!("{base}/health")).call().is_err() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            bail!("server at {base} did not start");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Starts `cmd` (a server on `port`, given `-t threads`) and waits until
/// it answers `/health`: the running process (killed when dropped), its
/// base URL, and the name to ask for: `outpost serve` names a model after
/// its file, llama-server after `--alias` (`alias`).
pub(crate) fn start_server(
    mut cmd: Command,
    side: &str,
    port: u16,
    threads: u32,
    model: &Path,
    alias: &str,
) -> Result<(Proc, String, String)> {
    let base = format!("http://127.0.0.1:{port}");
    let mut child = cmd
        .args(["-t", &threads.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {side}"))?;
    wait_healthy(&base, &mut child)?;
    let served = if side == "outpost" {
        model
            .file_stem()
            .map_or(alias.to_string(), |s| s.to_string_lossy().into_owned())
    } else {
        alias.to_string()
    };
    Ok((Proc(child), base, served))
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One streamed completion: (seconds to first text, tokens, seconds total,
/// seconds from first to last text).
fn stream_one(base: &str, body: &Value) -> Result<(f64, u64, f64, f64)> {
    let t0 = Instant::now();
    let resp = ureq::post(&format!("{base}/v1/chat/completions")).send_json(body.clone())?;
    let mut first = None;
    let mut last = 0.0;
    let mut tokens = 0;
    for line in BufReader::new(resp.into_reader()).lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data)?;
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            tokens = u["completion_tokens"].as_u64().unwrap_or(tokens);
        }
        let has_text = v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty());
        if has_text {
            let t = t0.elapsed().as_secs_f64();
            first.get_or_insert(t);
            last = t;
        }
    }
    let first = first.context("no text streamed")?;
    Ok((first, tokens, t0.elapsed().as_secs_f64(), last - first))
}

fn request(i: u32, model: &str, extra: Value) -> Value {
    let mut v = json!({
        "model": model,
        "messages": [{"role": "user", "content": format!("Tell story number {i} about a lighthouse keeper, in detail.")}],
        "max_tokens": N_GEN, "temperature": 0.0, "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

/// (aggregate tok/s, TTFT p50, TTFT p99) for `n` concurrent streams.
fn load(base: &str, model: &str, n: u32) -> Result<(f64, f64, f64)> {
    let started = Instant::now();
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let (base, body) = (base.to_string(), request(i, model, json!({})));
            std::thread::spawn(move || stream_one(&base, &body))
        })
        .collect();
    let mut ttft = Vec::new();
    let mut tokens = 0;
    for w in workers {
        let (t, n, _, _) = w
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        ttft.push(t);
        tokens += n;
    }
    let secs = started.elapsed().as_secs_f64();
    ttft.sort_by(f64::total_cmp);
    let pct = |p: f64| ttft[((ttft.len() as f64 - 1.0) * p).round() as usize];
    Ok((tokens as f64 / secs, pct(0.5), pct(0.99)))
}

pub fn run(ref_dir: &Path, outpost: &Path, model: &Path, threads: u32) -> Result<()> {
    let slots = STREAMS[STREAMS.len() - 1];
    let name = "smollm2-135m";
    let mut rows = Vec::new();
    // Per side: start + warm-up, each stream count; ours adds json_schema.
    let mut steps = crate::progress::Steps::new(2 * (1 + STREAMS.len() as u64) + 1);
    for side in ["llama-server", "outpost"] {
        steps.next(&format!("{side}: start and warm up"));
        let port = free_port()?;
        let cmd = if side == "outpost" {
            let mut c = Command::new(outpost);
            c.arg("serve").arg(model).args([
                "--port",
                &port.to_string(),
                "--slots",
                &slots.to_string(),
                "-c",
                "512",
            ]);
            c
        } else {
            let mut c = Command::new(ref_dir.join("llama-server"));
            c.arg("-m")
                .arg(model)
                .args(["--port", &port.to_string(), "-np", &slots.to_string()]);
            c.args([
                "-c",
                &(slots * 512).to_string(),
                "--jinja",
                "--no-webui",
                "--alias",
                name,
            ]);
            c
        };
        let (_guard, base, model_name) = start_server(cmd, side, port, threads, model, name)?;
        load(&base, &model_name, 1)?; // warm-up
        for n in STREAMS {
            steps.next(&format!("{side}: {n} concurrent streams"));
            rows.push((side, n, load(&base, &model_name, n)?));
        }
        if side == "outpost" {
            steps.next("outpost: json_schema vs unconstrained decode");
            let schema = json!({"type": "json_schema", "json_schema": {"name": "story", "schema": {
                "type": "object", "properties": {"title": {"type": "string"}, "story": {"type": "string"}},
                "required": ["title", "story"]}}});
            let rate = |extra: Value| -> Result<f64> {
                let (mut tok, mut secs) = (0u64, 0.0);
                for i in 0..4 {
                    let (_, n, _, span) =
                        stream_one(&base, &request(i, &model_name, extra.clone()))?;
                    tok += n.saturating_sub(1);
                    secs += span;
                }
                Ok(tok as f64 / secs)
            };
            let free = rate(json!({}))?;
            let constrained = rate(json!({ "response_format": schema }))?;
            println!(
                "json_schema decode on outpost serve: {constrained:.1} tok/s vs {free:.1} unconstrained ({:.0} %)\n",
                100.0 * constrained / free
            );
        }
    }
    println!("| streams | llama-server tok/s | outpost tok/s | ratio | TTFT p50 llama-server / outpost (ms) | TTFT p99 llama-server / outpost (ms) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in STREAMS {
        let get = |side: &str| rows.iter().find(|r| r.0 == side && r.1 == n).map(|r| r.2);
        let (Some(t), Some(o)) = (get("llama-server"), get("outpost")) else {
            continue;
        };
        println!(
            "| {n} | {:.1} | {:.1} | {:.3}x | {:.0} / {:.0} | {:.0} / {:.0} |",
            t.0,
            o.0,
            o.0 / t.0,
            t.1 * 1e3,
            o.1 * 1e3,
            t.2 * 1e3,
            o.2 * 1e3
        );
    }
    Ok(())
}
