//! `outpost fleet simulate`: simulated devices against a real fleet over
//! HTTP. Every device registers with the app key, then lives through
//! `--rounds` rounds: in each it checks in with a profile of its class and
//! sends that round's telemetry for every release it runs (inference
//! events at its class's speed, some failing at its error rate, some
//! followed by a thumbs-down or a regeneration at its feedback rates; a
//! crash at its crash rate; with `--route-threshold`, a route event per
//! request, local or cloud as the router's complexity rule would pick;
//! with `--battery-drain`, a discharging battery report). A share of devices (the class's `offline_rate`)
//! has one offline period (a start round and a length of 1 to
//! `offline_rounds` rounds): while offline it does not check in and keeps
//! each round's telemetry as a pending batch with its own id; when it
//! comes back it checks in, delivers the pending batches oldest first,
//! and sends the first of them once more, as a device whose ack was lost
//! would (the fleet must answer `duplicate` and count it once). Every
//! offline period ends before the last round, so every device checks in
//! at the end. Classes come from `--mix FILE` or `--classes` (equal
//! shares, default speeds). One class can be given a regression on one
//! release (slower by a factor, and/or a higher thumbs-down rate). Prints
//! the ground truth: devices per release × class after the last round,
//! offline periods, events sent and duplicates acknowledged, requests and
//! tokens per route, battery points lost, plus the run's numbers (check-ins/s, check-in
//! latency, events/s, peak memory). Draws are a hash of the device number,
//! so a run is reproducible.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use outpost_fleet::hist::Histogram;
use serde::Deserialize;
use serde_json::{json, Value};

mod net;
use net::Fleets;

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
    /// Share of inferences the user gives a thumbs-down.
    #[serde(default)]
    pub thumbs_down_rate: f64,
    /// Share of inferences the user regenerates.
    #[serde(default)]
    pub regenerate_rate: f64,
    /// Share of devices that go offline once during the run.
    #[serde(default)]
    pub offline_rate: f64,
    /// Longest offline period, in rounds (default 1).
    #[serde(default = "one_round")]
    pub offline_rounds: usize,
}

