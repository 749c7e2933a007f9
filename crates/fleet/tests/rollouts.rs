//! Rollouts end to end through the router, in-process, with a manual clock:
//! stages that only add devices and advance by themselves after the soak,
//! pause/resume, rollback with a higher manifest_version, pins,
//! revocation, the kill switch, compatibility, and a reopen that loses
//! nothing.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::json;

const M: &str = "smollm2-135m";

/// 120 devices on stable, checked in once on v1.
async fn fleet_on_v1(name: &str) -> (TestFleet, Vec<(String, String)>) {
    let t = open(name).await;
    publish(&t, M, "v1", "0.1.0").await;
    publish(&t, M, "v2", "0.1.0").await;
    release_on_stable(&t, M, "v1").await;
    let mut devices = Vec::new();
    for _ in 0..120 {
        let d = register(&t, "stable").await;
        let a = check_in(&t, &d.1, profile("phone-8gb"), M).await;
        assert_eq!(a["model_version"], "v1");
        devices.push(d);
    }
    (t, devices)
}

/// Each device's (release, manifest_version) after a check-in.
async fn survey(t: &TestFleet, devices: &[(String, String)]) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    for (id, token) in devices {
        let a = check_in(t, token, profile("phone-8gb"), M).await;
        let v = a["model_version"].as_str().unwrap_or("none").to_string();
        let mv = if a["manifest"].is_null() {
            0
        } else {
            manifest_version(&a)
        };
        out.insert(id.clone(), (v, mv));
    }
    out
}

fn on(s: &BTreeMap<String, (String, u64)>, v: &str) -> Vec<String> {
    s.iter()
        .filter(|(_, (r, _))| r == v)
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test]
async fn stages_only_add_devices_and_advance_after_the_soak() {
    let (t, devices) = fleet_on_v1("stages").await;
    let before = survey(&t, &devices).await;
    let r = start_rollout(&t, M, "v2", &[10, 50, 100], 3600).await;
    let id = r["id"].as_u64().expect("id");
    assert_eq!(r["percent"], 10.0);

    let s1 = survey(&t, &devices).await;
    let in1 = on(&s1, "v2");
    assert!(
        !in1.is_empty() && in1.len() < 40,
        "10 % of 120: {}",
        in1.len()
    );
    for (id, (v, mv)) in &s1 {
        let (_, mv0) = &before[id];
        if v == "v2" {
            assert!(
                mv > mv0,
                "a device that moved gets a higher manifest_version"
            );
        } else {
            assert_eq!(mv, mv0, "a device that stays gets the same manifest again");
        }
    }

    // Not yet soaked: the timer leaves it; after the soak it advances.
    t.clock.advance(3599);
    assert!(t.fleet.tick().await.expect("tick").is_empty());
    t.clock.advance(1);
    assert_eq!(t.fleet.tick().await.expect("tick"), vec![id]);
    let s2 = survey(&t, &devices).await;
    let in2 = on(&s2, "v2");
    assert!(
        in1.iter().all(|d| in2.contains(d)),
        "raising the percentage only adds devices"
    );
    assert!(
        in2.len() > in1.len() && in2.len() < 90,
        "50 %: {}",
        in2.len()
    );

    // Paused: the timer does nothing; resumed, the soak starts again.
    admin(
        &t,
        "POST",
        &format!("/admin/v1/rollouts/{id}/pause"),
        Some(json!({"reason": "look at crash rate"})),
    )
    .await;
    t.clock.advance(10 * 3600);
    assert!(t.fleet.tick().await.expect("tick").is_empty());
    assert_eq!(
        on(&survey(&t, &devices).await, "v2"),
        in2,
        "a paused rollout keeps its devices"
    );
    admin(&t, "POST", &format!("/admin/v1/rollouts/{id}/resume"), None).await;
    assert!(t.fleet.tick().await.expect("tick").is_empty());

    admin(
        &t,
        "POST",
        &format!("/admin/v1/rollouts/{id}/advance"),
        None,
    )
    .await;
    let s3 = survey(&t, &devices).await;
    assert_eq!(on(&s3, "v2").len(), 120, "100 %");
    t.clock.advance(3600);
    t.fleet.tick().await.expect("tick");
    let r = admin(&t, "GET", &format!("/admin/v1/rollouts/{id}"), None).await;
    assert_eq!(r["state"], "completed");
    let st = admin(&t, "GET", "/admin/v1/status", None).await;
    let stable = st["channels"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "stable"))
        .cloned();
    assert_eq!(stable.map(|c| c["releases"][M].clone()), Some(json!("v2")));
    // Completed: same manifests as at 100 % (the instruction did not change).
    assert_eq!(survey(&t, &devices).await, s3);

    // The audit log has every step, the timer's included.
    let log = admin(&t, "GET", "/admin/v1/audit?limit=100", None).await;
    let actions: Vec<&str> = log
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for a in [
        "rollout.create",
        "rollout.pause",
        "rollout.resume",
        "rollout.advance",
        "channel.release",
        "release.publish",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert!(log
        .as_array()
        .expect("log")
        .iter()
        .any(|r| r["actor"] == "system"));
}

