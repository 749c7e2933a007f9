//! The decision: a pure function from the request's signals to a route and
//! the reason for it. No I/O, no clock, no locks: everything it needs is in
//! [`Signals`], gathered by the caller, so it is cheap (see `cargo xtask
//! bench-router`) and every decision can be replayed in a test.

use crate::policy::{Mode, Sensitive};

/// Where a request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Local,
    Cloud,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Cloud => "cloud",
        }
    }
}

/// Why. The names are the `reason=` of the `x-outpost-route` header and the
/// label of `outpost_route_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The mode leaves no choice (local_only, cloud_only).
    Mode,
    /// prefer_local, and nothing forces the cloud.
    PreferLocal,
    /// prefer_cloud, and nothing keeps it local.
    PreferCloud,
    /// The guard found personal data and the policy keeps it local.
    Sensitive,
    /// No cloud is configured.
    NoCloud,
    /// The breaker is open: the cloud failed recently.
    CloudUnavailable,
    /// The spend cap is reached.
    SpendCap,
    /// The prompt does not fit the local context.
    Fit,
    /// The local prediction exceeds the latency budget; the cloud's is lower.
    LatencyBudget,
    /// Battery low and not charging.
    BatteryLow,
    /// The device is throttling.
    Thermal,
    /// The prompt looks hard (long, long answer, reasoning or code cues).
    Complexity,
    /// Nothing points to the cloud.
    Simple,
    /// Chosen cloud failed; answered locally.
    CloudFailed,
    /// The local answer's mean logprob was below the cascade threshold.
    Cascade,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Reason::Mode,
        Reason::PreferLocal,
        Reason::PreferCloud,
        Reason::Sensitive,
        Reason::NoCloud,
        Reason::CloudUnavailable,
        Reason::SpendCap,
        Reason::Fit,
        Reason::LatencyBudget,
        Reason::BatteryLow,
        Reason::Thermal,
        Reason::Complexity,
        Reason::Simple,
        Reason::CloudFailed,
        Reason::Cascade,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Mode => "mode",
            Reason::PreferLocal => "prefer_local",
            Reason::PreferCloud => "prefer_cloud",
            Reason::Sensitive => "sensitive",
            Reason::NoCloud => "no_cloud",
            Reason::CloudUnavailable => "cloud_unavailable",
            Reason::SpendCap => "spend_cap",
            Reason::Fit => "fit",
            Reason::LatencyBudget => "latency_budget",
            Reason::BatteryLow => "battery_low",
            Reason::Thermal => "thermal",
            Reason::Complexity => "complexity",
            Reason::Simple => "simple",
            Reason::CloudFailed => "cloud_failed",
            Reason::Cascade => "cascade",
        }
    }
}

/// Everything the decision looks at, for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    pub mode: Mode,
    pub sensitive: Sensitive,
    /// Guard findings in the request's texts.
    pub findings: usize,
    /// Estimated prompt tokens.
    pub prompt_tokens: u32,
    /// The local context per sequence, in tokens.
    pub local_ctx: u32,
    /// 0..1, from [`crate::complexity`].
    pub complexity: f32,
    pub complexity_threshold: f32,
    /// `x-outpost-latency-budget-ms`.
    pub latency_budget_ms: Option<f64>,
    pub local_predicted_ms: f64,
    pub cloud_predicted_ms: f64,
    pub battery_low: bool,
    pub thermal_throttled: bool,
    pub cloud_configured: bool,
    /// The breaker is open.
    pub breaker_open: bool,
    pub spend_exhausted: bool,
}

/// The outcome: where, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub target: Target,
    pub reason: Reason,
}

const fn local(reason: Reason) -> Decision {
    Decision {
        target: Target::Local,
        reason,
    }
}

const fn cloud(reason: Reason) -> Decision {
    Decision {
        target: Target::Cloud,
        reason,
    }
}

