//! The economics report on hand-made route events, against sums worked
//! out here by hand.

use outpost_protocol::manifest::ModelName;
use outpost_protocol::telemetry::{Route, RouteTarget};

use super::*;
use crate::telemetry::Agg;

fn key(class: &str) -> CohortKey {
    CohortKey {
        device_class: class.into(),
        channel: "stable".into(),
        model: ModelName::parse("smollm2-135m").expect("name"),
        model_version: "v1".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn route(
    cloud: bool,
    reason: &str,
    prompt: u32,
    completion: u32,
    ms: f64,
    complexity: f64,
    local_pred: f64,
    cloud_pred: f64,
) -> Route {
    Route {
        target: if cloud {
            RouteTarget::Cloud
        } else {
            RouteTarget::Local
        },
        reason: reason.into(),
        prompt_tokens: Some(prompt),
        completion_tokens: Some(completion),
        latency_ms: Some(ms),
        complexity: Some(complexity),
        complexity_threshold: Some(0.6),
        local_predicted_ms: Some(local_pred),
        cloud_predicted_ms: Some(cloud_pred),
    }
}

fn prices() -> Prices {
    Prices {
        currency: "USD".into(),
        cloud: CloudPrices {
            input_per_1m_tokens: 2.0,
            output_per_1m_tokens: 10.0,
        },
        local: LocalPrices::default(),
        battery_mwh: BTreeMap::from([("phone".to_string(), 15_000.0)]),
    }
}

/// Four requests on one phone cohort:
/// - local `simple` at complexity 0.20: 100 + 50 tokens, 400 ms (cloud
///   predicted 900 ms);
/// - local `simple` at 0.55: 200 + 50, 600 ms (cloud predicted 1 000);
/// - cloud `complexity` at 0.70: 300 + 100, 1 200 ms (local predicted 2 000);
/// - local `sensitive` (personal data; never replayed): 1 000 + 100, 800 ms.
fn phone() -> CohortView {
    let mut a = Agg::default();
    for r in [
        route(false, "simple", 100, 50, 400.0, 0.20, 380.0, 900.0),
        route(false, "simple", 200, 50, 600.0, 0.55, 590.0, 1000.0),
        route(true, "complexity", 300, 100, 1200.0, 0.70, 2000.0, 1100.0),
        route(false, "sensitive", 1000, 100, 800.0, 0.90, 800.0, 1500.0),
    ] {
        a.routes.record(&r);
    }
    a.routes.battery_drain_pct = 3;
    CohortView::of(key("phone"), 1, a)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn spend_savings_latency_and_battery_add_up() {
    let r = report(&[phone()], &prices(), &[], 60).expect("report");
    assert_eq!((r.local_requests, r.cloud_requests), (3, 1));
    // Cloud: 300 in at $2/M + 100 out at $10/M.
    assert!(
        close(r.cloud_spend, (300.0 * 2.0 + 100.0 * 10.0) / 1e6),
        "{}",
        r.cloud_spend
    );
    // Saved: the local 1 300 prompt and 200 completion tokens at cloud prices.
    assert!(
        close(r.saved, (1300.0 * 2.0 + 200.0 * 10.0) / 1e6),
        "{}",
        r.saved
    );
    let c = &r.cohorts[0];
    assert_eq!(c.local.requests, 3);
    assert_eq!(c.local.latency_ms_mean, Some(600.0));
    assert_eq!(c.cloud.latency_ms_mean, Some(1200.0));
    assert!(close(c.cloud_share, 0.25));
    // 3 points over 1 500 local tokens: 2 per 1 000; of 15 000 mWh, 300 mWh.
    assert_eq!(c.battery_pct_per_1k_tokens, Some(2.0));
    assert!(close(c.energy_mwh_per_1k_tokens.expect("mWh"), 300.0));
    // The observed line comes first, with no threshold.
    assert_eq!(r.what_if.len(), 1);
    assert_eq!(r.what_if[0].complexity_threshold, None);
    assert_eq!(r.what_if[0].latency_ms_mean, Some(750.0));
}

#[test]
fn the_what_if_replays_only_the_complexity_rule() {
    let r = report(&[phone()], &prices(), &[0.0, 0.5, 0.6, 1.0], 60).expect("report");
    let w = |t: f64| {
        r.what_if
            .iter()
            .find(|w| w.complexity_threshold == Some(t))
            .expect("line")
    };
    // 0.6 is the threshold the devices used: nothing moves.
    assert_eq!((w(0.6).moved_to_cloud, w(0.6).moved_to_local), (0, 0));
    assert!(close(w(0.6).cloud_spend, r.cloud_spend));
    // 0.5: the 0.55 request goes to the cloud (200 in, 50 out), timed at
    // its cloud prediction: (400 + 1000 + 1200 + 800) / 4.
    assert_eq!((w(0.5).moved_to_cloud, w(0.5).cloud_requests), (1, 2));
    assert!(close(
        w(0.5).cloud_spend,
        r.cloud_spend + (200.0 * 2.0 + 50.0 * 10.0) / 1e6
    ));
    assert_eq!(w(0.5).latency_ms_mean, Some(850.0));
    // 0: both simple requests go; the sensitive one never does.
    assert_eq!((w(0.0).moved_to_cloud, w(0.0).local_requests), (2, 1));
    // 1: the complexity request comes back at its local prediction.
    assert_eq!((w(1.0).moved_to_local, w(1.0).cloud_requests), (1, 0));
    assert!(close(w(1.0).cloud_spend, 0.0));
    assert_eq!(
        w(1.0).latency_ms_mean,
        Some((400.0 + 600.0 + 2000.0 + 800.0) / 4.0)
    );
}

#[test]
fn bad_prices_and_thresholds_are_named() {
    let mut p = prices();
    p.cloud.output_per_1m_tokens = -1.0;
    let e = report(&[phone()], &p, &[], 60).expect_err("refused");
    assert!(e.contains("cloud.output_per_1m_tokens"), "{e}");
    let mut p = prices();
    p.battery_mwh.insert("tablet".into(), 0.0);
    let e = report(&[phone()], &p, &[], 60).expect_err("refused");
    assert!(e.contains("battery_mwh.tablet"), "{e}");
    let e = report(&[phone()], &prices(), &[0.33], 60).expect_err("refused");
    assert!(e.contains("steps of 0.05"), "{e}");
    // Cohorts without route events are left out; merging adds.
    let mut a = phone().agg;
    a.merge(&phone().agg);
    let both = CohortView::of(key("phone"), 1, a);
    let empty = CohortView::of(key("laptop"), 1, Agg::default());
    let r = report(&[both, empty], &prices(), &[], 60).expect("report");
    assert_eq!(r.cohorts.len(), 1);
    assert_eq!((r.local_requests, r.cohorts[0].battery_drain_pct), (6, 6));
}

/// What `outpost fleet economics` reads: the admin API's cohorts, whose
/// aggregate is flattened into the view, read back whole.
#[test]
fn cohorts_read_back_from_the_admin_json() {
    let c = phone();
    let text = serde_json::to_string(&c).expect("json");
    let back: CohortView = serde_json::from_str(&text).expect("read back");
    assert_eq!(back.agg.routes, c.agg.routes);
    assert_eq!(back.agg.routes.bins.len(), 3);
}
