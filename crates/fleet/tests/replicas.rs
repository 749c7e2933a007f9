//! Two fleet replicas on one PostgreSQL database (#21), in one process
//! with one manual clock: a device registered on one checks in on the
//! other and keeps its manifest; manifest versions rise per device however
//! it moves between replicas; an admin change on one is seen by the other
//! after its tick; a console session made on one works on the other; the
//! background lease gives soak timers to one replica at a time, so each
//! stage advances exactly once, and the other takes over when the holder
//! stops. Telemetry: a batch sent to both replicas at once is counted
//! once; what was acknowledged is in the database (a replica opened later
//! counts it all); the roll-up into hours happens once and every replica
//! still counts each event once. Without `OUTPOST_FLEET_TEST_DB` the tests
//! start PostgreSQL themselves (`scripts/ensure-postgres.sh`).

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use outpost_fleet::replicas::LEASE_TTL_S;
use outpost_fleet::{Fleet, FleetConfig};
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m";

fn postgres_server() -> String {
    if let Some(url) = test_postgres() {
        return url;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/ensure-postgres.sh"
    );
    let out = std::process::Command::new(script)
        .output()
        .expect("run scripts/ensure-postgres.sh");
    assert!(
        out.status.success(),
        "PostgreSQL is needed for replicas: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A second replica: its own folder with the first one's key files (the
/// signing key, admin token and app key are the fleet's, not a replica's),
/// the same database and clock.
async fn replica_of(a: &TestFleet, db: &str) -> TestFleet {
    let dir = TempDir::new("replica-b");
    for f in std::fs::read_dir(&a.dir.0).expect("dir a").flatten() {
        if f.path().is_file() && !f.file_name().to_string_lossy().starts_with("fleet.db") {
            std::fs::copy(f.path(), dir.0.join(f.file_name())).expect("copy key file");
        }
    }
    let mut cfg = FleetConfig::new(&dir.0);
    cfg.admin_token = Some(ADMIN.into());
    cfg.db = Some(db.parse().expect("db url"));
    let fleet = Fleet::open(cfg, a.clock.clone())
        .await
        .expect("replica opens");
    TestFleet {
        fleet,
        clock: a.clock.clone(),
        dir,
    }
}

async fn advances(t: &TestFleet) -> usize {
    admin(t, "GET", "/admin/v1/audit?limit=1000", None)
        .await
        .as_array()
        .map_or(0, |a| {
            a.iter()
                .filter(|r| r["action"] == "rollout.advance")
                .count()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_devices_admin_changes_sessions_and_background_work() {
    let server = postgres_server();
    let db = format!("{server}/outpost_t_replicas_{}_{}", std::process::id(), T0);
    let dir = TempDir::new("replica-a");
    let clock = Arc::new(outpost_fleet::ManualClock::new(T0));
    let mut cfg = FleetConfig::new(&dir.0);
    cfg.admin_token = Some(ADMIN.into());
    cfg.db = Some(db.parse().expect("db url"));
    let a = TestFleet {
        fleet: Fleet::open(cfg, clock.clone())
            .await
            .expect("replica a opens"),
        clock,
        dir,
    };
    let b = replica_of(&a, &db).await;

    // Admin changes on A; B sees them after its tick.
    publish(&a, MODEL, "v1", "0.1.0").await;
    publish(&a, MODEL, "v2", "0.1.0").await;
    release_on_stable(&a, MODEL, "v1").await;
    let r = start_rollout(&a, MODEL, "v2", &[50, 100], 60).await;
    let id = r["id"].as_u64().expect("rollout id");
    b.fleet.catch_up().await.expect("b catches up");
    let rollouts = admin(&b, "GET", "/admin/v1/rollouts", None).await;
    assert_eq!(rollouts[0]["id"].as_u64(), Some(id), "{rollouts}");
    assert_eq!(rollouts[0]["stage"].as_u64(), Some(0), "{rollouts}");

    // Devices registered on one replica check in on either; versions only
    // rise, whichever replica numbers them.
    let mut devices = Vec::new();
    for i in 0..40 {
        let on = if i % 2 == 0 { &a } else { &b };
        devices.push(register(on, "stable").await);
    }
    let mut last = vec![0u64; devices.len()];
    for round in 0..3 {
        for (i, (_, token)) in devices.iter().enumerate() {
            let on = if (i + round) % 2 == 0 { &b } else { &a };
            let m = check_in(on, token, profile("phone-8gb"), MODEL).await;
            let v = manifest_version(&m);
            assert!(v >= last[i], "device {i}: version {v} after {}", last[i]);
            if round > 0 {
                assert_eq!(v, last[i], "an unchanged assignment keeps its manifest");
            }
            last[i] = v;
        }
    }

    // A device only A has seen is pinned through B (B reads it back).
    let fresh = register(&a, "stable").await;
    let pinned = admin(
        &b,
        "POST",
        &format!("/admin/v1/devices/{}/pins", fresh.0),
        Some(json!({"model": MODEL, "version": "v1"})),
    )
    .await;
    assert!(pinned.to_string().contains("v1"), "{pinned}");

    // One replica holds the background lease; with both ticking past the
    // soak, the stage advances once.
    a.clock.advance(61);
    for _ in 0..3 {
        let (x, y) = tokio::join!(a.fleet.tick(), b.fleet.tick());
        x.expect("a ticks");
        y.expect("b ticks");
    }
    assert_eq!(advances(&a).await, 1, "the first stage advanced once");
    b.fleet.catch_up().await.expect("b catches up");
    let seen = admin(&b, "GET", "/admin/v1/rollouts", None).await;
    assert_eq!(seen[0]["stage"].as_u64(), Some(1), "{seen}");

    // Devices moved by the advance get new manifests, numbered above
    // their last wherever they check in.
    for (i, (_, token)) in devices.iter().enumerate() {
        let on = if i % 3 == 0 { &a } else { &b };
        let m = check_in(on, token, profile("phone-8gb"), MODEL).await;
        let v = manifest_version(&m);
        assert!(v >= last[i], "device {i}: {v} after {}", last[i]);
        assert_eq!(m["model_version"], "v2", "device {i} on the last stage");
        last[i] = v;
    }

    // A stops (no more ticks); once its lease has run out, B takes over
    // and advances the next stage, once.
    a.clock.advance(LEASE_TTL_S + 61);
    // Only B ticks now (A is "stopped"); B may need one tick to take the
    // lease, and A's lease has run out.
    for _ in 0..3 {
        b.fleet.tick().await.expect("b ticks");
    }
    let completed = admin(&b, "GET", "/admin/v1/rollouts", None).await;
    assert_eq!(
        advances(&b).await,
        2,
        "the second stage advanced once: {completed}"
    );
    // A comes back (a stalled replica): it replays B's advance and does
    // nothing twice.
    for _ in 0..3 {
        a.fleet.tick().await.expect("a ticks");
    }
    assert_eq!(advances(&a).await, 2);

    // A console session made on A works on B.
    let (s, v) = call(
        &a,
        "POST",
        "/admin/v1/users",
        Some(ADMIN),
        Some(json!({"name": "rosa", "role": "viewer", "password": "a long enough password"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let login = a
        .fleet
        .login("rosa", "a long enough password", "127.0.0.1", None)
        .await
        .expect("login on a");
    b.fleet.catch_up().await.expect("b catches up");
    let who: Option<Value> = b
        .fleet
        .principal_for_session(&login.cookie)
        .map(|(p, _)| json!({"actor": p.actor, "role": p.role.as_str()}));
    assert_eq!(
        who,
        Some(json!({"actor": "user:rosa", "role": "viewer"})),
        "the session made on A is known to B"
    );
}

/// One telemetry batch of `n` inference events for `model@version`, `ago`
/// seconds before the clock.
fn batch(t: &TestFleet, device: &str, id: &str, n: usize, version: &str, ago: u64) -> Value {
    let at = outpost_protocol::Timestamp::from_unix_seconds(t.fleet.now().unix_seconds() - ago);
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"at": at, "model": MODEL, "model_version": version,
                "model_digest": outpost_protocol::Digest::sha256(version.as_bytes()).to_string(),
                "engine_version": "0.1.0", "app_version": "2.0.0", "kind": "inference",
                "data": {"ttft_ms": 40.0 + i as f64, "latency_ms": 900.0, "tokens": 32, "tok_s": 60.0}})
        })
        .collect();
    json!({"batch_id": id, "device_id": device, "events": events})
}

/// The cohort of `version` over the last `minutes`: (events, devices).
async fn cohort(t: &TestFleet, version: &str, minutes: u64) -> (u64, u64) {
    let v = admin(
        t,
        "GET",
        &format!("/admin/v1/cohorts?minutes={minutes}"),
        None,
    )
    .await;
    v.as_array()
        .and_then(|a| a.iter().find(|c| c["model_version"] == version))
        .map_or((0, 0), |c| {
            (
                c["events"].as_u64().unwrap_or(0),
                c["devices"].as_u64().unwrap_or(0),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_counted_once_in_the_database_and_every_replica_sees_it() {
    let server = postgres_server();
    let db = format!("{server}/outpost_t_repltel_{}_{}", std::process::id(), T0);
    let dir = TempDir::new("repltel-a");
    let clock = Arc::new(outpost_fleet::ManualClock::new(T0));
    let mut cfg = FleetConfig::new(&dir.0);
    cfg.admin_token = Some(ADMIN.into());
    cfg.db = Some(db.parse().expect("db url"));
    let a = TestFleet {
        fleet: Fleet::open(cfg, clock.clone()).await.expect("a opens"),
        clock,
        dir,
    };
    let b = replica_of(&a, &db).await;
    publish(&a, MODEL, "v1", "0.1.0").await;
    release_on_stable(&a, MODEL, "v1").await;
    b.fleet.catch_up().await.expect("b catches up");
    let mut devices = Vec::new();
    for i in 0..20 {
        let on = if i % 2 == 0 { &a } else { &b };
        let d = register(on, "stable").await;
        check_in(on, &d.1, profile("phone-8gb"), MODEL).await;
        devices.push(d);
    }

    // Every device sends its first batch to both replicas at once (as a
    // retry after a lost answer would), and a second one, with an event
    // three hours old (past the roll-up: counted into its hour), to B.
    let mut sends = tokio::task::JoinSet::new();
    for (id, token) in &devices {
        for on in [&a, &b] {
            let (f, token) = (on.fleet.clone(), token.clone());
            let body = batch(on, id, "first", 3, "v1", 5).to_string().into_bytes();
            sends.spawn(async move {
                call_fleet(&f, "POST", "/v1/telemetry", Some(&token), body).await
            });
        }
    }
    let answers = sends.join_all().await;
    let mut duplicates = 0;
    for (s, v) in &answers {
        assert_eq!(*s, StatusCode::OK, "{v}");
        if v["duplicate"] == true {
            duplicates += 1;
            assert_eq!(v["accepted"], 0, "{v}");
        } else {
            assert_eq!(v["accepted"], 3, "{v}");
        }
    }
    assert_eq!(
        duplicates,
        devices.len(),
        "each batch counted by exactly one replica"
    );
    for (id, token) in &devices {
        let mut second = batch(&b, id, "second", 2, "v1", 60);
        let old = batch(&b, id, "x", 1, "v1", 3 * 3600);
        second["events"]
            .as_array_mut()
            .expect("events")
            .push(old["events"][0].clone());
        let (s, v) = call(&b, "POST", "/v1/telemetry", Some(token), Some(second)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["accepted"], 3, "{v}");
    }
    // Acknowledged means stored: a replica opened now (or one restarted
    // after a kill) sees every event, as both running ones do after a tick.
    let c = replica_of(&a, &db).await;
    for r in [&a, &b, &c] {
        r.fleet.tick().await.expect("tick");
        assert_eq!(cohort(r, "v1", 60).await, (20 * 5, 20), "the last hour");
        assert_eq!(
            cohort(r, "v1", 240).await,
            (20 * 6, 20),
            "with the old hour"
        );
    }

    // Three hours on: the minutes are rolled into hours once, and every
    // replica still counts each event once.
    a.clock.advance(3 * 3600);
    for r in [&a, &b, &c, &a] {
        r.fleet.tick().await.expect("tick");
    }
    for r in [&a, &b, &c] {
        assert_eq!(cohort(r, "v1", 420).await, (20 * 6, 20));
        assert_eq!(r.fleet.telemetry_rows().0, 0, "no minute rows left");
    }
    let d = replica_of(&a, &db).await;
    assert_eq!(
        cohort(&d, "v1", 420).await,
        (20 * 6, 20),
        "from the database alone"
    );
}