fn one() -> f64 {
    1.0
}
fn one_round() -> usize {
    1
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
    fn validate(&self, rounds: usize) -> Result<()> {
        if self.classes.is_empty() {
            bail!("the mix has no classes; give at least one {{\"class\": NAME}}");
        }
        for c in &self.classes {
            let rates = [
                c.error_rate,
                c.crash_rate,
                c.offline_rate,
                c.thumbs_down_rate,
                c.regenerate_rate,
            ];
            if !(c.weight > 0.0 && c.latency_ms > 0.0 && c.tok_s > 0.0)
                || rates.iter().any(|r| !(0.0..=1.0).contains(r))
            {
                bail!(
                    "class {}: weight, latency_ms and tok_s must be above 0 and rates in 0-1",
                    c.class
                );
            }
            if c.offline_rounds == 0 {
                bail!(
                    "class {}: offline_rounds is 0; an offline period lasts at least 1 round",
                    c.class
                );
            }
            if c.offline_rate > 0.0 && rounds < 2 {
                bail!(
                    "class {} has offline_rate {} but --rounds is {rounds}: a device must come back \
                     before the last round, so offline periods need --rounds 2 or more",
                    c.class,
                    c.offline_rate
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

/// Draw `k` of device `i` in `round` (per-device draws use k < 16).
fn draw_in(i: usize, round: usize, k: usize) -> f64 {
    draw(i, 16 + (round << 24) + k)
}

/// Device `i`'s offline period, rounds `[start, end)`, if it has one: it
/// starts before the last round and ends by it.
fn offline_period(i: usize, mix: &ClassMix, rounds: usize) -> Option<(usize, usize)> {
    if rounds < 2 || draw(i, 0) >= mix.offline_rate {
        return None;
    }
    let start = ((draw(i, 2) * (rounds - 1) as f64) as usize).min(rounds - 2);
    let longest = mix.offline_rounds.min(rounds - 1 - start);
    let len = 1 + ((draw(i, 3) * longest as f64) as usize).min(longest - 1);
    Some((start, start + len))
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many devices to simulate.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Check-in rounds every device lives through (each: check in, send
    /// the round's telemetry). Offline periods need 2 or more.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Device classes, comma-separated, equal shares and default speeds
    /// (ignored with --mix).
    #[arg(long, default_value = "phone-8gb,phone-4gb,laptop-16gb")]
    classes: String,
    /// A JSON file of classes with weights, speeds and rates, e.g.
    /// {"classes": [{"class": "phone-4gb", "weight": 2, "latency_ms": 800,
    /// "tok_s": 20, "error_rate": 0.01, "crash_rate": 0.001,
    /// "thumbs_down_rate": 0.02, "regenerate_rate": 0.01,
    /// "offline_rate": 0.1, "offline_rounds": 2}]}
    /// offline_rate: share of devices with one offline period; it starts at
    /// a random round and lasts 1 to offline_rounds rounds (default 1),
    /// always ending before the last round.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    mix: Option<std::path::PathBuf>,
    /// The channel the devices register on.
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Inference events per device, release and round.
    #[arg(long, default_value_t = 20)]
    events: usize,
    /// Inject a regression into this class...
    #[arg(long, value_name = "CLASS")]
    regress_class: Option<String>,
    /// ...on this release version only.
    #[arg(long, value_name = "VERSION")]
    regress_version: Option<String>,
    /// How much slower the regressed devices are (1: not slower).
    #[arg(long, default_value_t = 3.0)]
    regress_factor: f64,
    /// The regressed devices' thumbs-down rate (per inference) instead of
    /// their class's.
    #[arg(long, value_name = "RATE")]
    regress_thumbs_down: Option<f64>,
    /// Route every request as the hybrid router would at this complexity
    /// threshold: each gets a complexity score (uniform 0-1) and a route
    /// event with its tokens, latency and both routes' predicted latency;
    /// 10 % are `sensitive` (kept local whatever the score), the rest go to
    /// the cloud at or above the threshold (`complexity`; no on-device
    /// inference event then) and stay local below it (`simple`).
    #[arg(long, value_name = "0-1")]
    route_threshold: Option<f64>,
    /// The cloud's median latency for routed requests (ms).
    #[arg(long, default_value_t = 900.0)]
    cloud_latency_ms: f64,
    /// Each device reports its battery once a round, discharging, this many
    /// points lower than the round before (0: no battery events).
    #[arg(long, default_value_t = 0)]
    battery_drain: u8,
    /// Concurrent simulated devices (connections). 32 or more for
    /// --devices 100000.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Another replica of the fleet (repeat for more): devices are spread
    /// over --url and these (device i starts on the i-th mod n), and a
    /// request that cannot connect or answers 5xx is tried on the next one
    /// (up to 40 tries, 250 ms apart), as behind a load balancer while a
    /// replica restarts.
    #[arg(long = "also", value_name = "URL")]
    also: Vec<String>,
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// (model, version) a device runs.
type Release = (String, String);

/// A simulated device between rounds. Telemetry kept while offline is a
/// pending batch: its id, the round, when, and the releases it ran then;
/// its events are drawn from those when it is sent (the same every time).
struct Device {
    id: String,
    token: String,
    runs: Vec<Release>,
    pending: Vec<Pending>,
    /// The battery level last sent.
    last_battery: Option<u64>,
}

#[derive(Clone)]
struct Pending {
    batch_id: String,
    round: usize,
    at: u64,
    runs: Vec<Release>,
}

/// What a round added up to, per worker thread (merged at the end).
#[derive(Default)]
struct Tally {
    check_ins: u64,
    check_in_ms: Histogram,
    events: u64,
    inferences: u64,
    thumbs_down: u64,
    regenerates: u64,
    late_batches: u64,
    duplicates: u64,
    /// Batches whose answer was lost and whose retry was answered
    /// `duplicate`: counted once, by the lost try.
    lost_answers: u64,
    /// Route events by reason (simple, sensitive, complexity): requests,
    /// prompt and completion tokens.
    routes: [[u64; 3]; 3],
    /// Battery points lost between a device's reports, as sent.
    battery_drain: u64,
}

/// The simulated router's reasons: local `simple`, local `sensitive`,
/// cloud `complexity`.
const ROUTE_REASONS: [&str; 3] = ["simple", "sensitive", "complexity"];

/// Device `i`'s telemetry of one round for the releases it ran then.
fn events_of(a: &SimulateArgs, mix: &ClassMix, i: usize, p: &Pending) -> Vec<Value> {
    let at = outpost_protocol::Timestamp::from_unix_seconds(p.at);
    let mut events = Vec::new();
    let crash_round = (draw(i, 4) * a.rounds as f64) as usize;
    for (model, version) in &p.runs {
        let bad = a.regress_class.as_deref() == Some(mix.class.as_str())
            && a.regress_version.as_deref().is_none_or(|v| v == version);
        let factor = if bad { a.regress_factor.max(1.0) } else { 1.0 };
        let thumbs_down = match a.regress_thumbs_down {
            Some(r) if bad => r,
            _ => mix.thumbs_down_rate,
        };
        let event = |kind: &str, data: Value| {
            json!({
                "at": at, "model": model, "model_version": version,
                "model_digest": outpost_protocol::Digest::sha256(version.as_bytes()).to_string(),
                "engine_version": "0.1.0", "app_version": "2.0.0", "kind": kind, "data": data
            })
        };
        if a.battery_drain > 0 && Some((model, version)) == p.runs.first().map(|r| (&r.0, &r.1)) {
            let level =
                100u8.saturating_sub(a.battery_drain.saturating_mul(p.round.min(100) as u8));
            events.push(event(
                "battery",
                json!({"level_pct": level, "charging": false}),
            ));
        }
        for k in 0..a.events {
            // Spread ±33 % around the class's medians.
            let spread = 0.67 + 0.66 * draw_in(i, p.round, 2 * k);
            let latency = mix.latency_ms * spread * factor;
            if let Some(threshold) = a.route_threshold {
                let complexity = draw_in(i, p.round, (1 << 22) + 3 * k);
                let sensitive = draw_in(i, p.round, (1 << 22) + 3 * k + 1) < 0.1;
                let prompt = 50 + (draw_in(i, p.round, (1 << 22) + 3 * k + 2) * 450.0) as u32;
                let cloud = !sensitive && complexity >= threshold;
                let reason = match (sensitive, cloud) {
                    (true, _) => "sensitive",
                    (false, true) => "complexity",
                    (false, false) => "simple",
                };
                events.push(event("route", json!({
                    "target": if cloud { "cloud" } else { "local" }, "reason": reason,
                    "prompt_tokens": prompt, "completion_tokens": 64,
                    "latency_ms": if cloud { a.cloud_latency_ms * spread } else { latency },
                    "complexity": complexity, "complexity_threshold": threshold,
                    "local_predicted_ms": mix.latency_ms, "cloud_predicted_ms": a.cloud_latency_ms,
                })));
                if cloud {
                    continue;
                }
            }
            let mut data = json!({"ttft_ms": mix.latency_ms * 0.1 * spread * factor,
                "latency_ms": latency,
                "tokens": 64, "tok_s": mix.tok_s / spread / factor});
            if draw_in(i, p.round, 2 * k + 1) < mix.error_rate {
                data["error"] = json!("simulated");
            }
            events.push(event("inference", data));
            // What the user did with the answer (draws of their own).
            if draw_in(i, p.round, (1 << 23) + 2 * k) < thumbs_down {
                events.push(event("feedback", json!({"signal": "thumbs_down"})));
            }
            if draw_in(i, p.round, (1 << 23) + 2 * k + 1) < mix.regenerate_rate {
                events.push(event("feedback", json!({"signal": "regenerate"})));
            }
        }
        if p.round == crash_round && draw(i, 1) < mix.crash_rate {
            events.push(event("crash", json!({"reason": "simulated"})));
        }
    }
    events
}

/// Sends one pending batch (split at the protocol's event limit); the
/// fleet must count every event once, or answer `duplicate` for a resend.
/// `resend`: the batch was counted before, so `duplicate` is the only
/// right answer; otherwise `duplicate` after a try whose answer was lost
/// means that try counted it.
#[allow(clippy::too_many_arguments)]
fn send(
    agent: &ureq::Agent,
    fleets: &Fleets,
    i: usize,
    d: &mut Device,
    events: &[Value],
    batch_id: &str,
    resend: bool,
    tally: &mut Tally,
) -> Result<()> {
    for (n, chunk) in events
        .chunks(outpost_protocol::telemetry::MAX_EVENTS)
        .enumerate()
    {
        let id = format!("{batch_id}-{n}");
        let answer = fleets.post(
            agent,
            i,
            "/v1/telemetry",
            Some(&d.token),
            &json!({"batch_id": id, "device_id": d.id, "events": chunk}),
        )?;
        let ack = answer.body;
        let counted_by_lost_try = ack["duplicate"] == true && answer.retried && !resend;
        if ack["duplicate"] == true && !counted_by_lost_try {
            tally.duplicates += 1;
            continue;
        }
        let accepted = if counted_by_lost_try {
            tally.lost_answers += 1;
            chunk.len() as u64
        } else {
            ack["accepted"].as_u64().unwrap_or(0)
        };
        if accepted != chunk.len() as u64 {
            bail!("batch {id} of {}: the fleet accepted {accepted} of {} events ({ack}); the simulator sends only current, published releases", d.id, chunk.len());
        }
        tally.events += accepted;
        for e in chunk.iter().filter(|e| e["kind"] == "battery") {
            let level = e["data"]["level_pct"].as_u64().unwrap_or(0);
            if let Some(was) = d.last_battery.replace(level) {
                tally.battery_drain += was.saturating_sub(level);
            }
        }
        tally.inferences += chunk.iter().filter(|e| e["kind"] == "inference").count() as u64;
        let signal = |s: &str| {
            chunk
                .iter()
                .filter(|e| e["kind"] == "feedback" && e["data"]["signal"] == s)
                .count() as u64
        };
        tally.thumbs_down += signal("thumbs_down");
        tally.regenerates += signal("regenerate");
        for e in chunk.iter().filter(|e| e["kind"] == "route") {
            let Some(r) = ROUTE_REASONS.iter().position(|r| e["data"]["reason"] == *r) else {
                continue;
            };
            let t = &mut tally.routes[r];
            t[0] += 1;
            t[1] += e["data"]["prompt_tokens"].as_u64().unwrap_or(0);
            t[2] += e["data"]["completion_tokens"].as_u64().unwrap_or(0);
        }
    }
    Ok(())
}

/// Device `i` in `round`: offline, it keeps the round's telemetry; online,
/// it checks in, delivers what it kept (and resends the first kept batch,
/// which must come back `duplicate`), then sends this round's.
#[allow(clippy::too_many_arguments)]
fn device_round(
    agent: &ureq::Agent,
    fleets: &Fleets,
    a: &SimulateArgs,
    mix: &ClassMix,
    i: usize,
    round: usize,
    d: &mut Device,
    tally: &mut Tally,
) -> Result<()> {
    let now = unix_now();
    let this = Pending {
        batch_id: format!("sim-r{round}"),
        round,
        at: now,
        runs: d.runs.clone(),
    };
    if offline_period(i, mix, a.rounds).is_some_and(|(s, e)| (s..e).contains(&round)) {
        if !this.runs.is_empty() {
            d.pending.push(this);
        }
        return Ok(());
    }
    let t = Instant::now();
    let ans = fleets
        .post(
            agent,
            i,
            "/v1/devices/check-in",
            Some(&d.token),
            &json!({"profile": profile(&mix.class)}),
        )?
        .body;
    tally.check_in_ms.record(t.elapsed().as_secs_f64() * 1000.0);
    tally.check_ins += 1;
    d.runs = ans["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some((
                m["model"].as_str()?.to_string(),
                m["model_version"].as_str()?.to_string(),
            ))
        })
        .collect();
    let pending = std::mem::take(&mut d.pending);
    for p in &pending {
        let events = events_of(a, mix, i, p);
        send(agent, fleets, i, d, &events, &p.batch_id, false, tally)?;
        tally.late_batches += 1;
    }
    if let Some(p) = pending.first() {
        let before = tally.duplicates;
        let events = events_of(a, mix, i, p);
        send(agent, fleets, i, d, &events, &p.batch_id, true, tally)?;
        if tally.duplicates == before {
            bail!(
                "device {} resent batch {} and the fleet counted it again instead of answering duplicate",
                d.id,
                p.batch_id
            );
        }
    }
    let this = Pending {
        runs: d.runs.clone(),
        ..this
    };
    if !this.runs.is_empty() {
        let events = events_of(a, mix, i, &this);
        send(agent, fleets, i, d, &events, &this.batch_id, false, tally)?;
    }
    Ok(())
}

/// Peak resident memory of this process (VmHWM), in bytes; Linux only.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `work(i, worker tally)` for every device on `threads` threads;
/// returns the first error of each failing device.
fn parallel<F>(n: usize, threads: usize, tally: &Mutex<Tally>, work: F) -> Vec<String>
where
    F: Fn(usize, &mut Tally) -> Result<()> + Sync,
{
    let next = AtomicUsize::new(0);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(n) {
            s.spawn(|| {
                let mut mine = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    if let Err(e) = work(i, &mut mine) {
                        errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("device {i}: {e:#}"));
                    }
                }
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.check_ins += mine.check_ins;
                t.check_in_ms.merge(&mine.check_in_ms);
                t.events += mine.events;
                t.inferences += mine.inferences;
                t.thumbs_down += mine.thumbs_down;
                t.regenerates += mine.regenerates;
                t.late_batches += mine.late_batches;
                t.duplicates += mine.duplicates;
                t.lost_answers += mine.lost_answers;
                t.battery_drain += mine.battery_drain;
                for (a, b) in t.routes.iter_mut().zip(mine.routes) {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                }
            });
        }
    });
    errors.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn fail(errors: &[String], n: usize, phase: &str) -> Result<()> {
    match errors.first() {
        None => Ok(()),
        Some(first) => bail!(
            "{} of {n} devices failed while {phase}; first: {first}",
            errors.len()
        ),
    }
}

fn load_mix(a: &SimulateArgs) -> Result<Mix> {
    let mix = match &a.mix {
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
                    thumbs_down_rate: 0.0,
                    regenerate_rate: 0.0,
                    offline_rate: 0.0,
                    offline_rounds: one_round(),
                })
                .collect(),
        },
    };
    mix.validate(a.rounds)?;
    if let Some(t) = a.route_threshold {
        if !(0.0..=1.0).contains(&t) {
            bail!("--route-threshold {t} is a complexity score: give 0 to 1");
        }
    }
    if !(a.cloud_latency_ms > 0.0 && a.cloud_latency_ms.is_finite()) {
        bail!("--cloud-latency-ms {} must be above 0", a.cloud_latency_ms);
    }
    if let Some(r) = a.regress_thumbs_down {
        if !(0.0..=1.0).contains(&r) {
            bail!("--regress-thumbs-down {r} is a share of inferences: give 0 to 1");
        }
    }
    Ok(mix)
}

