//! Device public keys (#23): a device registers with its X25519 public key,
//! the fleet keeps it (also across a restart) and shows it to admins; a
//! key that is not one is refused with what was wrong, and a device may
//! still register without one (agents from before sealed models). Content
//! keys go only to entitled, unrevoked devices, wrapped to their key; a
//! sealed release needs its key before it is published, and devices
//! without a key are blocked from it.

mod common;

use base64::Engine as _;
use common::*;
use outpost_seal::wrap::DeviceSecret;
use serde_json::{json, Value};

async fn register_with(t: &TestFleet, public_key: Value) -> (u16, Value) {
    let (s, v) = call(
        t,
        "POST",
        "/v1/devices/register",
        None,
        Some(json!({"app_key": t.fleet.app_key(), "public_key": public_key})),
    )
    .await;
    (s.as_u16(), v)
}

async fn shown_key(t: &TestFleet, id: &str) -> Value {
    admin(t, "GET", &format!("/admin/v1/devices/{id}"), None).await["public_key"].clone()
}

#[tokio::test]
async fn a_device_registers_with_its_public_key_and_the_fleet_keeps_it() {
    let t = open("device-keys").await;
    let secret = DeviceSecret::generate().expect("key");
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret.public().0);
    let (s, v) = register_with(&t, json!(b64)).await;
    assert_eq!(s, 200, "{v}");
    let id = v["device_id"].as_str().expect("id").to_string();
    assert_eq!(shown_key(&t, &id).await, json!(b64));

    let (s, v) = register_with(&t, Value::Null).await;
    assert_eq!(s, 200, "no key is allowed: {v}");
    let old = v["device_id"].as_str().expect("id").to_string();
    assert_eq!(shown_key(&t, &old).await, Value::Null);

    let t = reopened(t).await;
    assert_eq!(
        shown_key(&t, &id).await,
        json!(b64),
        "kept across a restart"
    );
    assert_eq!(shown_key(&t, &old).await, Value::Null);
}

#[tokio::test]
async fn a_key_that_is_not_an_x25519_public_key_is_refused_by_name() {
    let t = open("device-keys-bad").await;
    let devices = admin(&t, "GET", "/admin/v1/devices", None).await["total"].clone();
    for (key, needle) in [
        (json!("not base64!"), "not standard base64"),
        (json!("AAAA"), "32 bytes, this is 3"),
        (json!(7), "invalid type"),
    ] {
        let (s, v) = register_with(&t, key.clone()).await;
        assert!(s == 400 || s == 422, "{key}: {s} {v}");
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            msg.contains(needle),
            "{key}: expected {needle:?} in {msg:?}"
        );
    }
    assert_eq!(
        admin(&t, "GET", "/admin/v1/devices", None).await["total"],
        devices,
        "no device was registered"
    );
}

/// Registers with a fresh key pair; (id, token, secret).
async fn keyed_device(t: &TestFleet) -> (String, String, DeviceSecret) {
    let secret = DeviceSecret::generate().expect("key");
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret.public().0);
    let (s, v) = register_with(t, json!(b64)).await;
    assert_eq!(s, 200, "{v}");
    let id = v["device_id"].as_str().expect("id").to_string();
    let token = v["token"].as_str().expect("token").to_string();
    (id, token, secret)
}

async fn ask(t: &TestFleet, token: &str, digest: &str, nonce: &str) -> (u16, Value) {
    let (s, v) = call(
        t,
        "POST",
        "/v1/content-keys",
        Some(token),
        Some(json!({"digest": digest, "nonce": nonce})),
    )
    .await;
    (s.as_u16(), v)
}

