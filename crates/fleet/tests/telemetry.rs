//! Telemetry through the router, in-process, with a manual clock: the
//! edge cases of ingest (duplicate, oversized, unknown kind, revoked and
//! unknown releases, clock skew, wrong device), cohorts surviving a
//! reopen, and the automatic halt of a rollout with and without an
//! injected regression.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use outpost_fleet::{Fleet, ManualClock};
use outpost_protocol::{Digest, Timestamp};
use serde_json::{json, Value};

const M: &str = "smollm2-135m";

async fn open_with(name: &str) -> TestFleet {
    let dir = TempDir::new(name);
    let clock = Arc::new(ManualClock::new(T0));
    let fleet = reopen_with(&dir, &clock).await;
    TestFleet { fleet, clock, dir }
}

async fn reopen_with(dir: &TempDir, clock: &Arc<ManualClock>) -> Arc<Fleet> {
    let mut cfg = config(dir);
    cfg.admin_token = Some(ADMIN.into());
    cfg.halt.min_devices = 5;
    cfg.halt.min_inferences = 20;
    Fleet::open(cfg, clock.clone()).await.expect("fleet opens")
}

fn at(secs: u64) -> Value {
    serde_json::to_value(Timestamp::from_unix_seconds(secs)).expect("ts")
}

fn event(version: &str, when: u64, kind: &str, data: Value) -> Value {
    json!({
        "at": at(when), "model": M, "model_version": version,
        "model_digest": Digest::sha256(version.as_bytes()).to_string(),
        "engine_version": "0.1.0", "app_version": "2.0.0", "kind": kind, "data": data
    })
}

fn inference(version: &str, when: u64, latency: f64, tok_s: f64) -> Value {
    event(
        version,
        when,
        "inference",
        json!({"ttft_ms": latency / 10.0, "latency_ms": latency, "tokens": 32, "tok_s": tok_s}),
    )
}

async fn send(
    t: &TestFleet,
    dev: &(String, String),
    batch: &str,
    events: Vec<Value>,
) -> (StatusCode, Value) {
    call(
        t,
        "POST",
        "/v1/telemetry",
        Some(&dev.1),
        Some(json!({"batch_id": batch, "device_id": dev.0, "events": events})),
    )
    .await
}

async fn cohorts(t: &TestFleet) -> Vec<Value> {
    admin(t, "GET", "/admin/v1/cohorts?minutes=60", None)
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn cohort<'a>(cs: &'a [Value], class: &str, version: &str) -> Option<&'a Value> {
    cs.iter()
        .find(|c| c["device_class"] == class && c["model_version"] == version)
}

/// A fleet with v1 on stable and v2 published, one device checked in.
async fn small(name: &str) -> (TestFleet, (String, String)) {
    let t = open_with(name).await;
    publish(&t, M, "v1", "0.1.0").await;
    publish(&t, M, "v2", "0.1.0").await;
    release_on_stable(&t, M, "v1").await;
    let d = register(&t, "stable").await;
    check_in(&t, &d.1, profile("phone-8gb"), M).await;
    (t, d)
}

