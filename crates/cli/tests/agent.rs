//! `outpost agent` end to end, as real processes: a real `outpost fleet
//! serve`, real SmolLM2 tiers, `outpost serve --store` answering with what
//! the agent installed. Rollout, rollback and revoke reach the server;
//! named crash points and 20 random SIGKILLs during a throttled download
//! never leave a bad install and resume without re-fetching; tampered,
//! over-long, forged, older and expired artifacts or manifests are each
//! refused with their own reason; telemetry survives an offline fleet and
//! a crash between send and acknowledgement and is counted once; user
//! feedback counts for the release that gave the answer; a perturbed tier
//! fails its canary and is reverted.

mod common;
#[path = "agent_support/fake_fleet.rs"]
mod fake_fleet;
#[path = "agent_support/fixture.rs"]
mod fixture;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::server::{http, start_models, Stream};
use fixture::*;
use serde_json::{json, Value};

/// The tests here download, hash and run models: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static S: Mutex<()> = Mutex::new(());
    S.lock().unwrap_or_else(|p| p.into_inner())
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "agent failed: {}", text(o));
    text(o)
}

/// The digest of the file that answers a chat request now.
fn answering(port: u16) -> String {
    answer(port).0
}

/// The digest of the file that answers a chat request now, and the
/// answer's id.
fn answer(port: u16) -> (String, String) {
    let (status, body) = http(
        port,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Which city is the capital of France?"}],"max_tokens":8,"temperature":0}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let s = |k: &str| v[k].as_str().expect(k).to_string();
    (s("system_fingerprint"), s("id"))
}

fn count(c: &Value, field: &str) -> u64 {
    c[field].as_u64().unwrap_or(0)
}

#[test]
fn rollout_rollback_and_revoke_reach_the_server_and_its_telemetry_reaches_the_fleet() {
    let _s = serial();
    let root = temp("e2e");
    let fleet = Fleet::start(&root.0.join("fleet"), free_port(), &[]);
    let ((q4, t4), (q8, t8)) = (tier("q4_0"), tier("q8_0"));
    let (d4, d8) = (digest_of(&q4), digest_of(&q8));
    fleet.publish(&release(&root.0, "1.0.0", &q4, &t4));
    fleet.publish(&release(&root.0, "1.1.0", &q8, &t8));
    fleet.release_to_stable("1.0.0");
    let store = root.0.join("device");

    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(out.contains("installed 1.0.0"), "{out}");
    assert_eq!(active(&store), Some(d4.clone()));
    // The device registered with the public half of the key it keeps
    // (mode 0600) for sealed models.
    use outpost_agent::device_key::{DeviceKeyStore, FileKeyStore};
    let public = FileKeyStore::new(&store)
        .load()
        .expect("device key")
        .expect("made at registration")
        .public();
    let devices = fleet.admin(&["devices"]);
    let shown = devices["devices"][0]["public_key"]
        .as_str()
        .expect("a public key");
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(shown)
            .expect("base64"),
        public.0
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.join("device-key.json"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let server = start_models(&[], &["--store", store.to_str().expect("utf8")]);
    let port = server.port;
    let serve_url = format!("http://127.0.0.1:{port}");
    let with_reload = ["--serve-url", serve_url.as_str()];
    let mut on_1_0 = 0u64;
    let mut on_1_1 = 0u64;
    assert_eq!(answering(port), d4);
    on_1_0 += 1;

    // A staged rollout at 100 %: the agent installs 1.1.0 and the server
    // switches while a stream that started on 1.0.0 runs on to its end.
    let r = fleet.admin(&[
        "rollout",
        "create",
        "smollm2-135m@1.1.0",
        "--stages",
        "100",
        "--soak",
        "0",
    ]);
    let id = r["id"].as_u64().expect("rollout id").to_string();
    let mut stream = Stream::open(
        port,
        "/v1/completions",
        r#"{"model":"smollm2-135m","prompt":"1, 2, 3, 4, 5, 6,","max_tokens":120,"temperature":0,"stream":true}"#,
    );
    assert_eq!(stream.status, 200);
    assert!(stream.next_line().is_some(), "the stream started");
    let out = ok(&run(agent(&fleet, &store, &with_reload, &[])));
    assert!(out.contains("installed 1.1.0"), "{out}");
    let mut last = String::new();
    while let Some(l) = stream.next_line() {
        if l.contains("finish_reason\":\"") {
            last = l;
        }
    }
    assert!(
        last.contains("\"finish_reason\":\"length\""),
        "the in-flight stream ran to its end on the old model: {last}"
    );
    assert!(
        last.contains(&d4),
        "the in-flight stream kept its model: {last}"
    );
    on_1_0 += 1;
    assert_eq!(active(&store), Some(d8.clone()));
    assert_eq!(answering(port), d8, "new requests get the new model");
    on_1_1 += 1;

    // Rollback: the previous version comes back without a download.
    fleet.admin(&["rollout", "rollback", &id]);
    let out = ok(&run(agent(&fleet, &store, &with_reload, &[])));
    assert!(
        out.contains("installed 1.0.0") && out.contains(" 0 bytes downloaded"),
        "{out}"
    );
    assert_eq!(answering(port), d4);
    on_1_0 += 1;

    // Revoke: devices on 1.1.0 fall back to 1.0.0.
    fleet.release_to_stable("1.1.0");
    let out = ok(&run(agent(&fleet, &store, &with_reload, &[])));
    assert!(out.contains("installed 1.1.0"), "{out}");
    let (on, answer_1_1) = answer(port);
    assert_eq!(on, d8);
    on_1_1 += 1;
    fleet.admin(&["revoke", "smollm2-135m@1.1.0", "--reason", "agent test"]);
    let out = ok(&run(agent(&fleet, &store, &with_reload, &[])));
    assert!(out.contains("installed 1.0.0"), "{out}");
    assert_eq!(answering(port), d4);
    on_1_0 += 1;

    // Feedback on the 1.1.0 answer counts for 1.1.0, though 1.0.0 serves
    // now: a vote once (again: not counted; the other vote: 409), a
    // regeneration once; an id the server never gave: 404.
    for (id, signal, status, counted) in [
        (answer_1_1.as_str(), "thumbs_down", 200, Some(true)),
        (answer_1_1.as_str(), "thumbs_down", 200, Some(false)),
        (answer_1_1.as_str(), "thumbs_up", 409, None),
        (answer_1_1.as_str(), "regenerate", 200, Some(true)),
        ("chatcmpl-never", "thumbs_up", 404, None),
    ] {
        let body = json!({"id": id, "signal": signal, "reason": "inaccurate"}).to_string();
        let (got, text) = http(port, "POST", "/v1/feedback", &body, None);
        assert_eq!(got, status, "{signal} on {id}: {text}");
        if let Some(c) = counted {
            let v: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(v["counted"], c, "{text}");
        }
    }

    // Every request's inference event reached the fleet, under the release
    // that answered it; installs and canaries too.
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(out.contains("nothing to do"), "{out}");
    let (c0, c1) = (fleet.cohort("1.0.0"), fleet.cohort("1.1.0"));
    assert_eq!(
        (count(&c0, "inferences"), count(&c1, "inferences")),
        (on_1_0, on_1_1),
        "{c0}\n{c1}"
    );
    assert_eq!(
        (count(&c0, "installs"), count(&c1, "installs")),
        (3, 2),
        "{c0}\n{c1}"
    );
    assert!(
        count(&c0, "canary_runs") >= 1 && count(&c0, "canary_fails") == 0,
        "{c0}"
    );
    assert_eq!(
        (
            count(&c1, "thumbs_down"),
            count(&c1, "regenerates"),
            count(&c1, "feedback")
        ),
        (1, 1, 2),
        "{c1}"
    );
    assert_eq!(count(&c0, "feedback"), 0, "{c0}");
    drop(server);
}

#[test]
fn a_perturbed_tier_fails_its_canary_is_reverted_and_the_fleet_sees_it() {
    let _s = serial();
    let root = temp("canary");
    let fleet = Fleet::start(&root.0.join("fleet"), free_port(), &[]);
    let (q4, t4) = tier("q4_0");
    let bad = perturbed(&root.0, &q4);
    fleet.publish(&release(&root.0, "1.0.0", &q4, &t4));
    fleet.publish(&release(&root.0, "1.2.0", &bad, &t4));
    fleet.release_to_stable("1.0.0");
    let store = root.0.join("device");
    ok(&run(agent(&fleet, &store, &[], &[])));
    fleet.release_to_stable("1.2.0");
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(
        out.contains("1.2.0 failed its canary") && out.contains("reverted"),
        "{out}"
    );
    assert_eq!(
        active(&store),
        Some(digest_of(&q4)),
        "the good version is back"
    );
    // The same manifest is not installed again.
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(
        out.contains("waiting") && out.contains("failed its canary here"),
        "{out}"
    );
    assert_eq!(active(&store), Some(digest_of(&q4)));
    let c = fleet.cohort("1.2.0");
    assert_eq!(
        (count(&c, "canary_runs"), count(&c, "canary_fails")),
        (1, 1),
        "{c}"
    );
    assert_eq!(
        count(&c, "install_failures"),
        1,
        "the revert is reported: {c}"
    );
    let good = fleet.cohort("1.0.0");
    assert_eq!(
        (count(&good, "canary_runs"), count(&good, "canary_fails")),
        (1, 0),
        "{good}"
    );
}

/// A fleet in `root` (started with `extra`) with SmolLM2's q4_0 tier
/// published as 1.0.0 and released to stable; the tier's file and entry.
fn fleet_on_q4(root: &Dir, extra: &[&str]) -> (Fleet, PathBuf, Value) {
    let fleet = Fleet::start(&root.0.join("fleet"), free_port(), extra);
    let (q4, t4) = tier("q4_0");
    fleet.publish(&release(&root.0, "1.0.0", &q4, &t4));
    fleet.release_to_stable("1.0.0");
    (fleet, q4, t4)
}

#[test]
fn telemetry_waits_out_an_offline_fleet_and_a_lost_ack_and_counts_once() {
    let _s = serial();
    let root = temp("offline");
    let (mut fleet, _, _) = fleet_on_q4(&root, &[]);
    let store = root.0.join("device");
    ok(&run(agent(&fleet, &store, &["--no-canary"], &[])));
    let server = start_models(&[], &["--store", store.to_str().expect("utf8")]);
    answering(server.port);

    // The fleet goes away; the device keeps answering and buffering.
    fleet.stop();
    for _ in 0..3 {
        answering(server.port);
    }
    let o = run(agent(&fleet, &store, &["--no-canary"], &[]));
    assert!(
        !o.status.success() && text(&o).contains("could not be reached"),
        "{}",
        text(&o)
    );
    let status = common::outpost(&["agent", "status", "--store", store.to_str().expect("utf8")]);
    assert!(
        common::stdout(&status).contains("4 events waiting"),
        "{}",
        common::stdout(&status)
    );

    // Back online: the first send is counted but the agent dies before
    // it deletes the batch; the resend carries the same id.
    fleet.restart(&[]);
    let o = run(agent(
        &fleet,
        &store,
        &["--no-canary"],
        &[("OUTPOST_CRASH_AT", "telemetry-before-ack")],
    ));
    assert!(
        !o.status.success() && text(&o).contains("telemetry-before-ack"),
        "{}",
        text(&o)
    );
    assert_eq!(count(&fleet.cohort("1.0.0"), "inferences"), 4);
    let out = ok(&run(agent(&fleet, &store, &["--no-canary"], &[])));
    assert!(out.contains("telemetry: 4 events sent"), "{out}");
    assert_eq!(
        count(&fleet.cohort("1.0.0"), "inferences"),
        4,
        "counted once"
    );
    let out = ok(&run(agent(&fleet, &store, &["--no-canary"], &[])));
    assert!(out.contains("telemetry: 0 events sent"), "{out}");
    let status = common::outpost(&["agent", "status", "--store", store.to_str().expect("utf8")]);
    assert!(
        common::stdout(&status).contains("0 events waiting, 0 dropped"),
        "{}",
        common::stdout(&status)
    );
    drop(server);
}

/// The partial download of `digest` in `store`, in bytes (0 if none).
fn partial(store: &Path, digest: &str) -> u64 {
    std::fs::metadata(store.join("partial").join(digest.replace(':', "-"))).map_or(0, |m| m.len())
}

fn blob_present(store: &Path, digest: &str) -> bool {
    store.join("blobs").join(digest.replace(':', "-")).is_file()
}

#[test]
fn named_crash_points_never_leave_a_bad_install() {
    let _s = serial();
    let root = temp("crash");
    let (mut fleet, q4, t4) = fleet_on_q4(&root, &["--throttle-bytes-per-s", "5000000"]);
    let (q8, t8) = tier("q8_0");
    let d4 = digest_of(&q4);
    let store = root.0.join("device");
    let crash = |fleet: &Fleet, point: &str| {
        let o = run(agent(
            fleet,
            &store,
            &["--no-canary"],
            &[("OUTPOST_CRASH_AT", point)],
        ));
        assert!(
            !o.status.success(),
            "{point}: the agent should have crashed: {}",
            text(&o)
        );
        assert!(
            text(&o).contains(&format!("crashing at {point}")),
            "{point}: {}",
            text(&o)
        );
        std::fs::read_dir(store.join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    crash(&fleet, "download=20000000");
    assert_eq!(active(&store), None);
    assert!(
        partial(&store, &d4) >= 20_000_000,
        "the downloaded bytes are kept"
    );
    crash(&fleet, "install-before-rename");
    assert_eq!(active(&store), None);
    assert!(
        !blob_present(&store, &d4)
            && partial(&store, &d4) == std::fs::metadata(&q4).expect("q4").len()
    );
    crash(&fleet, "install-after-rename");
    assert_eq!(active(&store), None);
    assert!(blob_present(&store, &d4) && partial(&store, &d4) == 0);
    crash(&fleet, "activate-before-rename");
    assert_eq!(
        active(&store),
        None,
        "the pointer is old or new, never torn"
    );
    let out = ok(&run(agent(&fleet, &store, &["--no-canary"], &[])));
    assert!(
        out.contains("installed 1.0.0") && out.contains(" 0 bytes downloaded"),
        "{out}"
    );
    assert_eq!(active(&store), Some(d4.clone()));

    // GC killed half-way: 1.0.0 becomes unreferenced when 1.2.0 replaces 1.1.0.
    fleet.restart(&[]);
    let bad = perturbed(&root.0, &q4);
    fleet.publish(&release(&root.0, "1.1.0", &q8, &t8));
    fleet.publish(&release(&root.0, "1.2.0", &bad, &t4));
    fleet.release_to_stable("1.1.0");
    ok(&run(agent(&fleet, &store, &["--no-canary"], &[])));
    fleet.release_to_stable("1.2.0");
    crash(&fleet, "gc-midway");
    let dp = digest_of(&bad);
    assert_eq!(active(&store), Some(dp.clone()));
    assert!(
        blob_present(&store, &digest_of(&q8)),
        "the previous version is kept"
    );
    let out = ok(&run(agent(&fleet, &store, &["--no-canary"], &[])));
    assert!(out.contains("1.2.0 is installed, nothing to do"), "{out}");
    assert!(!blob_present(&store, &d4), "GC finished on the next run");
}

/// A TCP proxy to `to` that counts the bytes coming back from it.
struct Proxy {
    port: u16,
    down: Arc<AtomicU64>,
}

fn proxy(to: u16) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let down = Arc::new(AtomicU64::new(0));
    let d = down.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let (Ok(client), Ok(up)) = (c, TcpStream::connect(("127.0.0.1", to))) else {
                continue;
            };
            let (mut c_in, mut up_out) = (
                client.try_clone().expect("clone"),
                up.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut up_out);
                let _ = up_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut up_in, mut c_out, d) = (up, client, d.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = up_in.read(&mut buf) {
                    if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    d.fetch_add(n as u64, Ordering::Relaxed);
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    Proxy { port, down }
}

#[test]
fn twenty_random_kills_during_a_throttled_download_resume_without_refetching() {
    let _s = serial();
    let root = temp("kills");
    let (fleet, q4, _) = fleet_on_q4(&root, &["--throttle-bytes-per-s", "5000000"]);
    let (d4, len) = (digest_of(&q4), std::fs::metadata(&q4).expect("q4").len());
    let p = proxy(fleet.port);
    let url = format!("http://127.0.0.1:{}", p.port);
    let store = root.0.join("device");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    while kills < 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut c = agent_at(&url, &fleet.data, &store, &["--no-canary"], &[]);
        let mut child = c
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn agent");
        std::thread::sleep(Duration::from_millis(300 + x % 700));
        match child.try_wait().expect("wait") {
            Some(_) => break, // finished before the kill
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                kills += 1;
            }
        }
        // After every kill: nothing or the right model is active, and the
        // partial never holds more than the blob.
        assert!(active(&store).is_none() || active(&store) == Some(d4.clone()));
        assert!(partial(&store, &d4) <= len);
    }
    assert!(
        kills >= 20,
        "only {kills} kills landed before the download finished"
    );
    let out = ok(&run(agent_at(
        &url,
        &fleet.data,
        &store,
        &["--no-canary"],
        &[],
    )));
    assert!(
        out.contains("installed 1.0.0") || out.contains("nothing to do"),
        "{out}"
    );
    assert_eq!(active(&store), Some(d4));
    let down = p.down.load(Ordering::Relaxed);
    let extra = down.saturating_sub(len) as f64 / len as f64;
    println!("{kills} kills: {down} bytes came from the fleet for a {len}-byte blob ({:.3} % more, headers and check-ins included)", extra * 100.0);
    assert!(
        extra < 0.05,
        "re-fetched {:.2} % of the blob",
        extra * 100.0
    );
}

#[test]
fn tampered_and_over_long_artifacts_are_refused_and_reported() {
    let _s = serial();
    let root = temp("tamper");
    let (fleet, q4, _) = fleet_on_q4(&root, &[]);
    let d4 = digest_of(&q4);
    let served = fleet
        .data
        .join("store")
        .join("blobs")
        .join(d4.replace(':', "-"));
    let original = std::fs::read(&served).expect("the fleet's copy");
    let store = root.0.join("device");

    let mut tampered = original.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x5a;
    std::fs::write(&served, &tampered).expect("tamper");
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(
        out.contains("rejected (download-mismatch)") && out.contains("hash to"),
        "{out}"
    );
    assert_eq!(active(&store), None, "nothing installed");
    assert_eq!(partial(&store, &d4), 0, "the bad bytes are gone");

    let mut longer = original.clone();
    longer.extend_from_slice(b"trailing bytes");
    std::fs::write(&served, &longer).expect("lengthen");
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(
        out.contains("rejected (download-mismatch)") && out.contains("more than the"),
        "{out}"
    );
    assert_eq!(active(&store), None);

    std::fs::write(&served, &original).expect("restore");
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(out.contains("installed 1.0.0"), "{out}");
    assert_eq!(active(&store), Some(d4));
    let c = fleet.cohort("1.0.0");
    assert_eq!(
        (count(&c, "install_failures"), count(&c, "installs")),
        (2, 1),
        "{c}"
    );
}

fn manifest(version: u64, digest: &str, length: u64, expires: &str, canaries: &Value) -> Value {
    json!({"manifest_version": version, "key_id": "fleet-test", "expires_at": expires,
        "model": MODEL, "model_version": format!("v{version}"), "device_class": "desktop-32GB",
        "variant": {"digest": digest, "length": length, "quantization": "q4_0"},
        "runtime": {"n_ctx": 2048, "kv_cache_type": "f16", "threads": null},
        "requires": {"min_app_version": "0.1.0", "min_engine_version": "0.1.0", "ggml_types": ["f32", "q4_0"]},
        "canaries": canaries, "encryption": null})
}

fn signed(m: &Value, key: &ed25519_dalek::SigningKey) -> Value {
    let env = outpost_protocol::signing::sign(m.to_string().as_bytes(), "fleet-test", key);
    serde_json::to_value(env).expect("envelope")
}

#[test]
fn forged_older_and_expired_manifests_are_each_refused_with_their_reason() {
    let _s = serial();
    let root = temp("forged");
    let fake = fake_fleet::FakeFleet::start();
    let (q4, t4) = tier("q4_0");
    let (d4, len) = (digest_of(&q4), std::fs::metadata(&q4).expect("q4").len());
    let (trusted, other) = (
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
    );
    let good = signed(
        &manifest(10, &d4, len, "2099-01-01T00:00:00Z", &t4["fingerprints"]),
        &trusted,
    );
    let data = root.0.join("keys");
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(data.join("app.key"), "app").expect("key");
    std::fs::write(
        data.join("signing.pub.json"),
        json!({"key_id": "fleet-test", "public_key": good["public_key"]}).to_string(),
    )
    .expect("pin");
    {
        let mut s = fake.script.lock().expect("script");
        s.blobs.insert(d4.clone(), std::fs::read(&q4).expect("q4"));
        s.envelope = good;
    }
    let store = root.0.join("device");
    let once = || run(agent_at(&fake.url, &data, &store, &["--no-canary"], &[]));
    let out = ok(&once());
    assert!(out.contains("installed v10"), "{out}");

    let other_digest = "sha256:".to_string() + &"ab".repeat(32);
    let newer = manifest(
        11,
        &other_digest,
        1000,
        "2099-01-01T00:00:00Z",
        &t4["fingerprints"],
    );
    let mut altered = signed(&newer, &trusted);
    altered["payload"] = signed(
        &manifest(
            12,
            &other_digest,
            1000,
            "2099-01-01T00:00:00Z",
            &t4["fingerprints"],
        ),
        &trusted,
    )["payload"]
        .clone();
    let cases = [
        ("signed by another key", signed(&newer, &other), "wrong-key"),
        (
            "payload swapped under a signature",
            altered,
            "bad-signature",
        ),
        (
            "an older version",
            signed(
                &manifest(
                    5,
                    &other_digest,
                    1000,
                    "2099-01-01T00:00:00Z",
                    &t4["fingerprints"],
                ),
                &trusted,
            ),
            "older-version",
        ),
        (
            "expired",
            signed(
                &manifest(
                    13,
                    &other_digest,
                    1000,
                    "2020-01-01T00:00:00Z",
                    &t4["fingerprints"],
                ),
                &trusted,
            ),
            "expired",
        ),
    ];
    for (what, env, code) in cases {
        fake.script.lock().expect("script").envelope = env;
        let out = ok(&once());
        assert!(out.contains(&format!("rejected ({code})")), "{what}: {out}");
        assert_eq!(
            active(&store),
            Some(d4.clone()),
            "{what}: the installed model stays"
        );
        assert!(
            !blob_present(&store, &other_digest) && partial(&store, &other_digest) == 0,
            "{what}: nothing downloaded"
        );
    }
}

#[test]
fn run_outlasts_an_offline_fleet_and_keeps_download_conditions_and_the_cap() {
    use std::io::BufRead;
    let _s = serial();
    let root = temp("run");
    let (mut fleet, q4, _) = fleet_on_q4(&root, &[]);
    let len = std::fs::metadata(&q4).expect("q4").len();
    fleet.stop();
    let store = root.0.join("device");
    let metered = root.0.join("metered.toml");
    std::fs::write(&metered, "unmetered = false\n").expect("profile");
    let c = agent(
        &fleet,
        &store,
        &["--no-canary", "--require-unmetered", "--max-interval", "1"],
        &[],
    );
    let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(
            args.iter()
                .map(|a| if a == "once" { "run".into() } else { a.clone() }),
        )
        .arg("--profile")
        .arg(&metered)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn agent run");
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    let wait_for = |what: &str, secs: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while let Ok(l) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if l.contains(what) {
                return;
            }
            seen.push(l);
        }
        panic!(
            "no line with {what:?} within {secs} s; saw:\n{}",
            seen.join("\n")
        );
    };
    wait_for("registration failed", 20);
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the agent keeps trying"
    );
    fleet.restart(&[]);
    wait_for("downloads only on an unmetered network", 60);
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert_eq!(
        active(&store),
        None,
        "nothing downloaded on a metered network"
    );

    // A 20 MB/s cap: the download cannot take less than len / 20 MB.
    let started = std::time::Instant::now();
    let out = ok(&run(agent(
        &fleet,
        &store,
        &["--no-canary", "--bandwidth", "20MB"],
        &[],
    )));
    let secs = started.elapsed().as_secs_f64();
    assert!(out.contains("installed 1.0.0"), "{out}");
    assert!(
        secs >= len as f64 / 20e6 * 0.95,
        "{len} bytes in {secs:.2} s under a 20 MB/s cap"
    );
}
