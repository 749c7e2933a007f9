//! `outpost fleet simulate`: simulated devices against a real fleet over
//! HTTP. Each device registers with the app key, checks in with a profile
//! of its class, and sends telemetry for every release it was assigned:
//! inference events at its class's speed (some failing at its error
//! rate) and a crash at its crash rate. Devices "offline" (at the class's
//! offline rate) register and never come back. Classes come from `--mix
//! FILE` (weights, speeds, rates) or `--classes` (equal shares, default
//! speeds). One class can be given a regression on one release (slower
//! by a factor), to watch the automatic halt at work. Prints the ground
//! truth: devices per release × class, and how many went offline.
//! Draws are a hash of the device number, so a run is reproducible.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};

/// One device class of a `--mix` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassMix {
    pub class: String,
    /// Relative share of the devices (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Median request latency (default 450 ms).
    #[serde(default = "latency")]
    pub latency_ms: f64,
    /// Median decode speed (default 45 tok/s).
    #[serde(default = "speed")]
    pub tok_s: f64,
    /// Share of inferences that fail.
    #[serde(default)]
    pub error_rate: f64,
    /// Share of devices that send a crash.
    #[serde(default)]
    pub crash_rate: f64,
    /// Share of devices that register and never check in.
    #[serde(default)]
    pub offline_rate: f64,
}

fn one() -> f64 {
    1.0
}
fn latency() -> f64 {
    450.0
}
fn speed() -> f64 {
    45.0
}

/// `--mix FILE`: `{"classes": [{"class": "phone-4gb", "weight": 2, ...}]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub classes: Vec<ClassMix>,
}

impl Mix {
    fn validate(&self) -> Result<()> {
        if self.classes.is_empty() {
            bail!("the mix has no classes");
        }
        for c in &self.classes {
            let rates = [c.error_rate, c.crash_rate, c.offline_rate];
            if !(c.weight > 0.0 && c.latency_ms > 0.0 && c.tok_s > 0.0)
                || rates.iter().any(|r| !(0.0..=1.0).contains(r))
            {
                bail!(
                    "class {}: weight, latency_ms and tok_s must be above 0 and rates in 0-1",
                    c.class
                );
            }
        }
        Ok(())
    }

    /// The class of device `i` of `n`: shares by weight, in order.
    fn class_of(&self, i: usize, n: usize) -> &ClassMix {
        let total: f64 = self.classes.iter().map(|c| c.weight).sum();
        let x = (i as f64 + 0.5) / n as f64 * total;
        let mut acc = 0.0;
        for c in &self.classes {
            acc += c.weight;
            if x < acc {
                return c;
            }
        }
        &self.classes[self.classes.len() - 1]
    }
}

/// A reproducible draw in [0, 1) for device `i`, draw `k`.
fn draw(i: usize, k: usize) -> f64 {
    let mut z = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (k as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many devices to simulate.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Device classes, comma-separated, equal shares and default speeds
    /// (ignored with --mix).
    #[arg(long, default_value = "phone-8gb,phone-4gb,laptop-16gb")]
    classes: String,
    /// A JSON file of classes with weights, speeds and rates, e.g.
    /// {"classes": [{"class": "phone-4gb", "weight": 2, "latency_ms": 800,
    /// "tok_s": 20, "error_rate": 0.01, "crash_rate": 0.001, "offline_rate": 0.1}]}
    #[arg(long, value_name = "FILE")]
    mix: Option<std::path::PathBuf>,
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

/// What a device running this engine reports: every ggml type the
/// variant pipeline can produce loads on it.
fn profile(class: &str) -> Value {
    json!({
        "device_class": class, "ram_bytes": 8_000_000_000u64, "os": "android",
        "app_version": "2.0.0", "engine_version": "0.1.0",
        "ggml_types": ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                       "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs"],
        "region": "eu-west",
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

/// One device's life; returns the (release, class) pairs it ran, `None`
/// when it went offline after registering.
fn device(
    agent: &ureq::Agent,
    url: &str,
    app_key: &str,
    a: &SimulateArgs,
    mix: &ClassMix,
    i: usize,
) -> Result<Option<Vec<(String, String)>>> {
    let class = mix.class.as_str();
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
    if draw(i, 0) < mix.offline_rate {
        return Ok(None);
    }
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
        let event = |kind: &str, data: Value| {
            json!({
                "at": at, "model": model, "model_version": version,
                "model_digest": outpost_protocol::Digest::sha256(version.as_bytes()).to_string(),
                "engine_version": "0.1.0", "app_version": "2.0.0", "kind": kind, "data": data
            })
        };
        for k in 0..a.events {
            // Spread ±33 % around the class's medians.
            let spread = 0.67 + 0.66 * draw(i, 2 * k + 3);
            let mut data = json!({"ttft_ms": mix.latency_ms * 0.1 * spread * factor,
                "latency_ms": mix.latency_ms * spread * factor,
                "tokens": 64, "tok_s": mix.tok_s / spread / factor});
            if draw(i, 2 * k + 4) < mix.error_rate {
                data["error"] = json!("simulated");
            }
            events.push(event("inference", data));
        }
        if draw(i, 1) < mix.crash_rate {
            events.push(event("crash", json!({"reason": "simulated"})));
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
    Ok(Some(ran))
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
    let mix: Mix = match &a.mix {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading the mix {}", p.display()))?,
        )
        .with_context(|| format!("the mix {} is not valid", p.display()))?,
        None => Mix {
            classes: a
                .classes
                .split(',')
                .filter(|c| !c.is_empty())
                .map(|c| ClassMix {
                    class: c.to_string(),
                    weight: one(),
                    latency_ms: latency(),
                    tok_s: speed(),
                    error_rate: 0.0,
                    crash_rate: 0.0,
                    offline_rate: 0.0,
                })
                .collect(),
        },
    };
    mix.validate()?;
    if a.devices == 0 || a.threads == 0 {
        bail!("--devices and --threads must be above 0");
    }
    let offline = AtomicUsize::new(0);
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
                let class = mix.class_of(i, a.devices);
                match device(&agent, url, &app_key, a, class, i) {
                    Ok(None) => {
                        offline.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Some(ran)) => {
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
        "offline": offline.load(Ordering::SeqCst),
        "seconds": t0.elapsed().as_secs_f64(),
        "releases": truth.into_iter().map(|((release, class), n)| {
            json!({"release": release, "device_class": class, "devices": n})
        }).collect::<Vec<_>>(),
    }))
}
