//! `outpost fleet simulate`: simulated devices against a real fleet over
//! HTTP. Each device registers with the app key, checks in with a profile
//! of its class (classes take turns), and sends one telemetry batch of
//! inference events for every release it was assigned. One class can be
//! given a regression on one release (slower by a factor, and failing a
//! share of requests), to watch the automatic halt at work. Prints the
//! ground truth: devices per release × class.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many devices to simulate.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Device classes, comma-separated; devices take them in turn.
    #[arg(long, default_value = "phone-8gb,phone-4gb,laptop-16gb")]
    classes: String,
    /// The channel the devices register on.
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Inference events per device and release.
    #[arg(long, default_value_t = 20)]
    events: usize,
    /// Inject a regression into this class...
    #[arg(long, value_name = "CLASS")]
    regress_class: Option<String>,
    /// ...on this release version only.
    #[arg(long, value_name = "VERSION")]
    regress_version: Option<String>,
    /// How much slower the regressed devices are.
    #[arg(long, default_value_t = 3.0)]
    regress_factor: f64,
    /// Concurrent simulated devices.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// The app key (default: DIR/app.key with --data).
    #[arg(long, env = "OUTPOST_FLEET_APP_KEY", hide_env_values = true)]
    app_key: Option<String>,
}

fn profile(class: &str) -> Value {
    json!({
        "device_class": class, "ram_bytes": 8_000_000_000u64, "os": "android",
        "app_version": "2.0.0", "engine_version": "0.1.0",
        "ggml_types": ["f32", "f16", "q4_0", "q4_K", "q8_0"], "region": "eu-west",
        "free_disk_bytes": 20_000_000_000u64
    })
}

fn post(agent: &ureq::Agent, url: &str, token: Option<&str>, body: &Value) -> Result<Value> {
    let mut req = agent.post(url);
    if let Some(t) = token {
        req = req.set("authorization", &format!("Bearer {t}"));
    }
    match req.send_json(body.clone()) {
        Ok(r) => Ok(r.into_json()?),
        Err(ureq::Error::Status(code, r)) => {
            let b: Value = r.into_json().unwrap_or(Value::Null);
            bail!("{url}: {code} {}", b["error"]["message"])
        }
        Err(e) => bail!("{url}: {e}"),
    }
}

/// One device's life; returns the (release, class) pairs it ran.
fn device(
    agent: &ureq::Agent,
    url: &str,
    app_key: &str,
    a: &SimulateArgs,
    class: &str,
    i: usize,
) -> Result<Vec<(String, String)>> {
    let reg = post(
        agent,
        &format!("{url}/v1/devices/register"),
        None,
        &json!({"app_key": app_key, "channel": a.channel}),
    )?;
    let (id, token) = (
        reg["device_id"].as_str().context("device_id")?,
        reg["token"].as_str().context("token")?,
    );
    let ans = post(
        agent,
        &format!("{url}/v1/devices/check-in"),
        Some(token),
        &json!({"profile": profile(class)}),
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let at = outpost_protocol::Timestamp::from_unix_seconds(now);
    let mut ran = Vec::new();
    let mut events = Vec::new();
    for m in ans["models"].as_array().into_iter().flatten() {
        let Some(version) = m["model_version"].as_str() else {
            continue;
        };
        let model = m["model"].as_str().unwrap_or_default();
        ran.push((format!("{model}@{version}"), class.to_string()));
        let bad = a.regress_class.as_deref() == Some(class)
            && a.regress_version.as_deref().is_none_or(|v| v == version);
        let factor = if bad { a.regress_factor.max(1.0) } else { 1.0 };
        for k in 0..a.events {
            // Deterministic spread: 300-600 ms, 30-60 tok/s.
            let spread = ((i * 31 + k * 17) % 100) as f64 / 100.0;
            events.push(json!({
                "at": at, "model": model, "model_version": version,
                "model_digest": outpost_protocol::Digest::sha256(version.as_bytes()).to_string(),
                "engine_version": "0.1.0", "app_version": "2.0.0", "kind": "inference",
                "data": {"ttft_ms": 40.0 * factor, "latency_ms": (300.0 + 300.0 * spread) * factor,
                    "tokens": 64, "tok_s": (30.0 + 30.0 * spread) / factor}
            }));
        }
    }
    for (n, chunk) in events
        .chunks(outpost_protocol::telemetry::MAX_EVENTS)
        .enumerate()
    {
        post(
            agent,
            &format!("{url}/v1/telemetry"),
            Some(token),
            &json!({"batch_id": format!("sim-{n}"), "device_id": id, "events": chunk}),
        )?;
    }
    Ok(ran)
}

/// Runs the simulation; returns the ground truth as JSON.
pub fn run(url: &str, data: Option<&Path>, a: &SimulateArgs) -> Result<Value> {
    let app_key = match (&a.app_key, data) {
        (Some(k), _) => k.clone(),
        (None, Some(dir)) => std::fs::read_to_string(dir.join("app.key"))
            .with_context(|| format!("reading {}", dir.join("app.key").display()))?
            .trim()
            .to_string(),
        (None, None) => bail!("no app key: pass --app-key or --data DIR"),
    };
    let classes: Vec<&str> = a.classes.split(',').filter(|c| !c.is_empty()).collect();
    if classes.is_empty() || a.devices == 0 || a.threads == 0 {
        bail!("--classes, --devices and --threads must not be empty or 0");
    }
    let agent = ureq::AgentBuilder::new().build();
    let next = AtomicUsize::new(0);
    let truth: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let t0 = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..a.threads.min(a.devices) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= a.devices {
                    break;
                }
                let class = classes[i % classes.len()];
                match device(&agent, url, &app_key, a, class, i) {
                    Ok(ran) => {
                        let mut t = truth.lock().unwrap_or_else(|e| e.into_inner());
                        for k in ran {
                            *t.entry(k).or_default() += 1;
                        }
                    }
                    Err(e) => errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(e.to_string()),
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = errors.first() {
        bail!(
            "{} of {} devices failed; first: {first}",
            errors.len(),
            a.devices
        );
    }
    let truth = truth.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(json!({
        "devices": a.devices,
        "seconds": t0.elapsed().as_secs_f64(),
        "releases": truth.into_iter().map(|((release, class), n)| {
            json!({"release": release, "device_class": class, "devices": n})
        }).collect::<Vec<_>>(),
    }))
}
