//! Apps and the overview's "online" (#22), through the router: an app key
//! belongs to an app and its devices are offered only that app's models; a
//! model keeps the app of its first release; a device is never pinned to
//! another app's release; an API token scoped to apps is refused (403) on
//! every route of the role table that changes one app's things when the
//! target is another app's (the routes enumerated from `ADMIN_ROUTES`, so a
//! new one needs a case here) and on every fleet-wide change, changes
//! nothing while refused, may change its own app's things, and all of it
//! survives a restart. "Online" counts devices that checked in within two
//! check-in intervals.

mod common;

use axum::http::StatusCode;
use common::*;
use outpost_fleet::access::{Reach, ADMIN_ROUTES};
use outpost_fleet::meta::ReleaseMeta;
use serde_json::{json, Value};

/// Stores a blob and publishes `model@version` for `app`.
async fn publish_for(t: &TestFleet, app: &str, model: &str, version: &str) -> Value {
    let data = gguf(&format!("{app}/{model}@{version}"), 4096);
    t.fleet
        .local_store()
        .expect("blobs in a folder")
        .put(None, &data[..])
        .expect("blob stored");
    let mut m = meta(model, version, &data, "0.1.0");
    m["app"] = json!(app);
    let parsed: ReleaseMeta = serde_json::from_value(m.clone()).expect("meta");
    t.fleet.publish("test", parsed).await.expect("published");
    m
}