#[tokio::test]
async fn rollback_sends_devices_back_with_a_higher_manifest_version() {
    let (t, devices) = fleet_on_v1("rollback").await;
    let r = start_rollout(&t, M, "v2", &[50, 100], 0).await;
    let id = r["id"].as_u64().expect("id");
    let s1 = survey(&t, &devices).await;
    let moved = on(&s1, "v2");
    assert!(!moved.is_empty());
    let r = admin(
        &t,
        "POST",
        &format!("/admin/v1/rollouts/{id}/rollback"),
        Some(json!({"reason": "bad answers"})),
    )
    .await;
    assert_eq!(r["state"], "rolled_back");
    let s2 = survey(&t, &devices).await;
    assert_eq!(on(&s2, "v1").len(), 120, "every device back on v1");
    for d in &moved {
        assert!(
            s2[d].1 > s1[d].1,
            "rollback is a new, higher manifest_version"
        );
    }
    // A rolled-back rollout cannot be resumed; a new one can start.
    let (s, v) = call(
        &t,
        "POST",
        &format!("/admin/v1/rollouts/{id}/resume"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s.as_u16(), 409, "{v}");

    // Rollback after completion returns the channel to the release before.
    let r = start_rollout(&t, M, "v2", &[100], 0).await;
    let id = r["id"].as_u64().expect("id");
    admin(
        &t,
        "POST",
        &format!("/admin/v1/rollouts/{id}/complete"),
        None,
    )
    .await;
    assert_eq!(on(&survey(&t, &devices).await, "v2").len(), 120);
    admin(
        &t,
        "POST",
        &format!("/admin/v1/rollouts/{id}/rollback"),
        None,
    )
    .await;
    assert_eq!(on(&survey(&t, &devices).await, "v1").len(), 120);
}

#[tokio::test]
async fn pins_revocation_and_the_kill_switch() {
    let (t, devices) = fleet_on_v1("pins").await;
    publish(&t, M, "v3", "0.1.0").await;
    let (id0, tok0) = devices[0].clone();
    let d = admin(
        &t,
        "POST",
        &format!("/admin/v1/devices/{id0}/pins"),
        Some(json!({"model": M, "version": "v3"})),
    )
    .await;
    assert_eq!(d["pins"][M], "v3");
    let a = check_in(&t, &tok0, profile("phone-8gb"), M).await;
    assert_eq!(
        (a["model_version"].as_str(), a["source"].as_str()),
        (Some("v3"), Some("pin"))
    );

    // Kill switch: rollouts freeze, nothing moves forward; then revoke v2.
    let r = start_rollout(&t, M, "v2", &[30, 100], 60).await;
    let rid = r["id"].as_u64().expect("id");
    let s1 = survey(&t, &devices).await;
    let on_v2 = on(&s1, "v2");
    assert!(!on_v2.is_empty());
    admin(
        &t,
        "POST",
        "/admin/v1/kill-switch",
        Some(json!({"freeze": true, "reason": "incident 42"})),
    )
    .await;
    t.clock.advance(600);
    assert!(
        t.fleet.tick().await.expect("tick").is_empty(),
        "frozen: the soak timer stops"
    );
    let (s, v) = call(
        &t,
        "POST",
        &format!("/admin/v1/rollouts/{rid}/advance"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s.as_u16(), 409);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("incident 42")),
        "{v}"
    );
    assert_eq!(
        on(&survey(&t, &devices).await, "v2"),
        on_v2,
        "frozen: nobody moves"
    );

    admin(
        &t,
        "POST",
        "/admin/v1/revoke",
        Some(json!({"model": M, "version": "v2", "reason": "crashes on load"})),
    )
    .await;
    let r = admin(&t, "GET", &format!("/admin/v1/rollouts/{rid}"), None).await;
    assert_eq!(r["state"], "aborted");
    let s2 = survey(&t, &devices).await;
    assert!(on(&s2, "v2").is_empty(), "revoked: every device falls back");
    for d in &on_v2 {
        assert_eq!(s2[d].0, "v1");
        assert!(s2[d].1 > s1[d].1);
    }
    let a = check_in(&t, &devices[1].1, profile("phone-8gb"), M).await;
    assert!(a["manifest"].is_object());

    // Revoking the pinned release sends the pinned device to the channel's.
    admin(
        &t,
        "POST",
        "/admin/v1/revoke",
        Some(json!({"model": M, "version": "v3", "reason": "bad tier"})),
    )
    .await;
    let a = check_in(&t, &tok0, profile("phone-8gb"), M).await;
    assert_eq!(a["model_version"], "v1");
    assert!(
        a["note"].as_str().is_some_and(|n| n.contains("bad tier")),
        "{a}"
    );
    let d = admin(
        &t,
        "DELETE",
        &format!("/admin/v1/devices/{id0}/pins/{M}"),
        None,
    )
    .await;
    assert!(d["pins"].as_object().is_some_and(|p| p.is_empty()));

    admin(
        &t,
        "POST",
        "/admin/v1/kill-switch",
        Some(json!({"freeze": false})),
    )
    .await;
    let st = admin(&t, "GET", "/admin/v1/status", None).await;
    assert!(st["frozen"].is_null());
}

