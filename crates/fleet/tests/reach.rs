//! Time for a rollout to reach X % of its targeted devices: each device's
//! first issue of a release is recorded (and survives a reopen), and the
//! fragmentation view reports the time from the rollout's start to 50,
//! 90, 99 and 100 % of its targeted devices, or "not yet".

mod common;

use common::*;
use serde_json::Value;

const M: &str = "smollm2-135m";
const N: usize = 20;

async fn check_in_all(t: &TestFleet, devices: &[(String, String)]) -> usize {
    let mut on_v2 = 0;
    for (_, token) in devices {
        let a = check_in(t, token, profile("phone-8gb"), M).await;
        if a["model_version"] == "v2" {
            on_v2 += 1;
        }
    }
    on_v2
}

fn after(frag: &Value, percent: f64) -> Option<u64> {
    let m = frag["rollouts"][0]["milestones"]
        .as_array()
        .expect("milestones")
        .iter()
        .find(|m| m["percent"].as_f64() == Some(percent))
        .cloned()
        .expect("milestone");
    m["after_s"].as_u64()
}

/// Devices that need more than `first` devices reach the milestone when
/// the rest come (`late`), or never if they have not come yet.
fn want(percent: f64, first: usize, at_first: u64, late: Option<u64>) -> Option<u64> {
    let need = (percent / 100.0 * N as f64).ceil() as usize;
    if need <= first {
        Some(at_first)
    } else {
        late
    }
}

#[tokio::test]
async fn rollout_reach_times_are_recorded_and_survive_a_reopen() {
    let t = open("reach").await;
    publish(&t, M, "v1", "0.1.0").await;
    publish(&t, M, "v2", "0.1.0").await;
    release_on_stable(&t, M, "v1").await;
    let mut devices = Vec::new();
    for _ in 0..N {
        devices.push(register(&t, "stable").await);
    }
    check_in_all(&t, &devices).await;
    start_rollout(&t, M, "v2", &[50, 100], 3600).await;

    // 60 s in, the devices check in: the 50 % stage's share gets v2.
    t.clock.advance(60);
    let first = check_in_all(&t, &devices).await;
    assert!(first > 0 && first < N, "50 % of {N}: {first}");
    let f = admin(&t, "GET", "/admin/v1/fragmentation", None).await;
    let r = &f["rollouts"][0];
    assert_eq!(
        (r["targeted"].as_u64(), r["on_release"].as_u64()),
        (Some(N as u64), Some(first as u64))
    );
    for p in [50.0, 90.0, 99.0, 100.0] {
        assert_eq!(after(&f, p), want(p, first, 60, None), "{p} %: {r}");
    }
    // Checking in again changes nothing: the first issue counts.
    t.clock.advance(10);
    check_in_all(&t, &devices).await;
    assert_eq!(
        admin(&t, "GET", "/admin/v1/fragmentation", None).await["rollouts"],
        f["rollouts"]
    );

    // The soak ends, the stage goes to 100 %, everyone checks in.
    t.clock.advance(3600);
    t.fleet.tick().await.expect("tick");
    assert_eq!(check_in_all(&t, &devices).await, N);
    let f = admin(&t, "GET", "/admin/v1/fragmentation", None).await;
    assert_eq!(f["rollouts"][0]["ever_issued_pct"], 100.0);
    for p in [50.0, 90.0, 99.0, 100.0] {
        assert_eq!(after(&f, p), want(p, first, 60, Some(3670)), "{p} %: {f}");
    }

    // The times come back from the database.
    let t2 = reopened(t).await;
    let f2 = admin(&t2, "GET", "/admin/v1/fragmentation", None).await;
    assert_eq!(f2["rollouts"], f["rollouts"]);
}
