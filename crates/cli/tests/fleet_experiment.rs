//! A/B experiments and the economics report end to end: a real `outpost
//! fleet serve`, driven by the CLI, with 1 000 simulated devices over HTTP.
//! - a treatment that phone-4gb users give six times the thumbs-down halts
//!   its rollout and loses its experiment, naming the class; stopping it
//!   sends every device back to the control, and the analysis stays as it
//!   ended;
//! - an identical treatment is not declared different (keep running) and
//!   ships on request (the false-positive rate over many runs is measured
//!   in `outpost_fleet::experiment`'s tests);
//! - the economics report over a simulated fleet with both routes matches
//!   the totals the simulator sent, priced here, at the threshold it ran
//!   and replayed at the extremes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fleet::{free_port, release_dir, Fleet};
use serde_json::{json, Value};

use common::MODEL as M;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(name: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("outpost-exp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("dir");
    Dir(p)
}

/// `outpost fleet ARGS` without --json: (success, stdout, stderr).
fn text(f: &Fleet, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .arg("fleet")
        .args(args)
        .args(["--url", &f.url, "--data"])
        .arg(&f.data)
        .output()
        .expect("run outpost fleet");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A fleet with v1 on stable and v2 published.
fn fleet(root: &Path, versions: &[&str]) -> Fleet {
    let f = Fleet::start(&root.join("data"), free_port(), &[]);
    for v in versions {
        f.publish(&release_dir(root, M, v));
    }
    f.release_to_stable("v1");
    f
}

fn mix(root: &Path) -> PathBuf {
    let p = root.join("mix.json");
    let mix = json!({"classes": [
        {"class": "phone-8gb", "latency_ms": 400, "tok_s": 50, "error_rate": 0.005,
            "thumbs_down_rate": 0.02, "regenerate_rate": 0.01},
        {"class": "phone-4gb", "latency_ms": 700, "tok_s": 25, "error_rate": 0.005,
            "thumbs_down_rate": 0.02, "regenerate_rate": 0.01}
    ]});
    std::fs::write(&p, mix.to_string()).expect("mix");
    p
}

const METRICS: &str = "ttft_p50,tok_s,thumbs_down_rate,regenerate_rate,crash_rate";

fn create(f: &Fleet) -> u64 {
    let e = f.admin(&[
        "experiment",
        "create",
        "--control",
        &format!("{M}@v1"),
        "--treatment",
        &format!("{M}@v2"),
        "--split",
        "50",
        "--where",
        "class=phone-8gb,phone-4gb",
        "--metrics",
        METRICS,
    ]);
    assert_eq!(e["state"], "running", "{e}");
    assert_eq!(e["split_percent"], 50.0, "{e}");
    e["id"].as_u64().expect("id")
}

fn results<'a>(e: &'a Value, class: &str, metric: &str) -> &'a Value {
    e["results"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|r| r["device_class"] == class && r["metric"] == metric)
        })
        .unwrap_or_else(|| panic!("no {class} {metric} in {e}"))
}

/// Every device in the experiment was exposed to one arm, about half to
/// each (sticky bucketing at 50 %).
fn check_exposure(e: &Value, devices: u64) {
    let ex = e["exposure"].as_array().expect("exposure");
    let n = |k: &str| ex.iter().map(|x| x[k].as_u64().unwrap_or(0)).sum::<u64>();
    let (c, t) = (n("control_devices"), n("treatment_devices"));
    assert_eq!(c + t, devices, "{e}");
    assert!(t * 10 > devices * 4 && t * 10 < devices * 6, "{c} / {t}");
}

