//! The HTTP API through a real socket (ureq): upload → publish → register →
//! check in → verify the signed manifest with the pinned key → ranged
//! download; and in-process: every auth failure and bad input is a clear
//! 4xx that writes nothing.

mod common;

use std::io::Read;

use common::*;
use outpost_protocol::signing::{self, Keyring, PinnedKey};
use outpost_protocol::{Digest, Timestamp};
use serde_json::{json, Value};

const M: &str = "smollm2-135m";

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().build()
}

fn status_of(r: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match r {
        Ok(resp) => {
            let s = resp.status();
            (s, resp.into_json().unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(s, resp)) => (s, resp.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport: {e}"),
    }
}

#[test]
fn register_check_in_verify_and_download_over_a_socket() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let t = rt.block_on(open("socket"));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let fleet = t.fleet.clone();
    rt.spawn(outpost_fleet::serve(
        listener,
        fleet,
        std::future::pending(),
    ));
    let a = agent();
    let admin_auth = format!("Bearer {ADMIN}");

    // Upload a blob: a wrong digest is refused and nothing is kept.
    let data = gguf("socket", 300_000);
    let digest = Digest::sha256(&data);
    let wrong = Digest::sha256(b"other");
    let (s, v) = status_of(
        a.put(&format!("{base}/admin/v1/blobs/{wrong}"))
            .set("authorization", &admin_auth)
            .send_bytes(&data),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("hashes to")),
        "{v}"
    );
    assert!(t
        .fleet
        .local_store()
        .expect("blobs in a folder")
        .blobs()
        .expect("blobs")
        .is_empty());
    let (s, v) = status_of(
        a.put(&format!("{base}/admin/v1/blobs/{digest}"))
            .set("authorization", &admin_auth)
            .send_bytes(&data),
    );
    assert_eq!(s, 201, "{v}");
    let (s, _) = status_of(
        a.put(&format!("{base}/admin/v1/blobs/{digest}"))
            .set("authorization", &admin_auth)
            .send_bytes(&data),
    );
    assert_eq!(s, 200, "idempotent");

    let (s, v) = status_of(
        a.post(&format!("{base}/admin/v1/releases"))
            .set("authorization", &admin_auth)
            .send_json(meta(M, "2025-06", &data, "0.1.0")),
    );
    assert_eq!(s, 201, "{v}");
    let (s, _) = status_of(
        a.post(&format!("{base}/admin/v1/channels/stable/release"))
            .set("authorization", &admin_auth)
            .send_json(json!({"model": M, "version": "2025-06"})),
    );
    assert_eq!(s, 200);

    // A device registers, pins the fleet's key, checks in.
    let keys: Vec<PinnedKey> = a
        .get(&format!("{base}/v1/keys"))
        .call()
        .expect("keys")
        .into_json()
        .expect("json");
    let ring = Keyring::from_pinned(&keys).expect("ring");
    let (s, reg) = status_of(
        a.post(&format!("{base}/v1/devices/register"))
            .send_json(json!({"app_key": t.fleet.app_key()})),
    );
    assert_eq!(s, 200, "{reg}");
    assert_eq!(reg["channel"], "stable");
    let token = reg["token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 4 + 64, "256-bit token");
    let dev_auth = format!("Bearer {token}");
    let (s, ans) = status_of(
        a.post(&format!("{base}/v1/devices/check-in"))
            .set("authorization", &dev_auth)
            .send_json(json!({"profile": profile("phone-8gb")})),
    );
    assert_eq!(s, 200, "{ans}");
    let entry = &ans["models"][0];
    assert_eq!(entry["source"], "channel");
    let envelope = serde_json::to_vec(&entry["manifest"]).expect("envelope");
    let now = Timestamp::from_unix_seconds(T0);
    let verified =
        signing::verify(&envelope, &ring, now, |_| None).expect("verifies with the pinned key");
    assert_eq!(verified.manifest.variant.digest, digest);
    assert_eq!(verified.manifest.variant.length, data.len() as u64);
    assert_eq!(verified.manifest.device_class, "phone-8gb");
    assert!(verified.manifest.expires_at > now);
    // A tampered payload does not verify.
    let mut bad: Value = entry["manifest"].clone();
    let mut payload = verified.payload.clone();
    payload[10] ^= 1;
    bad["payload"] = json!(base64_encode(&payload));
    let e = signing::verify(&serde_json::to_vec(&bad).expect("json"), &ring, now, |_| {
        None
    })
    .expect_err("tampered");
    assert!(
        matches!(e, signing::VerifyError::BadSignature { .. }),
        "{e}"
    );

    // Ranged download: 206 + Content-Range; resume from the middle.
    let url = format!("{base}/v1/artifacts/{digest}");
    let r = a
        .get(&url)
        .set("authorization", &dev_auth)
        .set("range", "bytes=100000-")
        .call()
        .expect("range");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 100000-299999/300000")
    );
    let mut tail = Vec::new();
    r.into_reader().read_to_end(&mut tail).expect("read");
    assert_eq!(tail, &data[100_000..]);
    let r = a
        .get(&url)
        .set("authorization", &dev_auth)
        .set("range", "bytes=0-9")
        .call()
        .expect("range");
    let mut head = Vec::new();
    r.into_reader().read_to_end(&mut head).expect("read");
    assert_eq!(head, &data[..10]);
    let r = a
        .get(&url)
        .set("authorization", &dev_auth)
        .call()
        .expect("full");
    assert_eq!(
        (r.status(), r.header("accept-ranges")),
        (200, Some("bytes"))
    );
    let mut all = Vec::new();
    r.into_reader().read_to_end(&mut all).expect("read");
    assert_eq!(Digest::sha256(&all), digest);
    for bad in ["bytes=300000-", "bytes=9-3", "bytes=0-1,4-5", "lines=1-2"] {
        let (s, v) = status_of(
            a.get(&url)
                .set("authorization", &dev_auth)
                .set("range", bad)
                .call(),
        );
        assert_eq!(s, 416, "{bad}: {v}");
    }
    let r = a
        .get(&url)
        .set("authorization", &dev_auth)
        .set("range", "bytes=400000-")
        .call();
    match r {
        Err(ureq::Error::Status(416, resp)) => {
            assert_eq!(resp.header("content-range"), Some("bytes */300000"))
        }
        other => panic!("{other:?}"),
    }
    let (s, _) = status_of(a.get(&url).call());
    assert_eq!(s, 401, "downloads need a token");
    let (s, _) = status_of(
        a.get(&format!("{base}/v1/artifacts/{wrong}"))
            .set("authorization", &dev_auth)
            .call(),
    );
    assert_eq!(s, 404);

    // Every answer carries a request id: the client's, or a new one.
    let r = a
        .get(&format!("{base}/health"))
        .set("x-request-id", "fleet-7")
        .call()
        .expect("health");
    assert_eq!(r.header("x-request-id"), Some("fleet-7"));
    let r = a.get(&format!("{base}/health")).call().expect("health");
    assert!(r
        .header("x-request-id")
        .is_some_and(|id| !id.is_empty() && id != "fleet-7"));

    // What happened above, as Prometheus sees it.
    let metrics = a.get(&format!("{base}/metrics")).call().expect("metrics");
    assert!(metrics
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let text = metrics.into_string().expect("text");
    for line in [
        "outpost_fleet_check_ins_total 1\n",
        "outpost_fleet_manifests_served_total 1\n",
        "outpost_fleet_requests_total{endpoint=\"/v1/devices/check-in\",status=\"200\"} 1\n",
        "outpost_fleet_requests_total{endpoint=\"/v1/artifacts/{digest}\",status=\"416\"} 5\n",
        "outpost_fleet_requests_total{endpoint=\"/admin/v1/blobs/{digest}\",status=\"400\"} 1\n",
        "outpost_fleet_request_duration_seconds_count{endpoint=\"/v1/devices/check-in\"} 1\n",
        "# TYPE outpost_fleet_db_query_duration_seconds histogram",
        "outpost_fleet_db_query_duration_seconds_count{op=\"commit\"}",
        "outpost_fleet_db_query_duration_seconds_count{op=\"write_devices\"}",
        "# EOF",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

/// `throttle_bytes_per_s`: a download takes at least LEN/rate (a lower
/// bound, which pacing guarantees) and stays byte-correct, ranges too.
#[test]
fn throttled_downloads_are_paced_and_byte_correct() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = TempDir::new("throttle");
    let rate = 256u64 << 10;
    let mut cfg = config(&dir);
    cfg.admin_token = Some(ADMIN.into());
    cfg.throttle_bytes_per_s = Some(rate);
    let clock = std::sync::Arc::new(outpost_fleet::ManualClock::new(T0));
    let fleet = rt
        .block_on(outpost_fleet::Fleet::open(cfg, clock))
        .expect("fleet opens");
    let data = gguf("throttle", 1_000_000);
    let digest = fleet
        .local_store()
        .expect("blobs in a folder")
        .put(None, &data[..])
        .expect("blob stored");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!(
        "http://{}/v1/artifacts/{digest}",
        listener.local_addr().expect("addr")
    );
    rt.spawn(outpost_fleet::serve(
        listener,
        fleet,
        std::future::pending(),
    ));
    let a = agent();
    let auth = format!("Bearer {ADMIN}");

    let began = std::time::Instant::now();
    let r = a
        .get(&url)
        .set("authorization", &auth)
        .call()
        .expect("full");
    let mut all = Vec::new();
    r.into_reader().read_to_end(&mut all).expect("read");
    let took = began.elapsed().as_secs_f64();
    assert_eq!(Digest::sha256(&all), digest, "byte-correct");
    let floor = data.len() as f64 / rate as f64;
    assert!(
        took >= floor,
        "1 MB at 256 KiB/s took {took:.2} s, under {floor:.2} s"
    );

    let began = std::time::Instant::now();
    let r = a
        .get(&url)
        .set("authorization", &auth)
        .set("range", "bytes=700000-")
        .call()
        .expect("range");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 700000-999999/1000000")
    );
    let mut tail = Vec::new();
    r.into_reader().read_to_end(&mut tail).expect("read");
    let took = began.elapsed().as_secs_f64();
    assert_eq!(tail, &data[700_000..]);
    let floor = 300_000.0 / rate as f64;
    assert!(
        took >= floor,
        "300 kB at 256 KiB/s took {took:.2} s, under {floor:.2} s"
    );
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn auth_failures_are_401_with_a_reason() {
    let t = open("auth").await;
    let (_, token) = register(&t, "stable").await;
    let cases = [
        ("GET", "/admin/v1/status", None, "missing Authorization"),
        (
            "GET",
            "/admin/v1/status",
            Some("wrong-admin-token-xxxxxxxx"),
            "neither the admin token nor a live API token",
        ),
        (
            "GET",
            "/admin/v1/status",
            Some(token.as_str()),
            "neither the admin token nor a live API token",
        ),
        (
            "POST",
            "/v1/devices/check-in",
            None,
            "missing Authorization",
        ),
        ("POST", "/v1/devices/check-in", Some(ADMIN), "not known"),
        (
            "POST",
            "/v1/devices/check-in",
            Some("opd_0000"),
            "not known",
        ),
    ];
    for (method, path, tok, needle) in cases {
        let (s, v) = call(
            &t,
            method,
            path,
            tok,
            Some(json!({"profile": profile("x")})),
        )
        .await;
        assert_eq!(s.as_u16(), 401, "{method} {path} {tok:?}: {v}");
        assert_eq!(v["error"]["code"], "unauthorized");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle)),
            "{needle}: {v}"
        );
    }
    let (s, v) = call(
        &t,
        "POST",
        "/v1/devices/register",
        None,
        Some(json!({"app_key": "opk_nope"})),
    )
    .await;
    assert_eq!(s.as_u16(), 401, "{v}");
    assert_eq!(t.fleet.status().devices, 1, "nothing registered");
}