#[tokio::test]
async fn devices_that_cannot_load_a_release_keep_the_one_they_can_and_are_counted() {
    let t = open("compat").await;
    publish(&t, M, "v1", "0.1.0").await;
    publish(&t, M, "v2", "0.2.0").await; // needs a newer engine
    admin(
        &t,
        "POST",
        "/admin/v1/channels/beta/release",
        Some(json!({"model": M, "version": "v1"})),
    )
    .await;
    admin(
        &t,
        "POST",
        "/admin/v1/channels/beta/release",
        Some(json!({"model": M, "version": "v2"})),
    )
    .await;
    let (_, old) = register(&t, "beta").await;
    let (_, new) = register(&t, "beta").await;
    let a = check_in(&t, &old, profile("phone-4gb"), M).await;
    assert_eq!(a["model_version"], "v1");
    assert!(
        a["blocked"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("engine 0.1.0")),
        "{a}"
    );
    let mut p = profile("phone-4gb");
    p["engine_version"] = json!("0.2.0");
    assert_eq!(
        check_in(&t, &new, p.clone(), M).await["model_version"],
        "v2"
    );
    // Too little RAM for any release: no manifest at all, both blocked.
    p["ram_bytes"] = json!(1000);
    let a = check_in(&t, &new, p, M).await;
    assert!(a["manifest"].is_null());
    assert_eq!(a["blocked"].as_array().map(Vec::len), Some(2));
    let st = admin(&t, "GET", "/admin/v1/status", None).await;
    assert_eq!(st["blocked_devices"], 2);
    let rel = admin(&t, "GET", &format!("/admin/v1/releases/{M}/v2"), None).await;
    assert_eq!(rel["blocked_devices"], 2);
}

#[tokio::test]
async fn a_reopened_fleet_has_everything() {
    let (t, devices) = fleet_on_v1("reopen").await;
    let r = start_rollout(&t, M, "v2", &[25, 100], 60).await;
    let id = r["id"].as_u64().expect("id");
    admin(
        &t,
        "POST",
        &format!("/admin/v1/devices/{}/pins", devices[5].0),
        Some(json!({"model": M, "version": "v1"})),
    )
    .await;
    let before = survey(&t, &devices).await;
    let status = stable_status(&t).await;
    let audit = audit_len(&t).await;
    let key = t.fleet.signer().pinned_key();

    let t2 = reopened(t).await;
    assert_eq!(t2.fleet.signer().pinned_key(), key, "same signing key");
    assert_eq!(stable_status(&t2).await, status);
    assert_eq!(audit_len(&t2).await, audit);
    assert_eq!(
        survey(&t2, &devices).await,
        before,
        "same manifests, byte for byte"
    );
    // And it goes on: the next change gets versions above all issued.
    admin(
        &t2,
        "POST",
        &format!("/admin/v1/rollouts/{id}/rollback"),
        None,
    )
    .await;
    let after = survey(&t2, &devices).await;
    for (d, (v, mv)) in &after {
        assert_eq!(v, "v1");
        if before[d].0 == "v2" {
            assert!(*mv > before[d].1);
        }
    }
}