/// Picks the route. Order of precedence in `auto`: what keeps a request
/// local (no cloud, personal data under `sensitive = "local"`, open
/// breaker, spend cap), then what needs the cloud (fit, latency budget,
/// device state, complexity); otherwise local.
pub fn decide(s: &Signals) -> Decision {
    let keeps_local = || {
        if !s.cloud_configured {
            Some(Reason::NoCloud)
        } else if s.findings > 0 && s.sensitive == Sensitive::Local {
            Some(Reason::Sensitive)
        } else if s.breaker_open {
            Some(Reason::CloudUnavailable)
        } else if s.spend_exhausted {
            Some(Reason::SpendCap)
        } else {
            None
        }
    };
    let fits = s.prompt_tokens < s.local_ctx;
    match s.mode {
        Mode::LocalOnly => local(Reason::Mode),
        Mode::CloudOnly => cloud(Reason::Mode),
        Mode::PreferCloud => keeps_local().map_or(cloud(Reason::PreferCloud), local),
        Mode::PreferLocal => match keeps_local() {
            None if !fits => cloud(Reason::Fit),
            _ => local(Reason::PreferLocal),
        },
        Mode::Auto => {
            if let Some(r) = keeps_local() {
                return local(r);
            }
            if !fits {
                return cloud(Reason::Fit);
            }
            if s.latency_budget_ms.is_some_and(|b| {
                s.local_predicted_ms > b && s.cloud_predicted_ms < s.local_predicted_ms
            }) {
                return cloud(Reason::LatencyBudget);
            }
            if s.thermal_throttled {
                return cloud(Reason::Thermal);
            }
            if s.battery_low {
                return cloud(Reason::BatteryLow);
            }
            if s.complexity >= s.complexity_threshold {
                return cloud(Reason::Complexity);
            }
            local(Reason::Simple)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn base() -> Signals {
        Signals {
            mode: Mode::Auto,
            sensitive: Sensitive::Local,
            findings: 0,
            prompt_tokens: 20,
            local_ctx: 2048,
            complexity: 0.1,
            complexity_threshold: 0.6,
            latency_budget_ms: None,
            local_predicted_ms: 500.0,
            cloud_predicted_ms: 300.0,
            battery_low: false,
            thermal_throttled: false,
            cloud_configured: true,
            breaker_open: false,
            spend_exhausted: false,
        }
    }

    fn with(f: impl FnOnce(&mut Signals)) -> (Target, &'static str) {
        let mut s = base();
        f(&mut s);
        let d = decide(&s);
        (d.target, d.reason.as_str())
    }

    #[test]
    fn auto_signals() {
        use Target::*;
        assert_eq!(with(|_| ()), (Local, "simple"));
        assert_eq!(with(|s| s.complexity = 0.7), (Cloud, "complexity"));
        assert_eq!(with(|s| s.prompt_tokens = 5000), (Cloud, "fit"));
        assert_eq!(
            with(|s| s.latency_budget_ms = Some(100.0)),
            (Cloud, "latency_budget")
        );
        // Budget tight for both, the cloud slower still: stay.
        assert_eq!(
            with(|s| {
                s.latency_budget_ms = Some(100.0);
                s.cloud_predicted_ms = 900.0;
            }),
            (Local, "simple")
        );
        assert_eq!(with(|s| s.battery_low = true), (Cloud, "battery_low"));
        assert_eq!(with(|s| s.thermal_throttled = true), (Cloud, "thermal"));
        // What keeps it local wins over what wants the cloud.
        let all_cloud = |s: &mut Signals| {
            s.complexity = 1.0;
            s.prompt_tokens = 9000;
            s.battery_low = true;
        };
        assert_eq!(
            with(|s| {
                all_cloud(s);
                s.findings = 1
            }),
            (Local, "sensitive")
        );
        assert_eq!(
            with(|s| {
                all_cloud(s);
                s.breaker_open = true
            }),
            (Local, "cloud_unavailable")
        );
        assert_eq!(
            with(|s| {
                all_cloud(s);
                s.spend_exhausted = true
            }),
            (Local, "spend_cap")
        );
        assert_eq!(
            with(|s| {
                all_cloud(s);
                s.cloud_configured = false
            }),
            (Local, "no_cloud")
        );
        // Under `redact`, findings do not keep it local.
        assert_eq!(
            with(|s| {
                s.findings = 2;
                s.sensitive = Sensitive::Redact;
                s.complexity = 0.9;
            }),
            (Cloud, "complexity")
        );
    }

    #[test]
    fn modes() {
        use Target::*;
        assert_eq!(
            with(|s| {
                s.mode = Mode::LocalOnly;
                s.prompt_tokens = 9999
            }),
            (Local, "mode")
        );
        assert_eq!(
            with(|s| {
                s.mode = Mode::CloudOnly;
                s.findings = 3
            }),
            (Cloud, "mode")
        );
        assert_eq!(
            with(|s| s.mode = Mode::PreferCloud),
            (Cloud, "prefer_cloud")
        );
        assert_eq!(
            with(|s| {
                s.mode = Mode::PreferCloud;
                s.breaker_open = true
            }),
            (Local, "cloud_unavailable")
        );
        assert_eq!(
            with(|s| {
                s.mode = Mode::PreferLocal;
                s.complexity = 1.0
            }),
            (Local, "prefer_local")
        );
        assert_eq!(
            with(|s| {
                s.mode = Mode::PreferLocal;
                s.prompt_tokens = 4096
            }),
            (Cloud, "fit")
        );
        assert_eq!(
            with(|s| {
                s.mode = Mode::PreferLocal;
                s.prompt_tokens = 4096;
                s.findings = 1
            }),
            (Local, "prefer_local")
        );
    }

    #[test]
    fn reason_names_are_unique_metric_labels() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