#[tokio::test]
async fn ingest_edge_cases_have_defined_answers() {
    let (t, d) = small("edges").await;
    let ev = || vec![inference("v1", T0, 400.0, 50.0); 3];

    // Counted once, however often sent.
    let (s, a) = send(&t, &d, "b1", ev()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        (a["accepted"].as_u64(), a["duplicate"].as_bool()),
        (Some(3), Some(false))
    );
    let (s, a) = send(&t, &d, "b1", ev()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        (a["accepted"].as_u64(), a["duplicate"].as_bool()),
        (Some(0), Some(true))
    );
    let cs = cohorts(&t).await;
    let c = cohort(&cs, "phone-8gb", "v1").expect("cohort");
    assert_eq!(
        (c["inferences"].as_u64(), c["devices"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(c["channel"], "stable");

    // Oversized: too many events, or too many bytes → 413, nothing counted.
    let (s, a) = send(&t, &d, "b2", vec![inference("v1", T0, 1.0, 1.0); 1001]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{a}");
    let (s, _) = call_raw(&t, "POST", "/v1/telemetry", Some(&d.1), vec![b' '; 2 << 20]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);

    // Unknown kind → 400 naming it; a bad value → 400 naming the field.
    let (s, a) = send(&t, &d, "b3", vec![event("v1", T0, "telepathy", json!({}))]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(a.to_string().contains("telepathy"), "{a}");
    let mut bad = inference("v1", T0, 1.0, 1.0);
    bad["data"]["tok_s"] = json!(-1.0);
    let (s, a) = send(&t, &d, "b4", vec![bad]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(a.to_string().contains("events[0].data.tok_s"), "{a}");

    // Wrong token, or someone else's device id → 401.
    let (s, _) = send(&t, &(d.0.clone(), "opd_nope".into()), "b5", ev()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = send(&t, &("dev-other".into(), d.1.clone()), "b5", ev()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Clock skew: an hour ahead → counted now; three days old → dropped.
    // A release never published → dropped.
    let (s, a) = send(
        &t,
        &d,
        "b6",
        vec![
            inference("v1", T0 + 3600, 400.0, 50.0),
            inference("v1", T0 - 3 * 86_400, 400.0, 50.0),
            inference("v9", T0, 400.0, 50.0),
            event("v1", T0, "feedback", json!({"signal": "thumbs_up"})),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["accepted"], 2);
    assert_eq!(a["clamped"], 1);
    assert_eq!(a["too_old"], 1);
    assert_eq!(a["unknown_release"], 1);

    // A revoked release still counts, under its own version.
    admin(
        &t,
        "POST",
        "/admin/v1/revoke",
        Some(json!({"model": M, "version": "v2", "reason": "bad"})),
    )
    .await;
    let (s, a) = send(&t, &d, "b7", vec![inference("v2", T0, 900.0, 10.0)]).await;
    assert_eq!((s, a["accepted"].as_u64()), (StatusCode::OK, Some(1)));

    let cs = cohorts(&t).await;
    let c = cohort(&cs, "phone-8gb", "v1").expect("v1");
    assert_eq!(
        (c["inferences"].as_u64(), c["feedback"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(c["events"], 5);
    let c2 = cohort(&cs, "phone-8gb", "v2").expect("revoked v2 counted");
    assert_eq!(c2["inferences"], 1);
    assert!(cohort(&cs, "phone-8gb", "v9").is_none());

    // The same, counted for Prometheus. Events of batches refused with an
    // error count as refused (too many: 1001, a bad value: 1, two wrong
    // tokens: 3 + 3); a body that does not parse has no events to count.
    let text = metrics_text(&t).await;
    for (outcome, n) in [
        ("accepted", 6),
        ("duplicate", 3),
        ("too_old", 1),
        ("unknown_release", 1),
        ("refused", 1008),
    ] {
        let line = format!("outpost_fleet_telemetry_events_total{{outcome=\"{outcome}\"}} {n}\n");
        assert!(text.contains(&line), "{line:?} missing from:\n{text}");
    }

    // Persisted: after a reopen the cohorts and the batch ids are there.
    t.fleet.flush_telemetry().await.expect("flush");
    let fleet = reopen_with(&t.dir, &t.clock).await;
    let t2 = TestFleet {
        fleet,
        clock: t.clock.clone(),
        dir: TempDir(t.dir.0.clone()),
    };
    let again = cohorts(&t2).await;
    let strip = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .map(|c| {
                let mut c = c.clone();
                c["devices"] = json!(0); // counted in memory only
                c
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&cs));
    let (_, a) = send(&t2, &d, "b1", ev()).await;
    assert_eq!(a["duplicate"], true, "batch ids survive a reopen");
    std::mem::forget(t2.dir); // t owns the folder
}

/// 80 devices on stable (half phone-8gb, half phone-4gb) on v1, a rollout
/// of v2 at 50 %; each device reports 10 inferences of what it runs. With
/// `regress`, phone-4gb on v2 is three times slower.
async fn halt_scenario(name: &str, regress: bool) -> (TestFleet, u64) {
    let mut truth: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let t = open_with(name).await;
    publish(&t, M, "v1", "0.1.0").await;
    publish(&t, M, "v2", "0.1.0").await;
    release_on_stable(&t, M, "v1").await;
    let r = start_rollout(&t, M, "v2", &[50, 100], 86_400).await;
    let id = r["id"].as_u64().expect("id");
    for i in 0..80 {
        let class = if i % 2 == 0 { "phone-8gb" } else { "phone-4gb" };
        let d = register(&t, "stable").await;
        let a = check_in(&t, &d.1, profile(class), M).await;
        let v = a["model_version"].as_str().expect("version").to_string();
        *truth.entry((v.clone(), class.to_string())).or_default() += 1;
        let slow = regress && class == "phone-4gb" && v == "v2";
        let events = (0..10)
            .map(|k| {
                let base = 400.0 + f64::from(k) * 10.0;
                if slow {
                    inference(&v, T0, base * 3.0, 15.0)
                } else {
                    inference(&v, T0, base, 50.0)
                }
            })
            .collect();
        let (s, a) = send(&t, &d, &format!("b-{i}"), events).await;
        assert_eq!(s, StatusCode::OK, "{a}");
    }
    // Fragmentation matches what the devices were told.
    let f = admin(&t, "GET", "/admin/v1/fragmentation?stale_days=1", None).await;
    let cells: std::collections::BTreeMap<(String, String), u64> = f["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            assert_eq!(c["channel"], "stable");
            (
                (
                    c["model_version"].as_str().unwrap_or("").to_string(),
                    c["device_class"].as_str().unwrap_or("").to_string(),
                ),
                c["devices"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(cells, truth);
    assert_eq!(
        (f["devices"].as_u64(), f["stale"].as_u64()),
        (Some(80), Some(0))
    );
    let on_v2: u64 = truth
        .iter()
        .filter(|(k, _)| k.0 == "v2")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(f["rollouts"][0]["on_release"].as_u64(), Some(on_v2));
    assert_eq!(f["rollouts"][0]["targeted"], 80);
    t.clock.advance(30);
    t.fleet.tick().await.expect("tick");
    (t, id)
}

#[tokio::test]
async fn a_regressing_class_halts_its_rollout() {
    let (t, id) = halt_scenario("halt", true).await;
    let r = admin(&t, "GET", &format!("/admin/v1/rollouts/{id}"), None).await;
    assert_eq!(r["state"], "paused", "{r}");
    let reason = r["reason"].as_str().expect("reason");
    assert!(
        reason.contains("phone-4gb") && reason.contains("p95 latency"),
        "{reason}"
    );
    let audit = admin(&t, "GET", "/admin/v1/audit?limit=5", None).await;
    let last = &audit[0];
    assert_eq!(
        (&last["actor"], &last["action"]),
        (&json!("auto-halt"), &json!("rollout.pause"))
    );
    assert_eq!(last["detail"]["reason"], reason);
    let text = metrics_text(&t).await;
    for line in [
        "outpost_fleet_rollout_state_changes_total{state=\"active\"} 1\n",
        "outpost_fleet_rollout_state_changes_total{state=\"paused\"} 1\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

/// `GET /metrics`, as text.
async fn metrics_text(t: &TestFleet) -> String {
    let (s, v) = call_raw(t, "GET", "/metrics", None, Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    v["raw"].as_str().expect("text, not JSON").to_string()
}

#[tokio::test]
async fn a_healthy_rollout_is_not_halted() {
    let (t, id) = halt_scenario("healthy", false).await;
    let r = admin(&t, "GET", &format!("/admin/v1/rollouts/{id}"), None).await;
    assert_eq!(r["state"], "active", "{r}");
    // The cohorts were big enough to be judged.
    let cs = cohorts(&t).await;
    let c = cohort(&cs, "phone-4gb", "v2").expect("v2 cohort");
    assert!(c["devices"].as_u64() >= Some(5), "{c}");
    // Moving on: the soak ends and the rollout advances as usual.
    t.clock.advance(86_400);
    t.fleet.tick().await.expect("tick");
    let r = admin(&t, "GET", &format!("/admin/v1/rollouts/{id}"), None).await;
    assert_eq!(r["percent"], 100.0, "{r}");
}

#[tokio::test]
async fn a_release_over_time_comes_in_steps_and_filters() {
    let (t, d) = small("series").await;
    let (s, a) = send(
        &t,
        &d,
        "s1",
        vec![inference("v1", T0 - 1500, 400.0, 50.0); 2],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, a) = send(&t, &d, "s2", vec![inference("v1", T0 - 30, 200.0, 80.0); 3]).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let v = admin(
        &t,
        "GET",
        "/admin/v1/cohorts/series?minutes=30&step=10",
        None,
    )
    .await;
    let line = v
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["model_version"] == "v1")
        .cloned()
        .expect("v1's line");
    let points = line["points"].as_array().expect("points");
    let counts: Vec<u64> = points
        .iter()
        .filter_map(|p| p["inferences"].as_u64())
        .collect();
    assert_eq!(counts, [2, 3], "{line}");
    assert!(
        points[0]["at"].as_str() < points[1]["at"].as_str(),
        "{line}"
    );
    assert!(
        points[1]["tok_s_p50"].as_f64().is_some_and(|x| x > 60.0),
        "{line}"
    );
    let other = admin(
        &t,
        "GET",
        "/admin/v1/cohorts/series?minutes=30&class=phone-4gb",
        None,
    )
    .await;
    assert_eq!(other, json!([]), "another class has none");
    let (s, e) = call(
        &t,
        "GET",
        "/admin/v1/cohorts/series?minutes=30&step=31",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e.to_string().contains("step=31"), "{e}");
}
