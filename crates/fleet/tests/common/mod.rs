//! Shared helpers of the fleet's integration tests: a fleet in a temp
//! folder with a manual clock, requests through the router in-process, and
//! releases over fake GGUF blobs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use outpost_fleet::meta::ReleaseMeta;
use outpost_fleet::{Fleet, FleetConfig, ManualClock};
use outpost_protocol::Digest;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const T0: u64 = 1_900_000_000;

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "outpost-fleet-{name}-{}-{}",
            std::process::id(),
            Digest::sha256(format!("{:?}", std::time::Instant::now()).as_bytes()).short()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment variable that runs the fleet tests on PostgreSQL: a
/// server URL without a database (`scripts/ensure-postgres.sh` prints
/// one). Unset: SQLite in the temp folder, the default.
pub const TEST_DB_VAR: &str = "OUTPOST_FLEET_TEST_DB";

/// The PostgreSQL server the tests run on, if `OUTPOST_FLEET_TEST_DB` names one.
pub fn test_postgres() -> Option<String> {
    let v = std::env::var(TEST_DB_VAR).ok().filter(|v| !v.is_empty())?;
    assert!(
        v.starts_with("postgres://") || v.starts_with("postgresql://"),
        "{TEST_DB_VAR}={v:?} is not a postgres:// server URL"
    );
    Some(v.trim_end_matches('/').to_string())
}

/// A fleet configuration for the folder `dir`: its SQLite file by default,
/// or a fresh PostgreSQL database named after the folder when
/// `OUTPOST_FLEET_TEST_DB` is set (the same folder opened again finds the
/// same database, as a restarted fleet would).
pub fn config(dir: &TempDir) -> FleetConfig {
    let mut cfg = FleetConfig::new(&dir.0);
    if let Some(server) = test_postgres() {
        let name = Digest::sha256(dir.0.to_string_lossy().as_bytes()).to_string();
        let name = format!("outpost_t_{}", &name["sha256:".len().."sha256:".len() + 24]);
        cfg.db = Some(
            format!("{server}/{name}")
                .parse()
                .expect("test database URL"),
        );
    }
    cfg
}

/// Everything the fleet's database holds, as text: the SQLite file and its
/// write-ahead log, or a `pg_dump` of the PostgreSQL database.
pub fn stored_text(t: &TestFleet) -> String {
    match t.fleet.config().db_url() {
        outpost_fleet::db::DbUrl::Sqlite(path) => {
            let mut hay = String::new();
            for suffix in ["", "-wal"] {
                let f = format!("{}{suffix}", path.display());
                if let Ok(b) = std::fs::read(f) {
                    hay.push_str(&String::from_utf8_lossy(&b));
                }
            }
            hay
        }
        outpost_fleet::db::DbUrl::Postgres(url) => {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", &url])
                .output()
                .expect("pg_dump runs (apt-get install postgresql-client)");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }
}

pub struct TestFleet {
    pub fleet: Arc<Fleet>,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
}

pub async fn open(name: &str) -> TestFleet {
    let dir = TempDir::new(name);
    let clock = Arc::new(ManualClock::new(T0));
    let fleet = reopen(&dir, &clock).await;
    TestFleet { fleet, clock, dir }
}

pub async fn reopen(dir: &TempDir, clock: &Arc<ManualClock>) -> Arc<Fleet> {
    let mut cfg = config(dir);
    cfg.admin_token = Some(ADMIN.into());
    Fleet::open(cfg, clock.clone()).await.expect("fleet opens")
}

/// The same fleet opened again from its folder, as after a restart; the
/// old handle is forgotten so that only the new one removes the folder.
pub async fn reopened(t: TestFleet) -> TestFleet {
    let fleet = reopen(&t.dir, &t.clock).await;
    let t2 = TestFleet {
        fleet,
        clock: t.clock.clone(),
        dir: TempDir(t.dir.0.clone()),
    };
    std::mem::forget(t); // one TempDir removes the folder
    t2
}

/// One request through the router; the body is JSON (or nothing).
pub async fn call(
    t: &TestFleet,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    call_raw(t, method, path, token, bytes).await
}

pub async fn call_raw(
    t: &TestFleet,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    call_fleet(&t.fleet, method, path, token, body).await
}

/// One request through the router of `fleet` (a handle that may move into
/// a spawned task).
pub async fn call_fleet(
    fleet: &Arc<Fleet>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(tok) = token {
        req = req.header("authorization", format!("Bearer {tok}"));
    }
    let req = req.body(Body::from(body)).expect("request");
    let resp = outpost_fleet::router(fleet.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}))
    };
    (status, v)
}

