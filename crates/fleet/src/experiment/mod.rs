//! Experiments: an A/B comparison of two releases of one model on one
//! channel, judged per device class on the metrics the operator chose.
//!
//! An experiment is a rollout that does not advance: its one stage is the
//! treatment's split, its soak is 0 (only an operator moves it), and its
//! [`ExperimentSpec`] names the control (the channel's release when it
//! started) and the metrics. So assignment is the rollout's sticky
//! bucketing (a device keeps its arm for the experiment's life), the
//! automatic halt watches the treatment as it watches any rollout, `ship`
//! is the rollout's `complete` (the treatment becomes the channel's
//! release) and `stop` its `rollback` (every device returns to the
//! control). Exposure is what the fleet records at check-in: the devices
//! last issued each arm's release, and when each was first issued it.
//!
//! The arms are the telemetry cohorts of the control and the treatment
//! release on the experiment's channel, per targeted class, since the
//! experiment started. For each class and metric [`analyze`] reports the
//! difference (treatment − control) with an always-valid confidence
//! interval ([`crate::stats::always_valid_interval`]): it may be read
//! after every tick without inflating the error rate, so "keep running"
//! is always a safe answer. Rates (thumbs-down, regenerate, error: shares
//! of requests; crashes: a Poisson rate per request) are compared as
//! rates; latency and speed as means from the telemetry histograms (their
//! bucket middles, within 4.4 %), shown beside each arm's p50. The
//! mixture variance is matched to 1 000 observations a side. Each
//! interval is at level α / (metrics × classes judged) (Bonferroni), so
//! the whole experiment's chance of any false call stays under α.
//!
//! The decision ([`decide`]): `stop` when the rollout was halted or any
//! metric is significantly worse in any class; `ship` when none is worse
//! and at least one is significantly better; otherwise `keep_running`.
//! Requests are the unit of analysis while devices are assigned, so a
//! strong per-device effect makes the intervals too narrow.

pub mod admin;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hist::{bounds, Histogram};
use crate::stats::always_valid_interval;
use crate::telemetry::Agg;

/// Observations a side at which the interval is tuned to be tightest.
pub const DESIGN_N: f64 = 1000.0;
/// Fewest observations a side before a metric is judged at all (the
/// normal approximation needs some).
pub const MIN_N: u64 = 30;

/// What an experiment compares.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    TtftP50,
    LatencyP50,
    TokS,
    ThumbsDownRate,
    RegenerateRate,
    ErrorRate,
    CrashRate,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::TtftP50,
        Metric::LatencyP50,
        Metric::TokS,
        Metric::ThumbsDownRate,
        Metric::RegenerateRate,
        Metric::ErrorRate,
        Metric::CrashRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::TtftP50 => "ttft_p50",
            Metric::LatencyP50 => "latency_p50",
            Metric::TokS => "tok_s",
            Metric::ThumbsDownRate => "thumbs_down_rate",
            Metric::RegenerateRate => "regenerate_rate",
            Metric::ErrorRate => "error_rate",
            Metric::CrashRate => "crash_rate",
        }
    }

    pub fn parse(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown metric {s:?}; use any of {}",
                    Metric::ALL.map(Metric::as_str).join(", ")
                )
            })
    }

    /// Only speed is better higher.
    pub fn higher_is_better(self) -> bool {
        self == Metric::TokS
    }
}

/// What makes a rollout an experiment. Stored with the rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The control release (the channel's release when it started).
    pub control: String,
    pub metrics: Vec<Metric>,
    /// The experiment-wide false-call rate.
    pub alpha: f64,
    /// The analysis when it ended (stop or ship), kept as it was then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Analysis>,
}

/// An arm's number for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmValue {
    /// Requests (rates) or measurements (latency, speed).
    pub n: u64,
    /// The rate, or the mean.
    pub value: f64,
    /// p50 for latency and speed metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
}

