//! A cohort's route telemetry, mergeable: per route (local, cloud) the
//! requests, tokens and latency, the requests decided at the complexity
//! rule by complexity bin (for the economics report's what-if replay),
//! latency histograms and battery drain. A leaf of the fleet's domain:
//! the telemetry aggregate holds one, the economics report reads it.

use std::collections::BTreeMap;

use outpost_protocol::telemetry::{Route, RouteTarget};
use serde::{Deserialize, Serialize};

use crate::hist::Histogram;

/// Complexity bins of the what-if replay (0.05 wide).
pub const BINS: u8 = 20;

/// Sums over the requests of one route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RouteTotals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Requests that reported a latency, and its sum (ms).
    pub timed: u64,
    pub latency_ms: u64,
    /// Requests that logged the other route's predicted latency, and its
    /// sum (ms).
    pub predicted: u64,
    pub other_predicted_ms: u64,
}

impl RouteTotals {
    fn merge(&mut self, o: &RouteTotals) {
        self.requests += o.requests;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.timed += o.timed;
        self.latency_ms += o.latency_ms;
        self.predicted += o.predicted;
        self.other_predicted_ms += o.other_predicted_ms;
    }

    fn add(&mut self, r: &Route, other_predicted: Option<f64>) {
        self.requests += 1;
        self.prompt_tokens += u64::from(r.prompt_tokens.unwrap_or(0));
        self.completion_tokens += u64::from(r.completion_tokens.unwrap_or(0));
        if let Some(ms) = r.latency_ms {
            self.timed += 1;
            self.latency_ms += ms.round() as u64;
        }
        if let Some(ms) = other_predicted {
            self.predicted += 1;
            self.other_predicted_ms += ms.round() as u64;
        }
    }

    pub(crate) fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// A cohort's route telemetry (part of its aggregate; mergeable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RouteAgg {
    pub local: RouteTotals,
    pub cloud: RouteTotals,
    /// Requests decided at the complexity rule, by complexity bin:
    /// `[local, cloud]`.
    #[serde(deserialize_with = "bins_from_json")]
    pub bins: BTreeMap<u8, [RouteTotals; 2]>,
    pub local_ms: Histogram,
    pub cloud_ms: Histogram,
    /// Battery level lost between discharging reports, in percentage
    /// points summed over the cohort's devices.
    pub battery_drain_pct: u64,
}

/// Bin numbers read as strings (JSON's keys) and parsed, so the map also
/// reads back inside a `#[serde(flatten)]` struct (`CohortView`).
fn bins_from_json<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<u8, [RouteTotals; 2]>, D::Error> {
    let raw = BTreeMap::<String, [RouteTotals; 2]>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match k.parse::<u8>() {
            Ok(b) if b < BINS => Ok((b, v)),
            _ => Err(serde::de::Error::custom(format!(
                "complexity bin {k:?} is not a bin number 0-{}",
                BINS - 1
            ))),
        })
        .collect()
}

impl RouteAgg {
    pub fn merge(&mut self, o: &RouteAgg) {
        self.local.merge(&o.local);
        self.cloud.merge(&o.cloud);
        for (k, [l, c]) in &o.bins {
            let b = self.bins.entry(*k).or_default();
            b[0].merge(l);
            b[1].merge(c);
        }
        self.local_ms.merge(&o.local_ms);
        self.cloud_ms.merge(&o.cloud_ms);
        self.battery_drain_pct += o.battery_drain_pct;
    }

    pub fn record(&mut self, r: &Route) {
        let local = r.target == RouteTarget::Local;
        let other = if local {
            r.cloud_predicted_ms
        } else {
            r.local_predicted_ms
        };
        let (totals, hist) = if local {
            (&mut self.local, &mut self.local_ms)
        } else {
            (&mut self.cloud, &mut self.cloud_ms)
        };
        totals.add(r, other);
        if let Some(ms) = r.latency_ms {
            hist.record(ms);
        }
        let at_rule = matches!(
            (r.target, r.reason.as_str()),
            (RouteTarget::Local, "simple") | (RouteTarget::Cloud, "complexity")
        );
        if let (true, Some(c)) = (at_rule, r.complexity) {
            let k = ((c * f64::from(BINS)).floor() as u8).min(BINS - 1);
            self.bins.entry(k).or_default()[usize::from(!local)].add(r, other);
        }
    }
}