fn opened(v: &Value, secret: &DeviceSecret, nonce: [u8; 16], now: u64) -> Option<[u8; 32]> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let wrapped = outpost_seal::wrap::WrappedKey {
        enc: b64.decode(v["enc"].as_str()?).ok()?.try_into().ok()?,
        ciphertext: b64.decode(v["ciphertext"].as_str()?).ok()?,
    };
    let grant = outpost_seal::wrap::Grant {
        release: v["release"].as_str()?.to_string(),
        digest: v["digest"].as_str()?.to_string(),
        device_id: v["device_id"].as_str()?.to_string(),
        expires_at: v["expires_at"].as_u64()?,
        request_nonce: nonce,
    };
    outpost_seal::wrap::unwrap(&wrapped, secret, &grant, now)
        .ok()
        .map(|k| *k.as_bytes())
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_content_key_goes_only_to_an_entitled_unrevoked_device_wrapped_to_its_key() {
    let t = open("content-keys").await;
    let data = publish(&t, "m", "1.0.0", "0.1.0").await;
    release_on_stable(&t, "m", "1.0.0").await;
    let digest = outpost_protocol::Digest::sha256(&data).to_string();
    let content_key = [7u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    let (a_id, a, a_secret) = keyed_device(&t).await;
    let (_, b, _) = keyed_device(&t).await;
    let (s, v) = register_with(&t, Value::Null).await;
    assert_eq!(s, 200, "{v}");
    let keyless = v["token"].as_str().expect("token").to_string();
    for tok in [&a, &keyless] {
        assert!(!check_in(&t, tok, profile("default"), "m").await["manifest"].is_null());
    }
    let nonce = [3u8; 16];
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();

    // No key set yet: the blob is not sealed as far as the fleet knows.
    let (s, v) = ask(&t, &a, &digest, &hex).await;
    assert_eq!(s, 404, "{v}");
    assert!(message(&v).contains("no content key"), "{v}");
    admin(
        &t,
        "PUT",
        &format!("/admin/v1/content-keys/{digest}"),
        Some(json!({"key": b64.encode(content_key)})),
    )
    .await;

    let (s, v) = ask(&t, &a, &digest, &hex).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["release"], "m@1.0.0");
    assert!(v.get("key").is_none(), "never in the clear: {v}");
    let now = T0;
    assert_eq!(opened(&v, &a_secret, nonce, now), Some(content_key));
    // Bound to this request: the same answer under another nonce (a
    // replay) or after its expiry does not open.
    assert_eq!(opened(&v, &a_secret, [4u8; 16], now), None);
    assert_eq!(opened(&v, &a_secret, nonce, now + 301), None);

    let (s, v) = ask(&t, &b, &digest, &hex).await;
    assert_eq!(s, 403, "not issued that manifest: {v}");
    assert!(message(&v).contains("was not issued"), "{v}");
    let (s, v) = ask(&t, &keyless, &digest, &hex).await;
    assert_eq!(s, 409, "{v}");
    assert!(message(&v).contains("without a public key"), "{v}");
    let (s, v) = ask(&t, &a, &digest, "xyz").await;
    assert_eq!(s, 400, "{v}");
    assert!(message(&v).contains("32 hex digits"), "{v}");
    let (s, _) = ask(&t, "opd_stranger", &digest, &hex).await;
    assert_eq!(s, 401);

    let audit = admin(&t, "GET", "/admin/v1/audit?limit=100", None).await;
    let grants: Vec<&Value> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|r| r["action"] == "content-key.grant")
        .collect();
    assert_eq!(grants.len(), 1, "{audit}");
    assert_eq!(grants[0]["actor"], json!(format!("device/{a_id}")));

    // Revoked: nothing more for this device, also after a restart.
    admin(
        &t,
        "POST",
        &format!("/admin/v1/devices/{a_id}/revoke"),
        None,
    )
    .await;
    let (s, v) = ask(&t, &a, &digest, &hex).await;
    assert_eq!(s, 403, "{v}");
    assert!(message(&v).contains("revoked"), "{v}");
    let t = reopened(t).await;
    let (s, _) = ask(&t, &a, &digest, &hex).await;
    assert_eq!(s, 403, "still revoked after a restart");

    // The key survived the restart; a new device gets it, at most
    // GRANTS_PER_MINUTE times a minute.
    let (_, c, c_secret) = keyed_device(&t).await;
    check_in(&t, &c, profile("default"), "m").await;
    let limit = outpost_fleet::content_keys::GRANTS_PER_MINUTE;
    for i in 0..limit {
        let (s, v) = ask(&t, &c, &digest, &hex).await;
        assert_eq!(s, 200, "request {i}: {v}");
        if i == 0 {
            assert_eq!(opened(&v, &c_secret, nonce, now), Some(content_key));
        }
    }
    let (s, v) = ask(&t, &c, &digest, &hex).await;
    assert_eq!(s, 429, "{v}");
    assert!(message(&v).contains("wait a minute"), "{v}");
}

