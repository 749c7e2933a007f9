//! `outpost route eval PROMPTS`: each prompt through the routed server three
//! times (x-outpost-route-mode local_only, cloud_only, auto; greedy), then
//! the cloud share of auto, latency per mode, and agreement with the
//! cloud's answers (exact, and word-overlap F1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Prompt file: one prompt a line, or JSON lines {"prompt", "max_tokens"}.
    pub prompts: PathBuf,
    /// A running routed server (`outpost serve --route-policy ...`). Without
    /// it, a cloud and a routed local server are started on free ports.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The model requests name (the local model).
    #[arg(long, default_value = "smollm2-135m")]
    pub model: String,
    /// Started servers: the cloud's model (served with the gemma chat template).
    #[arg(long, default_value = "gemma3-270m")]
    pub cloud_model: String,
    /// Started servers: the local server's route policy. Default: mode auto
    /// with the built-in thresholds.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Started servers: CPU threads each (two llama.cpp processes sharing
    /// cores spin against each other; 1 + 1 suits a 2-core machine).
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Answer length per request (temperature 0).
    #[arg(long, default_value_t = 48)]
    pub max_tokens: u32,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

struct Prompt {
    text: String,
    max_tokens: Option<u32>,
}

fn read_prompts(path: &Path) -> Result<Vec<Prompt>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the prompt file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(t)
                .with_context(|| format!("{} line {}: not a JSON object", path.display(), i + 1))?;
            let Some(p) = v["prompt"].as_str() else {
                bail!(
                    "{} line {}: a JSON line needs a \"prompt\" string",
                    path.display(),
                    i + 1
                );
            };
            out.push(Prompt {
                text: p.to_string(),
                max_tokens: v["max_tokens"].as_u64().map(|n| n as u32),
            });
        } else {
            out.push(Prompt {
                text: t.to_string(),
                max_tokens: None,
            });
        }
    }
    if out.is_empty() {
        bail!("{} holds no prompts", path.display());
    }
    Ok(out)
}

/// Child servers, killed on drop.
struct Started(Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_healthy(base: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ureq::get(&format!("{base}/health")).call().is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the server for {base} exited with {status} before answering /health");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{base} did not answer /health within 120 s")
}

fn start(a: &EvalArgs) -> Result<(String, Started)> {
    let exe = std::env::current_exe().context("finding the outpost binary")?;
    let mut started = Started(Vec::new());
    let cloud_port = free_port()?;
    let template = format!("{}=gemma", a.cloud_model);
    let mut cloud = Command::new(&exe)
        .args(["serve", &a.cloud_model, "--chat-template", &template])
        .args(["--port", &cloud_port.to_string()])
        .args(["--threads", &a.threads.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the cloud server")?;
    let cloud_base = format!("http://127.0.0.1:{cloud_port}");
    let r = wait_healthy(&cloud_base, &mut cloud);
    started.0.push(cloud);
    r?;
    let port = free_port()?;
    let mut cmd = Command::new(&exe);
    cmd.args(["serve", &a.model, "--port", &port.to_string()])
        .args(["--threads", &a.threads.to_string()])
        .args(["--cloud-url", &format!("{cloud_base}/v1")])
        .args(["--cloud-model", &a.cloud_model])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(p) = &a.policy {
        cmd.arg("--route-policy").arg(p);
    }
    let mut local = cmd.spawn().context("starting the routed local server")?;
    let base = format!("http://127.0.0.1:{port}");
    let r = wait_healthy(&base, &mut local);
    started.0.push(local);
    r?;
    Ok((base, started))
}

/// One answer: text, ms, the x-outpost-route header; `error` when the
/// request failed (counted, left out of latency and agreement).
struct Answer {
    text: String,
    ms: f64,
    route: String,
    error: Option<String>,
}

fn ask(base: &str, model: &str, mode: &str, p: &Prompt, max_tokens: u32) -> Result<Answer> {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": p.text}],
        "temperature": 0,
        "max_tokens": p.max_tokens.unwrap_or(max_tokens),
    });
    let t = Instant::now();
    let res = ureq::post(&format!("{base}/v1/chat/completions"))
        .set("x-outpost-route-mode", mode)
        .send_json(body);
    let res = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            bail!("{mode}: {code} {}", r.into_string().unwrap_or_default())
        }
        Err(e) => bail!("{mode}: {e}"),
    };
    let route = res.header("x-outpost-route").unwrap_or("").to_string();
    let v: serde_json::Value = res.into_json()?;
    Ok(Answer {
        text: v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        ms: t.elapsed().as_secs_f64() * 1000.0,
        route,
        error: None,
    })
}