#[test]
fn a_treatment_one_class_likes_less_halts_and_loses_its_experiment() {
    let root = temp("worse");
    let f = fleet(&root.0, &["v1", "v2"]);
    let id = create(&f);
    // A second experiment on the same model and channel is refused, as a
    // second rollout is; so is a control that is not the channel's release.
    let (ok, _, err) = text(
        &f,
        &[
            "experiment",
            "create",
            "--control",
            &format!("{M}@v2"),
            "--treatment",
            &format!("{M}@v1"),
            "--metrics",
            "tok_s",
        ],
    );
    assert!(!ok && err.contains("already"), "{err}");
    let mix = mix(&root.0);
    let sim = f.admin(&[
        "simulate",
        "--devices",
        "1000",
        "--mix",
        mix.to_str().expect("utf8"),
        "--regress-class",
        "phone-4gb",
        "--regress-version",
        "v2",
        "--regress-factor",
        "1",
        "--regress-thumbs-down",
        "0.12",
    ]);
    assert!(
        sim["inferences"].as_u64().is_some_and(|n| n > 50_000),
        "{sim}"
    );
    // The fleet's timer halts the rollout; the experiment then says stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    let e = loop {
        let e = f.admin(&["experiment", "status", &id.to_string()]);
        if e["state"] == "halted" {
            break e;
        }
        assert_eq!(e["state"], "running", "{e}");
        assert!(Instant::now() < deadline, "never halted: {e}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(e["decision"], "stop", "{e}");
    let why = e["decision_reason"].as_str().expect("reason");
    assert!(why.contains("halted") && why.contains("phone-4gb"), "{why}");
    check_exposure(&e, 1000);
    // The analysis agrees on its own: worse in phone-4gb, nowhere else.
    let bad = results(&e, "phone-4gb", "thumbs_down_rate");
    assert_eq!(bad["verdict"], "worse", "{bad}");
    assert!(bad["low"].as_f64().is_some_and(|lo| lo > 0.05), "{bad}");
    assert!(bad["high"].as_f64().is_some_and(|hi| hi > 0.10), "{bad}");
    let fine = results(&e, "phone-8gb", "thumbs_down_rate");
    assert_ne!(fine["verdict"], "worse", "{fine}");
    let worse: Vec<&Value> = e["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["verdict"] == "worse")
        .collect();
    assert_eq!(worse.len(), 1, "{worse:?}");
    // The table names it too.
    let (ok, table, _) = text(&f, &["experiment", "status", &id.to_string()]);
    assert!(
        ok && table.contains("decision: stop") && table.contains("INTERVAL"),
        "{table}"
    );
    // Stop: every device goes back to v1 at its next check-in; the
    // analysis is kept as it ended.
    let stopped = f.admin(&[
        "experiment",
        "stop",
        &id.to_string(),
        "--reason",
        "users like v2 less",
    ]);
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert_eq!(stopped["results"], e["results"], "the analysis it ended on");
    let again = f.admin(&["experiment", "status", &id.to_string()]);
    assert_eq!(again["results"], e["results"]);
    let (ok, _, err) = text(&f, &["experiment", "ship", &id.to_string()]);
    assert!(!ok && err.contains("rolled_back"), "{err}");
    let list = f.admin(&["experiment", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let audit = f.admin(&["audit", "--limit", "50"]);
    let actions: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert!(actions.contains(&"experiment.create"), "{actions:?}");
}

#[test]
fn an_identical_treatment_keeps_running_and_ships_on_request() {
    let root = temp("same");
    let f = fleet(&root.0, &["v1", "v2"]);
    let id = create(&f);
    let mix = mix(&root.0);
    f.admin(&[
        "simulate",
        "--devices",
        "1000",
        "--mix",
        mix.to_str().expect("utf8"),
    ]);
    // Give the timer a few ticks to (wrongly) halt it; it must not.
    std::thread::sleep(Duration::from_secs(3));
    let e = f.admin(&["experiment", "status", &id.to_string()]);
    assert_eq!(e["state"], "running", "{e}");
    assert_eq!(e["decision"], "keep_running", "{e}");
    check_exposure(&e, 1000);
    let results = e["results"].as_array().expect("results");
    assert_eq!(results.len(), 10, "2 classes × 5 metrics");
    for r in results {
        assert!(
            r["verdict"] == "inconclusive" || r["verdict"] == "no_data",
            "{r}"
        );
        // Each interval holds 0, the true difference.
        if r["verdict"] == "inconclusive" {
            let (lo, hi) = (
                r["low"].as_f64().expect("lo"),
                r["high"].as_f64().expect("hi"),
            );
            assert!(lo <= 0.0 && hi >= 0.0, "{r}");
        }
    }
    // Crashes: none simulated, so nothing to judge.
    assert_eq!(results_of(&e, "crash_rate"), vec!["no_data", "no_data"]);
    let shipped = f.admin(&["experiment", "ship", &id.to_string()]);
    assert_eq!(shipped["state"], "shipped", "{shipped}");
    let status = f.admin(&["status"]);
    let stable = status["channels"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "stable").cloned())
        .expect("stable");
    assert!(stable.to_string().contains("\"v2\""), "{stable}");
}

fn results_of(e: &Value, metric: &str) -> Vec<String> {
    e["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["metric"] == metric)
        .map(|r| r["verdict"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn experiment_input_errors_name_what_is_wrong() {
    let root = temp("errors");
    let f = fleet(&root.0, &["v1", "v2", "v3"]);
    let cases: &[(&[&str], &str)] = &[
        (&["--split", "100"], "split_percent 100"),
        (&["--metrics", "tok_s,speed"], "unknown metric \"speed\""),
        (&["--metrics", "tok_s,tok_s"], "tok_s is named twice"),
        (&["--where", "os=android"], "device classes only"),
        (&["--alpha", "0.9"], "alpha 0.9"),
    ];
    for (extra, want) in cases {
        let mut args = vec![
            "experiment".to_string(),
            "create".into(),
            "--control".into(),
            format!("{M}@v1"),
            "--treatment".into(),
            format!("{M}@v2"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = text(&f, &a);
        assert!(!ok && err.contains(want), "{extra:?}: {err}");
    }
    let (ok, _, err) = text(
        &f,
        &[
            "experiment",
            "create",
            "--control",
            &format!("{M}@v2"),
            "--treatment",
            &format!("{M}@v3"),
        ],
    );
    assert!(!ok && err.contains("not what channel stable runs"), "{err}");
    let (ok, _, err) = text(&f, &["experiment", "status", "42"]);
    assert!(!ok && err.contains("experiment 42 does not exist"), "{err}");
    // A plain rollout is not an experiment.
    f.admin(&[
        "rollout",
        "create",
        &format!("{M}@v2"),
        "--stages",
        "10,100",
        "--soak",
        "0",
    ]);
    let (ok, _, err) = text(&f, &["experiment", "status", "1"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

#[test]
fn the_economics_report_matches_what_the_simulator_sent() {
    let root = temp("economics");
    let f = fleet(&root.0, &["v1"]);
    let sim = f.admin(&[
        "simulate",
        "--devices",
        "300",
        "--classes",
        "phone-4gb,laptop-16gb",
        "--route-threshold",
        "0.6",
        "--battery-drain",
        "2",
        "--cloud-latency-ms",
        "1200",
    ]);
    let prices = root.0.join("prices.toml");
    std::fs::write(
        &prices,
        "currency = \"EUR\"\n[cloud]\ninput_per_1m_tokens = 0.5\noutput_per_1m_tokens = 1.5\n\
         [battery_mwh]\nphone-4gb = 15000\n",
    )
    .expect("prices");
    let p = prices.to_str().expect("utf8");
    let r = f.admin(&[
        "economics",
        "--prices",
        p,
        "--minutes",
        "60",
        "--what-if",
        "0,0.6,1",
    ]);
    // The simulator's own tallies, priced here.
    let n = |reason: &str, k: &str| sim["routes"][reason][k].as_u64().expect("tally");
    let cost = |reasons: &[&str]| -> f64 {
        reasons
            .iter()
            .map(|r| {
                (n(r, "prompt_tokens") as f64 * 0.5 + n(r, "completion_tokens") as f64 * 1.5) / 1e6
            })
            .sum()
    };
    let close = |a: &Value, b: f64| {
        a.as_f64()
            .is_some_and(|a| (a - b).abs() <= 1e-9 * b.max(1.0))
    };
    let local = n("simple", "requests") + n("sensitive", "requests");
    let cloud = n("complexity", "requests");
    assert!(local > 1000 && cloud > 1000, "{sim}");
    assert_eq!(r["local_requests"].as_u64(), Some(local), "{r}");
    assert_eq!(r["cloud_requests"].as_u64(), Some(cloud), "{r}");
    assert!(close(&r["cloud_spend"], cost(&["complexity"])), "{r}");
    assert!(close(&r["saved"], cost(&["simple", "sensitive"])), "{r}");
    assert_eq!(r["currency"], "EUR");
    // Replays: at the threshold it ran nothing moves; at 1 every request
    // stays on the device; at 0 all but the sensitive go to the cloud.
    let w = |t: f64| {
        r["what_if"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|w| w["complexity_threshold"].as_f64() == Some(t))
            })
            .unwrap_or_else(|| panic!("no what-if at {t}: {r}"))
            .clone()
    };
    assert_eq!(
        (
            w(0.6)["moved_to_cloud"].as_u64(),
            w(0.6)["moved_to_local"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert!(close(&w(0.6)["cloud_spend"], cost(&["complexity"])));
    assert_eq!(w(1.0)["cloud_requests"].as_u64(), Some(0));
    assert_eq!(w(1.0)["moved_to_local"].as_u64(), Some(cloud));
    assert!(close(&w(1.0)["cloud_spend"], 0.0), "{}", w(1.0));
    assert_eq!(
        w(0.0)["local_requests"].as_u64(),
        Some(n("sensitive", "requests"))
    );
    assert!(
        close(&w(0.0)["cloud_spend"], cost(&["simple", "complexity"])),
        "{}",
        w(0.0)
    );
    // Cloud answers at the cloud's latency (1 200 ms ±33 %), and moving
    // everything local is timed at the local prediction: faster here.
    let cohorts = r["cohorts"].as_array().expect("cohorts");
    for c in cohorts {
        let p50 = c["cloud"]["latency_ms_p50"].as_f64().expect("p50");
        assert!((1000.0..1400.0).contains(&p50), "{c}");
    }
    let mean = |w: &Value| w["latency_ms_mean"].as_f64().expect("mean");
    assert!(
        mean(&w(1.0)) < mean(&w(0.6)) && mean(&w(0.6)) < mean(&w(0.0)),
        "{r}"
    );
    // Battery: every point the devices reported losing, and energy where
    // the prices know the class's capacity.
    let drain: u64 = cohorts
        .iter()
        .map(|c| c["battery_drain_pct"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(drain, sim["battery_drain_pct"].as_u64().expect("drain"));
    assert!(drain > 0);
    for c in cohorts {
        let energy = &c["energy_mwh_per_1k_tokens"];
        assert_eq!(energy.is_null(), c["device_class"] != "phone-4gb", "{c}");
    }
    let (ok, table, _) = text(&f, &["economics", "--prices", p, "--what-if", "0.5"]);
    assert!(
        ok && table.contains("cloud spend") && table.contains("as run"),
        "{table}"
    );
    let (ok, _, err) = text(&f, &["economics", "--prices", p, "--what-if", "0.33"]);
    assert!(!ok && err.contains("steps of 0.05"), "{err}");
}
