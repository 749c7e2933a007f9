//! Edge-vs-cloud economics from route telemetry: what ran on the device
//! and what in the cloud, per cohort, what the cloud cost, what the
//! device saved, latency per route, battery per 1 000 local tokens, and a
//! what-if — spend and latency had the router's complexity threshold been
//! different, replayed from the decision signals the devices logged.
//!
//! Aggregation ([`RouteAgg`], part of each cohort's telemetry aggregate):
//! every `route` event adds its tokens and latency to its route's totals;
//! an event decided at the complexity rule (reason `simple`: local,
//! `complexity`: cloud) also lands in one of [`BINS`] complexity bins
//! (`[k/20, (k+1)/20)`) with the other route's predicted latency. Every
//! rule before that one did not fire for those requests, so at another
//! threshold `T` (a multiple of 0.05) exactly the bins at or above `T` go
//! to the cloud and those below stay local; a moved request is priced at
//! the other route's prices and timed at the other route's prediction.
//! Requests decided by other rules (personal data, fit, battery, mode,
//! cascade, …) keep their route. Battery: each device's drop in level
//! between two discharging reports is added to its cohort; that is the
//! whole device's drain while the app ran, an upper bound on what
//! inference took.
//!
//! [`report`] is pure: cohorts and prices in, the report out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hist::Histogram;
pub use crate::route_agg::{RouteAgg, RouteTotals, BINS};
use crate::telemetry::{CohortKey, CohortView};

/// `--prices FILE` (TOML): what a million tokens cost per route, and
/// optionally each class's battery capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    #[serde(default = "usd")]
    pub currency: String,
    pub cloud: CloudPrices,
    /// What the device's own run costs the team (default nothing).
    #[serde(default)]
    pub local: LocalPrices,
    /// Device class → battery capacity in mWh, to turn percentage points
    /// into energy.
    #[serde(default)]
    pub battery_mwh: BTreeMap<String, f64>,
}

fn usd() -> String {
    "USD".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudPrices {
    pub input_per_1m_tokens: f64,
    pub output_per_1m_tokens: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalPrices {
    #[serde(default)]
    pub per_1m_tokens: f64,
}

impl Prices {
    /// Every price finite and >= 0, every capacity above 0.
    pub fn validate(&self) -> Result<(), String> {
        let p = [
            ("cloud.input_per_1m_tokens", self.cloud.input_per_1m_tokens),
            (
                "cloud.output_per_1m_tokens",
                self.cloud.output_per_1m_tokens,
            ),
            ("local.per_1m_tokens", self.local.per_1m_tokens),
        ];
        if let Some((name, v)) = p.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(format!("{name} = {v}: a price is a finite number >= 0"));
        }
        if let Some((class, v)) = self
            .battery_mwh
            .iter()
            .find(|(_, v)| !(v.is_finite() && **v > 0.0))
        {
            return Err(format!(
                "battery_mwh.{class} = {v}: a capacity is above 0 mWh"
            ));
        }
        Ok(())
    }

    fn cloud_cost(&self, t: &RouteTotals) -> f64 {
        (t.prompt_tokens as f64 * self.cloud.input_per_1m_tokens
            + t.completion_tokens as f64 * self.cloud.output_per_1m_tokens)
            / 1e6
    }

    fn local_cost(&self, t: &RouteTotals) -> f64 {
        t.tokens() as f64 * self.local.per_1m_tokens / 1e6
    }
}

/// One route of one cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouteLine {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms_mean: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    /// At this route's prices.
    pub cost: f64,
}

fn line(t: &RouteTotals, h: &Histogram, cost: f64) -> RouteLine {
    RouteLine {
        requests: t.requests,
        prompt_tokens: t.prompt_tokens,
        completion_tokens: t.completion_tokens,
        latency_ms_mean: (t.timed > 0).then(|| t.latency_ms as f64 / t.timed as f64),
        latency_ms_p50: h.quantile(0.5),
        latency_ms_p95: h.quantile(0.95),
        cost,
    }
}

/// One cohort's economics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CohortEconomics {
    #[serde(flatten)]
    pub key: CohortKey,
    pub local: RouteLine,
    pub cloud: RouteLine,
    /// Cloud requests per routed request.
    pub cloud_share: f64,
    /// What the local requests would have cost in the cloud, less what
    /// they cost on the device.
    pub saved: f64,
    pub battery_drain_pct: u64,
    /// Battery points per 1 000 tokens processed on the device, and in
    /// mWh when the prices file gives the class's capacity.
    pub battery_pct_per_1k_tokens: Option<f64>,
    pub energy_mwh_per_1k_tokens: Option<f64>,
}

/// The fleet at another complexity threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhatIf {
    /// `null`: as observed.
    pub complexity_threshold: Option<f64>,
    pub local_requests: u64,
    pub cloud_requests: u64,
    /// Requests that would have gone the other way.
    pub moved_to_cloud: u64,
    pub moved_to_local: u64,
    pub cloud_spend: f64,
    /// Over the requests with a latency (moved ones at their predicted one).
    pub latency_ms_mean: Option<f64>,
}

