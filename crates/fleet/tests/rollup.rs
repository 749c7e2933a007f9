//! Telemetry roll-up: per-minute aggregates of hours that ended more than
//! two hours ago are merged into hourly rows; every count and percentile
//! of a window stays what it was, the minute rows left are only the recent
//! ones, a late event for a rolled hour is counted once, and a reopened
//! fleet reads the same from the database. On PostgreSQL (the replicas'
//! path) the roll-up runs in the database and the same holds.

mod common;

use std::collections::BTreeSet;

use common::*;
use outpost_protocol::{Digest, Timestamp};
use serde_json::{json, Value};

const M: &str = "smollm2-135m";
const CLASSES: [&str; 2] = ["phone-8gb", "laptop-16gb"];

fn inference(when: u64, k: u64) -> Value {
    // Latencies spread over 50-1000 ms, every 13th one failing.
    let latency = 50.0 + ((k * 37) % 950) as f64;
    let mut data = json!({"ttft_ms": latency / 10.0, "latency_ms": latency, "tokens": 32,
        "tok_s": 10.0 + (k % 40) as f64});
    if k % 13 == 0 {
        data["error"] = json!("timeout");
    }
    json!({
        "at": Timestamp::from_unix_seconds(when), "model": M, "model_version": "v1",
        "model_digest": Digest::sha256(b"v1").to_string(),
        "engine_version": "0.1.0", "app_version": "2.0.0", "kind": "inference", "data": data
    })
}

async fn send(t: &TestFleet, dev: &(String, String), batch: &str, events: Vec<Value>) {
    let (s, v) = call(
        t,
        "POST",
        "/v1/telemetry",
        Some(&dev.1),
        Some(json!({"batch_id": batch, "device_id": dev.0, "events": events})),
    )
    .await;
    assert!(s.is_success(), "{v}");
    assert_eq!(v["duplicate"], false, "{v}");
}

/// Cohorts over `minutes`, without the distinct-device counts (kept in
/// memory only, so zero after a reopen).
async fn window(t: &TestFleet, minutes: u64) -> Vec<Value> {
    let v = admin(
        t,
        "GET",
        &format!("/admin/v1/cohorts?minutes={minutes}"),
        None,
    )
    .await;
    v.as_array()
        .expect("cohorts")
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["devices"] = Value::Null;
            c
        })
        .collect()
}

#[tokio::test]
async fn a_roll_up_keeps_every_count_and_percentile() {
    let t = open("rollup").await;
    publish(&t, M, "v1", "0.1.0").await;
    release_on_stable(&t, M, "v1").await;
    let mut devices = Vec::new();
    for class in CLASSES {
        let d = register(&t, "stable").await;
        check_in(&t, &d.1, profile(class), M).await;
        devices.push(d);
    }
    // Three hours of events, one every 97 s per device.
    let start = T0 - 3 * 3600;
    let mut cells: BTreeSet<(u64, usize)> = BTreeSet::new();
    for (n, d) in devices.iter().enumerate() {
        let events: Vec<(u64, Value)> = (0..)
            .map(|k| (start + k * 97 + n as u64, k))
            .take_while(|(when, _)| *when <= T0)
            .map(|(when, k)| {
                cells.insert((when / 60, n));
                (when, inference(when, k))
            })
            .collect();
        for (b, chunk) in events.chunks(500).enumerate() {
            let batch = chunk.iter().map(|(_, e)| e.clone()).collect();
            send(&t, d, &format!("b{b}"), batch).await;
        }
    }
    // On PostgreSQL (replicas) every batch went to the database as it came,
    // events past the roll-up age straight into their hours; what this
    // replica shows is refreshed each tick (a flush here).
    let shared = test_postgres().is_some();
    if shared {
        t.fleet.flush_telemetry().await.expect("refresh");
    }
    let all = window(&t, 7 * 60).await;
    let recent = window(&t, 60).await;
    let inferences: u64 = all
        .iter()
        .map(|c| c["inferences"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        inferences,
        (0..)
            .map(|k| start + k * 97)
            .take_while(|w| *w <= T0)
            .count() as u64
            + (0..)
                .map(|k| start + k * 97 + 1)
                .take_while(|w| *w <= T0)
                .count() as u64
    );
    if !shared {
        assert_eq!(t.fleet.telemetry_rows(), (cells.len(), 0));
    }
    // (minute rows, hour rows) once the hours that ended 2 h before `now`
    // are rolled up.
    let rows_at = |now: u64| {
        let rolled_before = (now - 7200) / 3600 * 60;
        let minutes = cells.iter().filter(|(m, _)| *m >= rolled_before).count();
        let hours: BTreeSet<(u64, usize)> = cells
            .iter()
            .filter(|(m, _)| *m < rolled_before)
            .map(|(m, n)| (m / 60, *n))
            .collect();
        (minutes, hours.len())
    };

    // The oldest hour is rolled up in memory; the rest is written as
    // minutes.
    t.fleet.flush_telemetry().await.expect("flush");
    let (minutes, hours) = rows_at(T0);
    assert!(minutes > 0 && hours > 0, "{minutes} {hours}");
    assert_eq!(t.fleet.telemetry_rows(), (minutes, hours));
    assert_eq!(window(&t, 7 * 60).await, all, "same counts and percentiles");
    assert_eq!(window(&t, 60).await, recent);
    // Three hours on, the minutes written before are rolled up too.
    t.clock.advance(3 * 3600);
    t.fleet.flush_telemetry().await.expect("flush");
    let rows = rows_at(T0 + 3 * 3600);
    assert_eq!(rows.0, 0);
    assert_eq!(t.fleet.telemetry_rows(), rows);
    assert_eq!(window(&t, 7 * 60).await, all, "same counts and percentiles");
    // Nothing left to roll: flushing again changes nothing.
    t.fleet.flush_telemetry().await.expect("flush");
    assert_eq!(window(&t, 7 * 60).await, all);

    // A late event for a rolled hour lands in that hour, once.
    let late = inference(T0 - 2 * 3600, 1);
    send(&t, &devices[0], "late", vec![late.clone()]).await;
    let (s, v) = call(
        &t,
        "POST",
        "/v1/telemetry",
        Some(&devices[0].1),
        Some(json!({"batch_id": "late", "device_id": devices[0].0, "events": [late]})),
    )
    .await;
    assert!(s.is_success() && v["duplicate"] == true, "{v}");
    t.fleet.flush_telemetry().await.expect("flush");
    let total = |w: &[Value]| -> u64 {
        w.iter()
            .map(|c| c["inferences"].as_u64().unwrap_or(0))
            .sum()
    };
    let after = window(&t, 7 * 60).await;
    assert_eq!(total(&after), inferences + 1);
    assert_eq!(t.fleet.telemetry_rows(), rows);

    // The database holds the same: hours, the recent minutes, nothing twice.
    let t2 = reopened(t).await;
    assert_eq!(t2.fleet.telemetry_rows(), rows);
    assert_eq!(window(&t2, 7 * 60).await, after);
    t2.fleet.flush_telemetry().await.expect("flush");
    assert_eq!(window(&t2, 7 * 60).await, after);
}
