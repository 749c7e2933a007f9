//! `outpost variants build` end to end on the real models: tiers, merged
//! near-duplicates, quality falling with bits, the report files, and a
//! build killed half-way then run again.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{models_dir, outpost, stderr};
use serde_json::Value;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outpost-variants-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// One build at a time: each runs llama.cpp on every core, and two at once
/// on 2 cores slow each other down many times over.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn build(model: &str, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["variants", "build", model, "--out"];
    let out_s = out.to_string_lossy().into_owned();
    args.push(&out_s);
    args.extend_from_slice(&["-t", "2"]);
    args.extend_from_slice(extra);
    let o = outpost(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(
        &std::fs::read_to_string(out.join("variants.json")).expect("variants.json"),
    )
    .expect("json")
}

fn eval_text() -> PathBuf {
    let p = models_dir().join("eval/lee-background.txt");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        p.display()
    );
    p
}

#[test]
fn smollm2_default_tiers_lose_quality_as_bits_fall() {
    let _turn = turn();
    eval_text();
    let out = out_dir("smol");
    let v = build("smollm2-135m", &out, &["--chunks", "2"]);
    assert_eq!(v["source"]["quantization"], "Q4_1");
    assert_eq!(v["source"]["already_quantized"], true);
    assert_eq!(v["eval"]["scored_tokens"], 2 * 255);
    let tiers = v["tiers"].as_array().expect("tiers");
    assert!(
        tiers.len() >= 5,
        "at least 5 distinct points: {}",
        tiers.len()
    );
    assert!(
        !v["merged"].as_array().expect("merged").is_empty(),
        "K types fall back on 576-wide rows, so some tiers merge"
    );
    for t in tiers {
        let name = t["name"].as_str().expect("name");
        assert!(
            out.join(t["file"].as_str().expect("file")).is_file(),
            "{name} file"
        );
        assert!(t["cost"]["tg128_tps"].as_f64().expect("tg") > 0.0, "{name}");
        assert!(
            t["cost"]["peak_rss_bytes"].as_u64().expect("rss")
                > t["size"].as_u64().expect("size") / 2,
            "{name}: peak RSS"
        );
        assert!(!t["fingerprints"].as_array().expect("fp").is_empty());
        let above_source =
            t["bpw"].as_f64().expect("bpw") >= v["source"]["bpw"].as_f64().expect("src bpw");
        assert_eq!(t["no_quality_gain"].as_bool(), Some(above_source), "{name}");
    }
    for m in v["merged"].as_array().expect("merged") {
        let file = format!("smollm2-135m-{}.gguf", m["tier"].as_str().expect("tier"));
        assert!(!out.join(file).exists(), "merged tier files are removed");
    }
    // On points at least 0.75 bits apart, fewer bits = more divergence.
    // A tier the size of the source re-creates its grid (q4_1 from Q4_1):
    // it is a copy, not a point on the curve.
    let src_size = v["source"]["size"].as_u64().expect("source size");
    let pts: Vec<(f64, f64, f64, &str)> = tiers
        .iter()
        .filter(|t| t["size"].as_u64() != Some(src_size))
        .map(|t| {
            (
                t["bpw"].as_f64().expect("bpw"),
                t["quality"]["kld_mean"].as_f64().expect("kld"),
                t["quality"]["same_top_pct"].as_f64().expect("top"),
                t["name"].as_str().expect("name"),
            )
        })
        .collect();
    let mut compared = 0;
    for a in &pts {
        for b in &pts {
            if a.0 >= b.0 + 0.75 {
                compared += 1;
                assert!(
                    a.1 < b.1,
                    "KLD: {} ({:.2} bpw) {} vs {} ({:.2} bpw) {}",
                    a.3,
                    a.0,
                    a.1,
                    b.3,
                    b.0,
                    b.1
                );
                assert!(a.2 > b.2, "same-top: {} {} vs {} {}", a.3, a.2, b.3, b.2);
            }
        }
    }
    assert!(compared >= 3, "only {compared} comparable pairs: {pts:?}");
    assert_eq!(v["recommendations"].as_array().expect("recs").len(), 4);
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(report.contains("q8_0") && report.contains("quality-vs-size.svg"));
    let svg = std::fs::read_to_string(out.join("quality-vs-size.svg")).expect("svg");
    assert!(svg.contains("<svg"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn gemma3_builds_and_scores_over_its_262k_vocabulary() {
    let _turn = turn();
    let out = out_dir("gemma");
    let v = build(
        "gemma3-270m",
        &out,
        &["--tiers", "q8_0,q4_0", "--chunks", "1"],
    );
    assert_eq!(v["source"]["n_vocab"], 262144);
    let tiers = v["tiers"].as_array().expect("tiers");
    assert_eq!(tiers.len(), 2);
    let kld = |i: usize| tiers[i]["quality"]["kld_mean"].as_f64().expect("kld");
    assert!(kld(0) < kld(1), "q8_0 {} vs q4_0 {}", kld(0), kld(1));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_build_killed_half_way_completes_on_the_next_run() {
    let _turn = turn();
    let tiers = ["--tiers", "q8_0,q5_0,q4_0", "--chunks", "1"];
    let out = out_dir("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["variants", "build", "smollm2-135m", "--out"])
        .arg(&out)
        .args(["-t", "2"])
        .args(tiers)
        .env("OUTPOST_MODELS_DIR", models_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once the first tier exists and before the report does.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.join("smollm2-135m-q8_0.gguf").exists() {
        assert!(Instant::now() < deadline, "no tier after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(!out.join("variants.json").exists(), "killed before the end");
    let resumed = build("smollm2-135m", &out, &tiers);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The same as a build that was never interrupted.
    let clean_out = out_dir("clean");
    let clean = build("smollm2-135m", &clean_out, &tiers);
    for key in ["digest", "size"] {
        let pick = |v: &Value| -> Vec<Value> {
            v["tiers"]
                .as_array()
                .expect("tiers")
                .iter()
                .map(|t| t[key].clone())
                .collect()
        };
        assert_eq!(pick(&resumed), pick(&clean), "{key}");
    }
    let klds = |v: &Value| -> Vec<f64> {
        v["tiers"]
            .as_array()
            .expect("tiers")
            .iter()
            .map(|t| t["quality"]["kld_mean"].as_f64().expect("kld"))
            .collect()
    };
    assert_eq!(klds(&resumed), klds(&clean));
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&clean_out);
}

#[test]
fn bad_inputs_are_refused_with_the_way_out() {
    let out = out_dir("bad");
    let o = outpost(&[
        "variants",
        "build",
        "smollm2-135m",
        "--out",
        &out.to_string_lossy(),
        "--tiers",
        "q8_0,q7_z",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("q7_z") && e.contains("q4_k_m"), "{e}");
    let short = out.with_extension("txt");
    std::fs::write(&short, "Just a few words of text.").expect("write");
    let o = outpost(&[
        "variants",
        "build",
        "smollm2-135m",
        "--out",
        &out.to_string_lossy(),
        "--tiers",
        "q4_0",
        "--eval",
        &short.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("too short") && e.contains("--chunks"), "{e}");
    let _ = std::fs::remove_file(&short);
    let _ = std::fs::remove_dir_all(&out);
}