/// How a metric came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    Inconclusive,
    /// Too few observations on a side (fewer than [`MIN_N`], or no variance).
    NoData,
}

/// One class × metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricResult {
    pub device_class: String,
    pub metric: Metric,
    pub control: ArmValue,
    pub treatment: ArmValue,
    /// Treatment − control.
    pub diff: f64,
    /// The always-valid interval of `diff` at `level`.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The error rate of this one interval (α / comparisons).
    pub level: f64,
    pub verdict: Verdict,
}

/// `ship`, `stop`, or `keep_running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Ship,
    Stop,
    KeepRunning,
}

/// Every class × metric, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Analysis {
    pub results: Vec<MetricResult>,
    pub decision: Decision,
    pub decision_reason: String,
}

/// The requests and events of one rate metric: (events, requests).
fn rate_counts(m: Metric, a: &Agg) -> Option<(u64, u64)> {
    let n = a.requests();
    Some(match m {
        Metric::ThumbsDownRate => (a.thumbs_down, n),
        Metric::RegenerateRate => (a.regenerates, n),
        Metric::ErrorRate => (a.errors, n),
        Metric::CrashRate => (a.crashes, n),
        _ => return None,
    })
}

/// n, mean and variance of a histogram's values, each taken as its
/// bucket's middle (geometric; zero for bucket 0, the lower bound for the
/// open last bucket).
pub fn moments(h: &Histogram) -> Option<(u64, f64, f64)> {
    let n = h.count();
    if n < 2 {
        return None;
    }
    let mid = |b: u16| match bounds(b) {
        (0.0, _) => 0.0,
        (lo, hi) if hi.is_infinite() => lo,
        (lo, hi) => (lo * hi).sqrt(),
    };
    let (mut sum, mut sq) = (0.0, 0.0);
    for (b, c) in h.buckets() {
        let v = mid(b);
        sum += v * c as f64;
        sq += v * v * c as f64;
    }
    let nf = n as f64;
    let mean = sum / nf;
    let var = ((sq - nf * mean * mean) / (nf - 1.0)).max(0.0);
    Some((n, mean, var))
}

fn histogram(m: Metric, a: &Agg) -> Option<&Histogram> {
    match m {
        Metric::TtftP50 => Some(&a.ttft_ms),
        Metric::LatencyP50 => Some(&a.latency_ms),
        Metric::TokS => Some(&a.tok_s),
        _ => None,
    }
}

/// (control, treatment, diff, variance of diff, per-unit pooled variance)
/// for one metric, or the arms alone when there is too little to judge.
type Estimate = (ArmValue, ArmValue, Option<(f64, f64, f64)>);

fn estimate(m: Metric, c: &Agg, t: &Agg) -> Estimate {
    if let (Some((xc, nc)), Some((xt, nt))) = (rate_counts(m, c), rate_counts(m, t)) {
        let rate = |x: u64, n: u64| if n == 0 { 0.0 } else { x as f64 / n as f64 };
        let (pc, pt) = (rate(xc, nc), rate(xt, nt));
        let arm = |n, value| ArmValue {
            n,
            value,
            p50: None,
        };
        let (ac, at) = (arm(nc, pc), arm(nt, pt));
        if nc < MIN_N || nt < MIN_N {
            return (ac, at, None);
        }
        let pooled = (xc + xt) as f64 / (nc + nt) as f64;
        // Crashes may outnumber requests: Poisson, variance = rate / n.
        let unit = |p: f64| {
            if m == Metric::CrashRate {
                p
            } else {
                let p = p.min(1.0);
                p * (1.0 - p)
            }
        };
        let var = unit(pc) / nc as f64 + unit(pt) / nt as f64;
        return (ac, at, Some((pt - pc, var, unit(pooled))));
    }
    let (Some(hc), Some(ht)) = (histogram(m, c), histogram(m, t)) else {
        let none = ArmValue {
            n: 0,
            value: 0.0,
            p50: None,
        };
        return (none.clone(), none, None);
    };
    let arm = |h: &Histogram| {
        let (n, mean) = moments(h).map_or((h.count(), 0.0), |(n, mean, _)| (n, mean));
        ArmValue {
            n,
            value: mean,
            p50: h.quantile(0.5),
        }
    };
    let (ac, at) = (arm(hc), arm(ht));
    match (moments(hc), moments(ht)) {
        (Some((nc, mc, vc)), Some((nt, mt, vt))) if nc >= MIN_N && nt >= MIN_N => {
            let pooled = ((nc - 1) as f64 * vc + (nt - 1) as f64 * vt) / (nc + nt - 2) as f64;
            let est = Some((mt - mc, vc / nc as f64 + vt / nt as f64, pooled));
            (ac, at, est)
        }
        _ => (ac, at, None),
    }
}