/// Registers a device with `app_key` on `channel`: (id, token).
async fn register_with(t: &TestFleet, app_key: &str, channel: &str) -> (String, String) {
    let (s, v) = call(
        t,
        "POST",
        "/v1/devices/register",
        None,
        Some(json!({"app_key": app_key, "channel": channel})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["device_id"].as_str().expect("id").to_string(),
        v["token"].as_str().expect("token").to_string(),
    )
}

/// The models a device is offered at a check-in.
async fn offered(t: &TestFleet, token: &str) -> Vec<String> {
    let (s, v) = call(
        t,
        "POST",
        "/v1/devices/check-in",
        Some(token),
        Some(json!({"profile": profile("phone-8gb")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["model"].as_str().expect("model").to_string())
        .collect()
}

#[tokio::test]
async fn online_means_checked_in_within_two_intervals() {
    let t = open("online").await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(register(&t, "stable").await.1);
    }
    let status = admin(&t, "GET", "/admin/v1/status", None).await;
    assert_eq!(status["online_devices"], 0, "registered, never checked in");
    let window = status["online_window_s"].as_u64().expect("window");
    assert_eq!(window, 2 * t.fleet.config().check_in_interval_s);
    for tok in &tokens {
        check_in(&t, tok, profile("phone-8gb"), "m").await;
    }
    let status = admin(&t, "GET", "/admin/v1/status", None).await;
    assert_eq!(status["online_devices"], 3, "{status}");
    // One device checks in again half a window later; half a window and a
    // second after that, only it is still inside the window.
    t.clock.advance(window / 2);
    check_in(&t, &tokens[0], profile("phone-8gb"), "m").await;
    t.clock.advance(window / 2 + 1);
    let status = admin(&t, "GET", "/admin/v1/status", None).await;
    assert_eq!(status["online_devices"], 1, "{status}");
    assert_eq!(status["devices"], 3, "{status}");
}

#[tokio::test]
async fn apps_keep_devices_releases_and_scoped_tokens_apart() {
    let t = open("apps").await;
    // Two apps, a key each; their models on the same channels.
    let mut keys = std::collections::BTreeMap::new();
    for app in ["chat", "maps"] {
        let k = admin(
            &t,
            "POST",
            "/admin/v1/app-keys",
            Some(json!({"label": format!("{app}-android"), "app": app})),
        )
        .await;
        assert_eq!(k["app"], app, "{k}");
        keys.insert(app, k["app_key"].as_str().expect("key").to_string());
    }
    publish_for(&t, "chat", "chat-lm", "1").await;
    let maps_v1 = publish_for(&t, "maps", "maps-lm", "1").await;
    publish_for(&t, "maps", "maps-lm", "2").await;
    for (model, channel) in [
        ("chat-lm", "stable"),
        ("maps-lm", "stable"),
        ("maps-lm", "canary"),
    ] {
        admin(
            &t,
            "POST",
            &format!("/admin/v1/channels/{channel}/release"),
            Some(json!({"model": model, "version": "1"})),
        )
        .await;
    }
    let (chat_dev, chat_tok) = register_with(&t, &keys["chat"], "stable").await;
    let (maps_dev, maps_tok) = register_with(&t, &keys["maps"], "stable").await;
    let (_, default_tok) = register_with(&t, t.fleet.app_key(), "stable").await;
    assert_eq!(offered(&t, &chat_tok).await, ["chat-lm"]);
    assert_eq!(offered(&t, &maps_tok).await, ["maps-lm"]);
    assert!(offered(&t, &default_tok).await.is_empty());
    let d = admin(&t, "GET", &format!("/admin/v1/devices/{maps_dev}"), None).await;
    assert_eq!(d["app"], "maps", "{d}");

    // A model keeps its app; a device runs only its app's releases.
    let mut moved = maps_v1.clone();
    moved["version"] = json!("3");
    moved["app"] = json!("chat");
    let (s, v) = call(&t, "POST", "/admin/v1/releases", Some(ADMIN), Some(moved)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v.to_string().contains("belongs to the app \\\"maps\\\""),
        "{v}"
    );
    let (s, v) = call(
        &t,
        "POST",
        &format!("/admin/v1/devices/{chat_dev}/pins"),
        Some(ADMIN),
        Some(json!({"model": "maps-lm", "version": "1"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Something of each app's for every route to aim at.
    let rollout = admin(
        &t,
        "POST",
        "/admin/v1/rollouts",
        Some(json!({"model": "maps-lm", "version": "2", "channel": "beta", "stages": [50, 100], "soak_s": 3600})),
    )
    .await["id"]
        .as_u64()
        .expect("rollout id");
    let experiment = admin(
        &t,
        "POST",
        "/admin/v1/experiments",
        Some(
            json!({"model": "maps-lm", "control": "1", "treatment": "2", "channel": "canary",
            "split_percent": 50.0, "metrics": ["ttft_p50"]}),
        ),
    )
    .await["id"]
        .as_u64()
        .expect("experiment id");
    let maps_blob = maps_v1["variants"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let ci = admin(
        &t,
        "POST",
        "/admin/v1/tokens",
        Some(json!({"name": "chat-ci", "role": "admin", "apps": ["chat"]})),
    )
    .await;
    assert_eq!(ci["apps"], json!(["chat"]), "{ci}");
    let ci = ci["token"].as_str().expect("secret").to_string();

    // Every route that changes one app's things, aimed at the other app's.
    let key32 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut v3 = maps_v1.clone();
    v3["version"] = json!("3");
    let cases: Vec<(&str, &str, String, Value)> = vec![
        ("POST", "/releases", "/releases".into(), v3),
        (
            "POST",
            "/revoke",
            "/revoke".into(),
            json!({"model": "maps-lm", "version": "1", "reason": "x"}),
        ),
        (
            "POST",
            "/channels/{name}/release",
            "/channels/beta/release".into(),
            json!({"model": "maps-lm", "version": "1"}),
        ),
        (
            "POST",
            "/rollouts",
            "/rollouts".into(),
            json!({"model": "maps-lm", "version": "2", "channel": "stable", "stages": [100], "soak_s": 60}),
        ),
        (
            "POST",
            "/rollouts/{id}/{action}",
            format!("/rollouts/{rollout}/pause"),
            json!({"reason": "x"}),
        ),
        (
            "POST",
            "/devices/{id}/pins",
            format!("/devices/{maps_dev}/pins"),
            json!({"model": "maps-lm", "version": "1"}),
        ),
        (
            "DELETE",
            "/devices/{id}/pins/{model}",
            format!("/devices/{maps_dev}/pins/maps-lm"),
            json!({}),
        ),
        (
            "POST",
            "/devices/{id}/channel",
            format!("/devices/{maps_dev}/channel"),
            json!({"channel": "beta"}),
        ),
        (
            "POST",
            "/devices/{id}/revoke",
            format!("/devices/{maps_dev}/revoke"),
            json!({}),
        ),
        (
            "PUT",
            "/content-keys/{digest}",
            format!("/content-keys/{maps_blob}"),
            json!({"key": key32}),
        ),
        (
            "POST",
            "/app-keys",
            "/app-keys".into(),
            json!({"label": "maps-ios", "app": "maps"}),
        ),
        (
            "POST",
            "/experiments",
            "/experiments".into(),
            json!({"model": "maps-lm", "control": "1", "treatment": "2", "channel": "beta", "split_percent": 50.0, "metrics": ["ttft_p50"]}),
        ),
        (
            "POST",
            "/experiments/{id}/{action}",
            format!("/experiments/{experiment}/stop"),
            json!({"reason": "x"}),
        ),
    ];
    let before = (stable_status(&t).await, audit_len(&t).await);
    for r in ADMIN_ROUTES.iter().filter(|r| r.reach == Reach::App) {
        let (_, _, url, body) = cases
            .iter()
            .find(|(m, p, _, _)| *m == r.method && *p == r.path)
            .unwrap_or_else(|| {
                panic!(
                    "{} {} reaches one app: add a case aimed at another app's thing here",
                    r.method, r.path
                )
            });
        let (s, v) = call(
            &t,
            r.method,
            &format!("/admin/v1{url}"),
            Some(&ci),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{} {url}: {v}", r.method);
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("scoped to the apps [\"chat\"]") && msg.contains("\"maps\""),
            "{msg}"
        );
    }
    let mut fleet_wide = 0;
    for r in ADMIN_ROUTES.iter().filter(|r| r.reach == Reach::Fleet) {
        let concrete: String = r
            .path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let (s, v) = call(
            &t,
            r.method,
            &format!("/admin/v1{concrete}"),
            Some(&ci),
            Some(json!({})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{} {concrete}: {v}", r.method);
        assert!(v.to_string().contains("whole fleet"), "{v}");
        fleet_wide += 1;
    }
    assert!(fleet_wide >= 6, "{fleet_wide}");
    assert_eq!(
        (stable_status(&t).await, audit_len(&t).await),
        before,
        "a refusal changed something"
    );
    let d = admin(&t, "GET", &format!("/admin/v1/devices/{maps_dev}"), None).await;
    assert_eq!(d["channel"], "stable", "{d}");

    // A target that does not exist (yet) is a 404 to a scoped token: the
    // next rollout id, or a model's first release, could be another app's.
    let next = format!("/admin/v1/rollouts/{}/rollback", experiment + 1);
    let (s, v) = call(&t, "POST", &next, Some(&ci), Some(json!({"reason": "x"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let body = json!({"model": "new-lm", "version": "1", "reason": "x"});
    let (s, v) = call(&t, "POST", "/admin/v1/revoke", Some(&ci), Some(body)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // A blob no release uses yet: a scoped token may give it a key, never
    // replace one (another app may be about to publish it).
    let store = t.fleet.local_store().expect("blobs in a folder");
    let mut fresh = Vec::new();
    for tag in ["taken", "free"] {
        let data = gguf(tag, 4096);
        store.put(None, &data[..]).expect("blob stored");
        fresh.push(outpost_protocol::Digest::sha256(&data).to_string());
    }
    let put = format!("/admin/v1/content-keys/{}", fresh[0]);
    admin(&t, "PUT", &put, Some(json!({"key": key32}))).await;
    let (s, v) = call(&t, "PUT", &put, Some(&ci), Some(json!({"key": key32}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v.to_string().contains("only a token for every app"), "{v}");
    let put = format!("/admin/v1/content-keys/{}", fresh[1]);
    let (s, v) = call(&t, "PUT", &put, Some(&ci), Some(json!({"key": key32}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // An empty list is refused, not taken as every app; whoami shows scope.
    let body = json!({"name": "none", "role": "viewer", "apps": []});
    let (s, v) = call(&t, "POST", "/admin/v1/tokens", Some(ADMIN), Some(body)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = call(&t, "GET", "/admin/v1/whoami", Some(&ci), None).await;
    assert_eq!((s, &v["apps"]), (StatusCode::OK, &json!(["chat"])), "{v}");

    // Its own app's things it may change; it reads everything.
    let (s, v) = call(
        &t,
        "POST",
        &format!("/admin/v1/devices/{chat_dev}/channel"),
        Some(&ci),
        Some(json!({"channel": "beta"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The maps rollout on beta does not count the chat device now there.
    let frag = admin(&t, "GET", "/admin/v1/fragmentation", None).await;
    let reach = frag["rollouts"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|r| r["id"].as_u64() == Some(rollout))
                .cloned()
        })
        .expect("the maps rollout's reach");
    assert_eq!(reach["targeted"], 0, "{reach}");
    let (s, v) = call(
        &t,
        "POST",
        "/admin/v1/app-keys",
        Some(&ci),
        Some(json!({"label": "chat-ios", "app": "chat"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(
        &t,
        "GET",
        &format!("/admin/v1/devices/{maps_dev}"),
        Some(&ci),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let audit = admin(&t, "GET", "/admin/v1/audit?limit=1", None).await;
    assert!(
        audit[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("token:chat-ci")),
        "{audit}"
    );

    // After a restart: the apps of keys, devices and the token are kept.
    let t = reopened(t).await;
    let (s, _) = call(
        &t,
        "POST",
        &format!("/admin/v1/devices/{maps_dev}/channel"),
        Some(&ci),
        Some(json!({"channel": "beta"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(offered(&t, &maps_tok).await, ["maps-lm"]);
    let (_, again) = register_with(&t, &keys["maps"], "stable").await;
    assert_eq!(offered(&t, &again).await, ["maps-lm"]);
    let tokens = admin(&t, "GET", "/admin/v1/tokens", None).await;
    assert!(
        tokens.to_string().contains("\"apps\":[\"chat\"]"),
        "{tokens}"
    );
}