/// Fake GGUF bytes, distinct per tag.
pub fn gguf(tag: &str, len: usize) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    let seed = Digest::sha256(tag.as_bytes());
    while v.len() < len {
        v.extend_from_slice(seed.as_bytes());
    }
    v.truncate(len);
    v
}

/// Release metadata for `model@version` with one variant over `data`.
pub fn meta(model: &str, version: &str, data: &[u8], min_engine: &str) -> Value {
    json!({
        "model": model, "version": version, "min_app_version": "1.0.0",
        "variants": [{
            "digest": Digest::sha256(data).to_string(), "length": data.len(),
            "quantization": "Q4_0", "ggml_types": ["f32", "q4_0"],
            "memory_bytes": 300_000_000u64, "min_engine_version": min_engine,
            "quality": {"kld_mean": 0.05, "same_top_pct": 91.5},
            "fingerprints": [{"prompt": "The capital of France is", "position": 6, "top": [[7042, -0.25], [30, -2.5]]}]
        }],
        "classes": {"default": {"variant": "Q4_0", "n_ctx": 2048, "kv_cache_type": "f16", "threads": 4}}
    })
}

/// Stores the blob and publishes `model@version`.
pub async fn publish(t: &TestFleet, model: &str, version: &str, min_engine: &str) -> Vec<u8> {
    let data = gguf(&format!("{model}@{version}"), 4096);
    t.fleet
        .local_store()
        .expect("blobs in a folder")
        .put(None, &data[..])
        .expect("blob stored");
    let m: ReleaseMeta =
        serde_json::from_value(meta(model, version, &data, min_engine)).expect("meta");
    t.fleet.publish("test", m).await.expect("published");
    data
}

pub fn profile(class: &str) -> Value {
    json!({
        "device_class": class, "ram_bytes": 8_000_000_000u64, "os": "android",
        "app_version": "2.0.0", "engine_version": "0.1.0",
        "ggml_types": ["f32", "f16", "q4_0", "q8_0"], "region": "eu-west",
        "free_disk_bytes": 4_000_000_000u64
    })
}

/// Registers a device on `channel`; returns (id, token).
pub async fn register(t: &TestFleet, channel: &str) -> (String, String) {
    let (s, v) = call(
        t,
        "POST",
        "/v1/devices/register",
        None,
        Some(json!({"app_key": t.fleet.app_key(), "channel": channel})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["device_id"].as_str().expect("id").to_string(),
        v["token"].as_str().expect("token").to_string(),
    )
}

/// Checks in; returns the answer's entry for `model` (or Null).
pub async fn check_in(t: &TestFleet, token: &str, profile: Value, model: &str) -> Value {
    let (s, v) = call(
        t,
        "POST",
        "/v1/devices/check-in",
        Some(token),
        Some(json!({"profile": profile})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["models"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["model"] == model).cloned())
        .unwrap_or(Value::Null)
}

/// The manifest_version inside an assignment's signed envelope.
pub fn manifest_version(assignment: &Value) -> u64 {
    let env: outpost_protocol::SignedManifest =
        serde_json::from_value(assignment["manifest"].clone()).expect("envelope");
    let payload = env.payload_bytes().expect("payload");
    let m: Value = serde_json::from_slice(&payload).expect("manifest json");
    m["manifest_version"].as_u64().expect("version")
}

pub async fn admin(t: &TestFleet, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = call(t, method, path, Some(ADMIN), body).await;
    assert!(s.is_success(), "{method} {path}: {s} {v}");
    v
}

/// `GET /admin/v1/status` without the process's memory, the one part
/// that moves by itself (checked to be there).
/// Makes `model@version` the stable channel's release.
pub async fn release_on_stable(t: &TestFleet, model: &str, version: &str) -> Value {
    admin(
        t,
        "POST",
        "/admin/v1/channels/stable/release",
        Some(serde_json::json!({"model": model, "version": version})),
    )
    .await
}

/// Starts a staged rollout of `model@version` on the stable channel.
pub async fn start_rollout(
    t: &TestFleet,
    model: &str,
    version: &str,
    stages: &[u32],
    soak_s: u64,
) -> Value {
    admin(
        t,
        "POST",
        "/admin/v1/rollouts",
        Some(json!({
            "model": model, "version": version, "channel": "stable", "stages": stages, "soak_s": soak_s
        })),
    )
    .await
}

pub async fn stable_status(t: &TestFleet) -> Value {
    let mut v = admin(t, "GET", "/admin/v1/status", None).await;
    assert!(v["memory"]["peak_rss_bytes"].as_u64() > Some(0), "{v}");
    v["memory"] = Value::Null;
    v
}

pub async fn audit_len(t: &TestFleet) -> usize {
    admin(t, "GET", "/admin/v1/audit?limit=1000", None)
        .await
        .as_array()
        .map_or(0, Vec::len)
}