/// Every class with data in both arms × every metric. `control` and
/// `treatment` are each arm's aggregate per device class.
pub fn analyze(
    spec: &ExperimentSpec,
    control: &BTreeMap<String, Agg>,
    treatment: &BTreeMap<String, Agg>,
) -> Vec<MetricResult> {
    let classes: Vec<&String> = control
        .keys()
        .filter(|c| treatment.contains_key(*c))
        .collect();
    let comparisons = (classes.len() * spec.metrics.len()).max(1);
    let level = spec.alpha / comparisons as f64;
    let mut out = Vec::new();
    for class in classes {
        let (c, t) = (&control[class], &treatment[class]);
        for &m in &spec.metrics {
            let (ac, at, est) = estimate(m, c, t);
            let interval = est.and_then(|(diff, var, unit)| {
                always_valid_interval(diff, var, unit * 2.0 / DESIGN_N, level)
            });
            let verdict = match interval {
                None => Verdict::NoData,
                Some((lo, hi)) => {
                    let up = lo > 0.0;
                    let down = hi < 0.0;
                    if !(up || down) {
                        Verdict::Inconclusive
                    } else if up == m.higher_is_better() {
                        Verdict::Better
                    } else {
                        Verdict::Worse
                    }
                }
            };
            out.push(MetricResult {
                device_class: class.clone(),
                metric: m,
                diff: at.value - ac.value,
                control: ac,
                treatment: at,
                low: interval.map(|i| i.0),
                high: interval.map(|i| i.1),
                level,
                verdict,
            });
        }
    }
    out
}

/// What to do, and why (`halted`: the rollout's halt reason, if it was).
pub fn decide(results: &[MetricResult], halted: Option<&str>) -> (Decision, String) {
    if let Some(why) = halted {
        return (
            Decision::Stop,
            format!("the treatment's rollout was halted: {why}"),
        );
    }
    let show = |r: &MetricResult| {
        format!(
            "{} {} in {}: {:.4} vs control {:.4} (difference {:+.4}, interval {:+.4}..{:+.4})",
            r.metric.as_str(),
            match r.verdict {
                Verdict::Worse => "worse",
                _ => "better",
            },
            r.device_class,
            r.treatment.value,
            r.control.value,
            r.diff,
            r.low.unwrap_or(0.0),
            r.high.unwrap_or(0.0)
        )
    };
    if let Some(r) = results.iter().find(|r| r.verdict == Verdict::Worse) {
        return (Decision::Stop, show(r));
    }
    if let Some(r) = results.iter().find(|r| r.verdict == Verdict::Better) {
        return (Decision::Ship, show(r));
    }
    let judged = results
        .iter()
        .filter(|r| r.verdict == Verdict::Inconclusive)
        .count();
    let why = if results.is_empty() {
        "no device class has data in both arms yet".to_string()
    } else {
        format!(
            "no metric differs yet ({judged} of {} class × metric comparisons judged, none significant)",
            results.len()
        )
    };
    (Decision::KeepRunning, why)
}

#[cfg(test)]
mod tests;