/// Word-overlap F1 between two answers (SQuAD-style, lowercase words).
fn f1(a: &str, b: &str) -> f64 {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (a, b) = (words(a), words(b));
    if a.is_empty() || b.is_empty() {
        return if a == b { 1.0 } else { 0.0 };
    }
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for w in &b {
        *counts.entry(w).or_insert(0) += 1;
    }
    let mut common = 0;
    for w in &a {
        if let Some(c) = counts.get_mut(w.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let (p, r) = (
        common as f64 / a.len() as f64,
        common as f64 / b.len() as f64,
    );
    2.0 * p * r / (p + r)
}

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let prompts = read_prompts(&a.prompts)?;
    let (base, _started) = match &a.server {
        Some(s) => (s.trim_end_matches('/').to_string(), Started(Vec::new())),
        None => {
            eprintln!(
                "starting a cloud ({}) and a routed local server ({})",
                a.cloud_model, a.model
            );
            start(&a)?
        }
    };
    const MODES: [&str; 3] = ["local_only", "cloud_only", "auto"];
    let mut answers: Vec<[Answer; 3]> = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        // Rotate which mode goes first: a repeated prompt hits the prompt
        // cache of the server that saw it, so no mode always gets it warm.
        let mut row: Vec<Option<Answer>> = vec![None, None, None];
        for k in 0..MODES.len() {
            let m = (i + k) % MODES.len();
            row[m] = Some(
                ask(&base, &a.model, MODES[m], p, a.max_tokens).unwrap_or_else(|e| {
                    eprintln!("prompt {}: {e:#}", i + 1);
                    Answer {
                        text: String::new(),
                        ms: 0.0,
                        route: "error".into(),
                        error: Some(format!("{e:#}")),
                    }
                }),
            );
        }
        let [l, c, au]: [Answer; 3] = row
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| anyhow::anyhow!("three answers"))?;
        eprintln!("prompt {}/{}: auto → {}", i + 1, prompts.len(), au.route);
        answers.push([l, c, au]);
    }
    let ok = |r: &[Answer; 3], i: usize| r[i].error.is_none();
    let routed = answers.iter().filter(|r| ok(r, 2)).count().max(1) as f64;
    let cloud_share = answers
        .iter()
        .filter(|r| r[2].route.starts_with("cloud"))
        .count() as f64
        / routed;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for r in &answers {
        *reasons.entry(r[2].route.clone()).or_insert(0) += 1;
    }
    let mut modes = serde_json::Map::new();
    for (i, mode) in MODES.iter().enumerate() {
        let ms: Vec<f64> = answers
            .iter()
            .filter(|r| ok(r, i))
            .map(|r| r[i].ms)
            .collect();
        let errors = answers.len() - ms.len();
        let both: Vec<&[Answer; 3]> = answers.iter().filter(|r| ok(r, i) && ok(r, 1)).collect();
        let n = both.len().max(1) as f64;
        let exact = both.iter().filter(|r| r[i].text == r[1].text).count() as f64 / n;
        let f1_mean = both.iter().map(|r| f1(&r[i].text, &r[1].text)).sum::<f64>() / n;
        let (p50, p90, mean) = if ms.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (
                percentile(&ms, 0.5),
                percentile(&ms, 0.9),
                ms.iter().sum::<f64>() / ms.len() as f64,
            )
        };
        modes.insert(
            mode.to_string(),
            serde_json::json!({
                "errors": errors,
                "latency_ms_p50": p50,
                "latency_ms_p90": p90,
                "latency_ms_mean": mean,
                "agreement_with_cloud_exact": exact,
                "agreement_with_cloud_f1": f1_mean,
            }),
        );
    }
    if answers.iter().all(|r| r.iter().all(|x| x.error.is_some())) {
        bail!("every request failed (see above): is {base} a routed outpost serve?");
    }
    let report = serde_json::json!({
        "prompts": answers.len(),
        "auto_cloud_share": cloud_share,
        "auto_routes": reasons,
        "modes": modes,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} prompts; auto sent {:.0} % to the cloud",
        answers.len(),
        cloud_share * 100.0
    );
    for (route, count) in &reasons {
        println!("  auto: {count:3} × {route}");
    }
    let mut t = crate::table::table(&[
        "mode",
        "p50 ms",
        "p90 ms",
        "mean ms",
        "same as cloud",
        "word F1",
        "errors",
    ]);
    for mode in MODES {
        let m = &report["modes"][mode];
        t.add_row(vec![
            mode.to_string(),
            format!("{:.0}", m["latency_ms_p50"].as_f64().unwrap_or(0.0)),
            format!("{:.0}", m["latency_ms_p90"].as_f64().unwrap_or(0.0)),
            format!("{:.0}", m["latency_ms_mean"].as_f64().unwrap_or(0.0)),
            format!(
                "{:.0} %",
                m["agreement_with_cloud_exact"].as_f64().unwrap_or(0.0) * 100.0
            ),
            format!(
                "{:.2}",
                m["agreement_with_cloud_f1"].as_f64().unwrap_or(0.0)
            ),
            m["errors"].as_u64().unwrap_or(0).to_string(),
        ]);
    }
    crate::table::print(t);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_f1() {
        assert_eq!(f1("Paris is the capital", "paris is the capital."), 1.0);
        assert_eq!(f1("a b", "c d"), 0.0);
        assert!((f1("a b c d", "a b") - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), 2.0);
    }
}