#[tokio::test]
async fn a_sealed_release_needs_its_key_and_is_blocked_for_devices_without_one() {
    let t = open("sealed-release").await;
    let blob = b"sealed bytes, not a GGUF".repeat(100);
    let digest = outpost_protocol::Digest::sha256(&blob).to_string();
    t.fleet
        .local_store()
        .expect("blobs in a folder")
        .put(None, &blob[..])
        .expect("blob stored");
    // One chunk: header, plaintext, tag.
    let chunk = 4096u32;
    let plain_length =
        (blob.len() - outpost_seal::stream::HEADER_LEN - outpost_seal::stream::TAG_LEN) as u64;
    assert_eq!(
        outpost_seal::stream::sealed_len(chunk, plain_length),
        Some(blob.len() as u64)
    );
    let mut m = meta("m", "1.0.0", &blob, "0.1.0");
    m["variants"][0]["encryption"] = json!({"scheme": "xchacha20poly1305-stream-v1",
        "chunk_size": chunk, "plaintext_digest": outpost_protocol::Digest::sha256(b"plain").to_string(),
        "plaintext_length": plain_length});
    // No content key yet: refused, since no device could open it.
    let (s, v) = call(
        &t,
        "POST",
        "/admin/v1/releases",
        Some(ADMIN),
        Some(m.clone()),
    )
    .await;
    assert_eq!(s.as_u16(), 409, "{v}");
    assert!(message(&v).contains("no content key"), "{v}");
    let b64 = base64::engine::general_purpose::STANDARD;
    admin(
        &t,
        "PUT",
        &format!("/admin/v1/content-keys/{digest}"),
        Some(json!({"key": b64.encode([5u8; 32])})),
    )
    .await;
    admin(&t, "POST", "/admin/v1/releases", Some(m)).await;
    release_on_stable(&t, "m", "1.0.0").await;

    // A device with a key gets the manifest, encryption and all.
    let (_, keyed, _) = keyed_device(&t).await;
    let a = check_in(&t, &keyed, profile("default"), "m").await;
    let payload = b64
        .decode(a["manifest"]["payload"].as_str().expect("payload"))
        .expect("b64");
    let manifest: Value = serde_json::from_slice(&payload).expect("manifest");
    assert_eq!(
        manifest["encryption"]["plaintext_length"],
        json!(plain_length),
        "{manifest}"
    );
    assert_eq!(manifest["variant"]["digest"], json!(digest));

    // One registered without a key is blocked, and told why.
    let (_, v) = register_with(&t, Value::Null).await;
    let keyless = v["token"].as_str().expect("token").to_string();
    let a = check_in(&t, &keyless, profile("default"), "m").await;
    assert!(a["manifest"].is_null(), "{a}");
    let reason = a["blocked"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("sealed") && reason.contains("without a public key"),
        "{a}"
    );
}

#[tokio::test]
async fn a_fleet_that_seals_every_release_refuses_a_plain_one() {
    let dir = TempDir::new("seal-required");
    let clock = std::sync::Arc::new(outpost_fleet::ManualClock::new(T0));
    let mut cfg = config(&dir);
    cfg.admin_token = Some(ADMIN.into());
    cfg.seal_releases = true;
    let fleet = outpost_fleet::Fleet::open(cfg, clock.clone())
        .await
        .expect("fleet");
    let t = TestFleet { fleet, clock, dir };
    let data = gguf("m@1", 4096);
    t.fleet
        .local_store()
        .expect("blobs in a folder")
        .put(None, &data[..])
        .expect("blob");
    let (s, v) = call(
        &t,
        "POST",
        "/admin/v1/releases",
        Some(ADMIN),
        Some(meta("m", "1", &data, "0.1.0")),
    )
    .await;
    assert_eq!(s.as_u16(), 409, "{v}");
    assert!(message(&v).contains("--encrypt"), "{v}");
    let status = admin(&t, "GET", "/admin/v1/status", None).await;
    assert_eq!(
        status["seal_releases"],
        json!(true),
        "the CLI reads its default here"
    );
}