#[tokio::test]
async fn bad_inputs_are_4xx_and_write_nothing() {
    let t = open("bad").await;
    let data = publish(&t, M, "v1", "0.1.0").await;
    release_on_stable(&t, M, "v1").await;
    let (_, token) = register(&t, "stable").await;
    check_in(&t, &token, profile("phone-8gb"), M).await;
    let status = stable_status(&t).await;
    let audit = audit_len(&t).await;
    let dev = t.fleet.list_devices(None, None, 10, 0);

    let rollout = |edit: fn(&mut Value)| {
        let mut b = json!({"model": M, "version": "v1", "channel": "beta", "stages": [5, 100], "soak_s": 60});
        edit(&mut b);
        b
    };
    let mut bad_profile = profile("phone-8gb");
    bad_profile["device_class"] = json!("a/b");
    let mut unknown_field = profile("phone-8gb");
    unknown_field["gpu"] = json!(true);
    let mut dup = meta(M, "v1", &data, "0.1.0");
    dup["notes"] = json!("again");
    let missing_blob = meta(M, "v9", b"GGUF-not-uploaded", "0.1.0");
    let admin_cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        (
            "POST",
            "/admin/v1/rollouts".into(),
            Some(rollout(|b| b["stages"] = json!([50, 5]))),
            400,
            "rise",
        ),
        (
            "POST",
            "/admin/v1/rollouts".into(),
            Some(rollout(|b| b["version"] = json!("v7"))),
            404,
            "v7",
        ),
        (
            "POST",
            "/admin/v1/rollouts".into(),
            Some(rollout(|b| b["channel"] = json!("nope"))),
            404,
            "nope",
        ),
        (
            "POST",
            "/admin/v1/rollouts".into(),
            Some(rollout(|b| b["speed"] = json!(1))),
            400,
            "unknown field `speed`",
        ),
        (
            "POST",
            "/admin/v1/rollouts".into(),
            Some(rollout(|b| b["model"] = json!("../x"))),
            400,
            "model name",
        ),
        (
            "POST",
            "/admin/v1/rollouts".into(),
            Some(rollout(
                |b| b["target"] = json!({"min_app_version": "2.0.0", "max_app_version": "1.0.0"}),
            )),
            400,
            "above",
        ),
        (
            "POST",
            "/admin/v1/rollouts/99/advance".into(),
            None,
            404,
            "rollout 99",
        ),
        (
            "POST",
            "/admin/v1/rollouts/abc/advance".into(),
            None,
            400,
            "not a number",
        ),
        (
            "POST",
            "/admin/v1/rollouts/1/explode".into(),
            None,
            404,
            "unknown rollout action",
        ),
        (
            "POST",
            "/admin/v1/releases".into(),
            Some(dup),
            409,
            "already exists",
        ),
        (
            "POST",
            "/admin/v1/releases".into(),
            Some(missing_blob),
            400,
            "upload it first",
        ),
        (
            "POST",
            "/admin/v1/releases".into(),
            Some(json!({"model": M})),
            400,
            "missing field",
        ),
        (
            "POST",
            "/admin/v1/channels".into(),
            Some(json!({"name": "Bad Name"})),
            400,
            "channel name",
        ),
        (
            "POST",
            "/admin/v1/channels".into(),
            Some(json!({"name": "beta"})),
            409,
            "already exists",
        ),
        (
            "POST",
            "/admin/v1/channels/nope/release".into(),
            Some(json!({"model": M, "version": "v1"})),
            404,
            "nope",
        ),
        (
            "POST",
            "/admin/v1/devices/dev-x/pins".into(),
            Some(json!({"model": M, "version": "v1"})),
            404,
            "dev-x",
        ),
        (
            "POST",
            "/admin/v1/revoke".into(),
            Some(json!({"model": M, "version": "v1", "reason": ""})),
            400,
            "reason",
        ),
        (
            "POST",
            "/admin/v1/revoke".into(),
            Some(json!({"model": M, "version": "v5", "reason": "x"})),
            404,
            "v5",
        ),
        (
            "POST",
            "/admin/v1/kill-switch".into(),
            Some(json!({"freeze": false, "revoke": [{"model": M, "version": "v1"}]})),
            400,
            "freeze: true",
        ),
        (
            "GET",
            "/admin/v1/devices?limit=abc".into(),
            None,
            400,
            "query string",
        ),
        ("GET", "/admin/v1/nothing".into(), None, 404, "no route"),
        (
            "PUT",
            format!("/admin/v1/blobs/sha256:{}", "A".repeat(64)),
            None,
            400,
            "uppercase",
        ),
    ];
    for (method, path, body, code, needle) in admin_cases {
        let (s, v) = call(&t, method, &path, Some(ADMIN), body).await;
        assert_eq!(s.as_u16(), code, "{method} {path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{method} {path}: expected {needle:?} in {msg:?}"
        );
    }
    type RawCase<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let raw_cases: Vec<RawCase> = vec![
        (
            "/admin/v1/rollouts",
            Some(ADMIN),
            b"{not json".to_vec(),
            400,
            "not valid",
        ),
        (
            "/admin/v1/releases",
            Some(ADMIN),
            vec![b' '; 2 << 20],
            413,
            "too large",
        ),
        (
            "/v1/devices/check-in",
            Some(token.as_str()),
            b"[1,2".to_vec(),
            400,
            "not valid",
        ),
        (
            "/v1/devices/check-in",
            Some(token.as_str()),
            serde_json::to_vec(&json!({"profile": bad_profile})).unwrap_or_default(),
            400,
            "device_class",
        ),
        (
            "/v1/devices/check-in",
            Some(token.as_str()),
            serde_json::to_vec(&json!({"profile": unknown_field})).unwrap_or_default(),
            400,
            "unknown field `gpu`",
        ),
        (
            "/v1/devices/check-in",
            Some(token.as_str()),
            vec![b' '; 100 << 10],
            413,
            "too large",
        ),
        (
            "/v1/devices/register",
            None,
            serde_json::to_vec(&json!({"app_key": t.fleet.app_key(), "channel": "nope"}))
                .unwrap_or_default(),
            400,
            "does not exist",
        ),
        (
            "/v1/devices/register",
            None,
            vec![b'x'; 100 << 10],
            413,
            "too large",
        ),
    ];
    for (path, tok, body, code, needle) in raw_cases {
        let (s, v) = call_raw(&t, "POST", path, tok, body).await;
        assert_eq!(s.as_u16(), code, "{path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{path}: expected {needle:?} in {msg:?}"
        );
    }
    assert_eq!(stable_status(&t).await, status, "nothing changed");
    assert_eq!(audit_len(&t).await, audit, "nothing audited");
    let dev2 = t.fleet.list_devices(None, None, 10, 0);
    assert_eq!(
        serde_json::to_value(&dev2.devices).ok(),
        serde_json::to_value(&dev.devices).ok()
    );
}

/// An admin change whose client hangs up at once still runs to its end
/// (and releases the admin lock): it is not cancelled half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_change_runs_to_its_end_when_the_client_hangs_up() {
    let t = open("hang-up").await;
    for n in 0..5 {
        let fleet = t.fleet.clone();
        let body = json!({"name": format!("hung-{n}")})
            .to_string()
            .into_bytes();
        // Polled once or twice, then dropped, as by a closed connection.
        let call = call_fleet(&fleet, "POST", "/admin/v1/channels", Some(ADMIN), body);
        let _ = tokio::time::timeout(std::time::Duration::from_micros(1), call).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let channels = admin(&t, "GET", "/admin/v1/channels", None).await;
        let hung = channels.as_array().map_or(0, |c| {
            c.iter()
                .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with("hung-")))
                .count()
        });
        if hung == 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{hung} of 5 changes landed: {channels}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The admin lock was released: another change goes through.
    admin(
        &t,
        "POST",
        "/admin/v1/channels",
        Some(json!({"name": "after"})),
    )
    .await;
}
