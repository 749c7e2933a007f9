//! The chaos test of #21: two `outpost fleet serve` replicas on one
//! PostgreSQL database, `outpost fleet simulate` spreading 10 000 devices
//! over both (a failed request moves to the other replica), and one
//! replica killed with SIGKILL every 3 seconds, alternately, then started
//! again, while a staged rollout (10 → 50 → 100 %, 3 s soak) runs. Every
//! stage advances exactly once (the audit log, the last advance completing
//! it), every telemetry event the
//! simulator was told was taken is counted exactly once by both replicas,
//! and no device runs a release other than the two published. Needs
//! PostgreSQL: `OUTPOST_FLEET_TEST_DB`, or `scripts/ensure-postgres.sh`
//! starts it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet::{free_port, release_dir, Fleet};
use serde_json::Value;

const DEVICES: &str = "10000";
const KEY_FILES: [&str; 4] = ["signing.key", "signing.pub.json", "admin.token", "app.key"];

fn postgres_server() -> String {
    if let Ok(url) = std::env::var("OUTPOST_FLEET_TEST_DB") {
        if !url.is_empty() {
            return url.trim_end_matches('/').to_string();
        }
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/ensure-postgres.sh"
    );
    let out = Command::new(script)
        .output()
        .expect("run scripts/ensure-postgres.sh");
    assert!(
        out.status.success(),
        "PostgreSQL is needed for the chaos test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every `action` audited on `target`.
fn audited(f: &Fleet, action: &str, target: &str) -> usize {
    f.admin(&["audit", "--limit", "1000"])
        .as_array()
        .map_or(0, |a| {
            a.iter()
                .filter(|r| r["action"] == action && r["target"] == target)
                .count()
        })
}

/// Telemetry events over the last day, every cohort of `model`.
fn events_counted(f: &Fleet) -> u64 {
    f.admin(&["cohorts", "--minutes", "1440"])
        .as_array()
        .map_or(0, |a| {
            a.iter().map(|c| c["events"].as_u64().unwrap_or(0)).sum()
        })
}

fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for f in KEY_FILES {
        std::fs::copy(from.join(f), to.join(f)).expect("copy key file");
    }
}

#[test]
fn replicas_killed_during_a_staged_rollout_lose_nothing_and_advance_each_stage_once() {
    let root = std::env::temp_dir().join(format!("outpost-fleet-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("dir");
    let db = format!(
        "{}/outpost_t_chaos_{}",
        postgres_server(),
        std::process::id()
    );
    let args = ["--db", db.as_str()];
    let a = Fleet::start(&root.join("a"), free_port(), &args);
    copy_keys(&a.data, &root.join("b"));
    let b = Fleet::start(&root.join("b"), free_port(), &args);
    a.publish(&release_dir(&root, common::MODEL, "1.0.0"));
    a.release_to_stable("1.0.0");
    a.publish(&release_dir(&root, common::MODEL, "1.1.0"));
    let r = a.admin(&[
        "rollout",
        "create",
        &format!("{}@1.1.0", common::MODEL),
        "--stages",
        "10,50,100",
        "--soak",
        "3s",
    ]);
    let id = r["id"].as_u64().expect("rollout id");
    let (url_a, url_b) = (a.url.clone(), b.url.clone());

    // The simulator, while a replica dies every 3 seconds.
    let done = Arc::new(AtomicBool::new(false));
    let sim = {
        let (done, data) = (done.clone(), a.data.clone());
        std::thread::spawn(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_outpost"))
                .args(["fleet", "simulate", "--devices", DEVICES, "--rounds", "3"])
                .args(["--events", "2", "--threads", "16", "--json"])
                .args(["--url", &url_a, "--also", &url_b, "--data"])
                .arg(&data)
                .stderr(Stdio::piped())
                .output()
                .expect("run the simulator");
            done.store(true, Ordering::SeqCst);
            out
        })
    };
    let mut replicas = [a, b];
    let mut kills = 0;
    let started = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(3));
        if done.load(Ordering::SeqCst) {
            break;
        }
        let victim = &mut replicas[kills % 2];
        victim.restart(&args); // SIGKILL, then the same command again
        kills += 1;
    }
    let out = sim.join().expect("simulator thread");
    assert!(
        out.status.success(),
        "the simulator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sim: Value = serde_json::from_slice(&out.stdout).expect("simulator JSON");
    eprintln!(
        "chaos: {kills} kills in {:.0} s; simulator: {} events, {} answers lost, {} check-ins",
        started.elapsed().as_secs_f64(),
        sim["events"],
        sim["answers_lost"],
        sim["check_ins"]
    );
    assert!(
        kills >= 4,
        "only {kills} kills: the run was too short to test anything"
    );

    // The rollout finishes (replicas running again), each stage once.
    let target = format!("rollout/{id}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = replicas[0].admin(&["rollout", "list"]);
        let r = list
            .as_array()
            .and_then(|l| l.iter().find(|r| r["id"].as_u64() == Some(id)).cloned())
            .expect("the rollout is listed");
        if r["state"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the rollout never finished: {r}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // 10 → 50, 50 → 100, 100 → completed: three soaks, each acted on once.
    assert_eq!(
        audited(&replicas[0], "rollout.advance", &target),
        3,
        "each stage advances once"
    );

    // Every acknowledged event, once, on both replicas (each refreshes its
    // view every tick).
    let sent = sim["events"].as_u64().expect("events");
    assert!(sent >= 10_000 * 3 * 2, "{sim}");
    for r in &replicas {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut counted = events_counted(r);
        while counted != sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            counted = events_counted(r);
        }
        assert_eq!(counted, sent, "events counted by {} vs acknowledged", r.url);
    }
    // Only the two published releases, ever.
    for row in sim["releases"].as_array().expect("releases") {
        let release = row["release"].as_str().unwrap_or("");
        assert!(
            release.ends_with("@1.0.0") || release.ends_with("@1.1.0"),
            "{row}"
        );
    }
    drop(replicas);
    let _ = std::fs::remove_dir_all(&root);
}