/// Runs the simulation; returns the ground truth and the run's numbers as
/// JSON.
pub fn run(url: &str, data: Option<&Path>, a: &SimulateArgs) -> Result<Value> {
    let app_key = match (&a.app_key, data) {
        (Some(k), _) => k.clone(),
        (None, Some(dir)) => std::fs::read_to_string(dir.join("app.key"))
            .with_context(|| format!("reading {}", dir.join("app.key").display()))?
            .trim()
            .to_string(),
        (None, None) => bail!("no app key: pass --app-key or --data DIR"),
    };
    if a.devices == 0 || a.threads == 0 || a.rounds == 0 {
        bail!(
            "--devices ({}), --threads ({}) and --rounds ({}) must be above 0",
            a.devices,
            a.threads,
            a.rounds
        );
    }
    let mix = load_mix(a)?;
    let agent = ureq::AgentBuilder::new().build();
    let fleets = Fleets::new(url, &a.also);
    let tally = Mutex::new(Tally::default());
    let t0 = Instant::now();
    let devices: Vec<Mutex<Option<Device>>> = (0..a.devices).map(|_| Mutex::new(None)).collect();
    let errors = parallel(a.devices, a.threads, &tally, |i, _| {
        let reg = fleets
            .post(
                &agent,
                i,
                "/v1/devices/register",
                None,
                &json!({"app_key": app_key, "channel": a.channel}),
            )?
            .body;
        let d = Device {
            id: reg["device_id"].as_str().context("device_id")?.to_string(),
            token: reg["token"].as_str().context("token")?.to_string(),
            runs: Vec::new(),
            pending: Vec::new(),
            last_battery: None,
        };
        *devices[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
        Ok(())
    });
    fail(&errors, a.devices, "registering")?;
    let registered_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for round in 0..a.rounds {
        let errors = parallel(a.devices, a.threads, &tally, |i, tally| {
            let mut slot = devices[i].lock().unwrap_or_else(|e| e.into_inner());
            let d = slot.as_mut().context("device did not register")?;
            device_round(
                &agent,
                &fleets,
                a,
                mix.class_of(i, a.devices),
                i,
                round,
                d,
                tally,
            )
        });
        fail(&errors, a.devices, &format!("in round {round}"))?;
    }
    let rounds_s = t1.elapsed().as_secs_f64();
    let mut truth: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut offline = 0u64;
    for (i, slot) in devices.iter().enumerate() {
        let class = mix.class_of(i, a.devices);
        if offline_period(i, class, a.rounds).is_some() {
            offline += 1;
        }
        let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        for (m, v) in slot.iter().flat_map(|d| d.runs.iter()) {
            *truth
                .entry((format!("{m}@{v}"), class.class.clone()))
                .or_default() += 1;
        }
    }
    let t = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    let per_s = |n: u64| {
        if rounds_s > 0.0 {
            n as f64 / rounds_s
        } else {
            0.0
        }
    };
    Ok(json!({
        "devices": a.devices,
        "rounds": a.rounds,
        "offline": offline,
        "late_batches": t.late_batches,
        "duplicates_acknowledged": t.duplicates,
        "answers_lost": t.lost_answers,
        "events": t.events,
        "inferences": t.inferences,
        "thumbs_down": t.thumbs_down,
        "regenerates": t.regenerates,
        "routes": ROUTE_REASONS.iter().zip(t.routes).map(|(r, [n, p, c])| {
            (r.to_string(), json!({"requests": n, "prompt_tokens": p, "completion_tokens": c}))
        }).collect::<serde_json::Map<String, Value>>(),
        "battery_drain_pct": t.battery_drain,
        "seconds": t0.elapsed().as_secs_f64(),
        "register_seconds": registered_s,
        "rounds_seconds": rounds_s,
        "check_ins": t.check_ins,
        "check_ins_per_s": per_s(t.check_ins),
        "check_in_ms_p50": t.check_in_ms.quantile(0.5),
        "check_in_ms_p99": t.check_in_ms.quantile(0.99),
        "events_per_s": per_s(t.events),
        "peak_rss_bytes": peak_rss(),
        "releases": truth.into_iter().map(|((release, class), n)| {
            json!({"release": release, "device_class": class, "devices": n})
        }).collect::<Vec<_>>(),
    }))
}
