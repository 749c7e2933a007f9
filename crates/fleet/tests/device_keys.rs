//! Device public keys (#23): a device registers with its X25519 public key,
//! the fleet keeps it (also across a restart) and shows it to admins; a
//! key that is not one is refused with what was wrong, and a device may
//! still register without one (agents from before sealed models).

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