/// `outpost fleet economics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EconomicsReport {
    pub minutes: u64,
    pub currency: String,
    pub cohorts: Vec<CohortEconomics>,
    pub local_requests: u64,
    pub cloud_requests: u64,
    pub cloud_spend: f64,
    pub local_cost: f64,
    pub saved: f64,
    /// As observed, then at each threshold asked for.
    pub what_if: Vec<WhatIf>,
}

/// The bin a threshold starts at, or why it cannot be replayed.
fn threshold_bin(t: f64) -> Result<u8, String> {
    let k = (t * f64::from(BINS)).round();
    if !(0.0..=1.0).contains(&t) || (t * f64::from(BINS) - k).abs() > 1e-9 {
        return Err(format!(
            "threshold {t}: the replay has complexity bins 0.05 wide; give 0 to 1 in steps of 0.05 (e.g. 0.5)"
        ));
    }
    Ok(k as u8)
}

/// The report over `cohorts` (with route telemetry) at `prices`, with a
/// what-if line per threshold in `thresholds`.
pub fn report(
    cohorts: &[CohortView],
    prices: &Prices,
    thresholds: &[f64],
    minutes: u64,
) -> Result<EconomicsReport, String> {
    prices.validate()?;
    let bins: Vec<u8> = thresholds
        .iter()
        .map(|&t| threshold_bin(t))
        .collect::<Result<_, _>>()?;
    let mut out = EconomicsReport {
        minutes,
        currency: prices.currency.clone(),
        cohorts: Vec::new(),
        local_requests: 0,
        cloud_requests: 0,
        cloud_spend: 0.0,
        local_cost: 0.0,
        saved: 0.0,
        what_if: Vec::new(),
    };
    let (mut latency, mut timed) = (0u64, 0u64);
    for c in cohorts {
        let r = &c.agg.routes;
        if r.local.requests + r.cloud.requests == 0 {
            continue;
        }
        let (lc, cc) = (prices.local_cost(&r.local), prices.cloud_cost(&r.cloud));
        let saved = prices.cloud_cost(&r.local) - lc;
        let local_tokens = r.local.tokens();
        let per_1k = (local_tokens > 0 && r.battery_drain_pct > 0)
            .then(|| r.battery_drain_pct as f64 * 1000.0 / local_tokens as f64);
        let mwh = prices.battery_mwh.get(&c.key.device_class);
        out.cohorts.push(CohortEconomics {
            key: c.key.clone(),
            local: line(&r.local, &r.local_ms, lc),
            cloud: line(&r.cloud, &r.cloud_ms, cc),
            cloud_share: r.cloud.requests as f64 / (r.local.requests + r.cloud.requests) as f64,
            saved,
            battery_drain_pct: r.battery_drain_pct,
            battery_pct_per_1k_tokens: per_1k,
            energy_mwh_per_1k_tokens: per_1k.zip(mwh).map(|(p, m)| p / 100.0 * m),
        });
        out.local_requests += r.local.requests;
        out.cloud_requests += r.cloud.requests;
        out.cloud_spend += cc;
        out.local_cost += lc;
        out.saved += saved;
        latency += r.local.latency_ms + r.cloud.latency_ms;
        timed += r.local.timed + r.cloud.timed;
    }
    let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
    let observed = WhatIf {
        complexity_threshold: None,
        local_requests: out.local_requests,
        cloud_requests: out.cloud_requests,
        moved_to_cloud: 0,
        moved_to_local: 0,
        cloud_spend: out.cloud_spend,
        latency_ms_mean: mean(latency as f64, timed),
    };
    for (&t, &from) in thresholds.iter().zip(&bins) {
        let mut w = WhatIf {
            complexity_threshold: Some(t),
            ..observed.clone()
        };
        let mut lat = latency as f64;
        for c in cohorts {
            for (&k, [l, cl]) in &c.agg.routes.bins {
                // A moved request: its observed latency out, the other
                // route's prediction in (observed kept when none was logged).
                let mut moved = |t: &RouteTotals| {
                    if t.predicted > 0 && t.timed > 0 {
                        let observed_mean = t.latency_ms as f64 / t.timed as f64;
                        let predicted_mean = t.other_predicted_ms as f64 / t.predicted as f64;
                        lat += (predicted_mean - observed_mean) * t.timed as f64;
                    }
                };
                if k >= from && l.requests > 0 {
                    w.moved_to_cloud += l.requests;
                    w.cloud_spend += prices.cloud_cost(l);
                    moved(l);
                } else if k < from && cl.requests > 0 {
                    w.moved_to_local += cl.requests;
                    w.cloud_spend -= prices.cloud_cost(cl);
                    moved(cl);
                }
            }
        }
        w.local_requests = w.local_requests + w.moved_to_local - w.moved_to_cloud;
        w.cloud_requests = w.cloud_requests + w.moved_to_cloud - w.moved_to_local;
        w.cloud_spend = w.cloud_spend.max(0.0);
        w.latency_ms_mean = mean(lat, timed);
        out.what_if.push(w);
    }
    out.what_if.insert(0, observed);
    Ok(out)
}

#[cfg(test)]
mod tests;
