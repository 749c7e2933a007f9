//! The hybrid router: decides per request whether the local model or an
//! OpenAI-compatible cloud answers, says why, and makes sure nothing
//! reaches the cloud that has not passed the PII guard (the cloud client
//! only takes an [`outpost_guard::Redacted`] body). The decision is the pure
//! function [`decide`]; [`Router`] gathers its signals (policy, headers,
//! text features, guard findings, device state, breaker, speeds, spend).
//! The local path stays with the caller (the server): this crate does not
//! link the engine. Without the default feature `cloud` there is no cloud
//! client (nor tokio or reqwest): the decision alone, for an app that calls
//! its cloud itself (`outpost-ffi`); a policy's `[cloud] url` then only
//! says that a cloud exists.
//!
//! ```
//! use outpost_router::{decide, Mode, Policy, RequestInfo, Router, Target};
//! let policy = Policy::parse("mode = \"auto\"\n[cloud]\nurl = \"http://127.0.0.1:9/v1\"\n",
//!     std::path::Path::new("policy.toml")).unwrap();
//! let router = Router::new(policy, None).unwrap();
//! let info = RequestInfo { text: "What is 2 + 2?", max_tokens: Some(8), local_ctx: 2048,
//!     ..RequestInfo::default() };
//! let d = decide(&router.signals(&info).unwrap());
//! assert_eq!((d.target, d.reason.as_str()), (Target::Local, "simple"));
//! ```

#[cfg(feature = "cloud")]
mod cloud;
mod complexity;
mod decide;
mod device;
mod health;
mod policy;
#[cfg(feature = "cloud")]
mod restore;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use outpost_guard::Scanner;
#[cfg(feature = "cloud")]
use outpost_guard::{redact_texts, Action, GuardError, Redacted, Vault};

pub use outpost_guard::Region;

#[cfg(feature = "cloud")]
pub use cloud::{CloudAnswer, CloudBody, CloudClient, CloudError, Endpoint};
pub use complexity::{complexity, estimate_tokens};
pub use decide::{decide, Decision, Reason, Signals, Target};
pub use device::{read_sysfs, DeviceMonitor, DeviceState};
pub use health::{Breaker, Speeds, Spend};
pub use policy::{
    locale_default, parse_regions, AppConfig, AutoConfig, BreakerConfig, CascadeConfig,
    CloudConfig, DeviceConfig, GuardConfig, LocalConfig, Mode, Policy, PolicyError, Sensitive,
    SpendConfig,
};
#[cfg(feature = "cloud")]
pub use restore::{restore_answer, restore_stream, total_tokens, StreamStats};

/// Request headers the router reads.
pub const HEADER_APP: &str = "x-outpost-app";
pub const HEADER_MODE: &str = "x-outpost-route-mode";
pub const HEADER_BUDGET: &str = "x-outpost-latency-budget-ms";
/// Regions whose national phone formats the guard reads in this request
/// (`NL,DE`), instead of the policy's.
pub const HEADER_REGION: &str = "x-outpost-region";
/// The response header that explains the decision.
pub const HEADER_ROUTE: &str = "x-outpost-route";

/// What the server knows about one request before deciding.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo<'a> {
    pub app: Option<&'a str>,
    pub bearer: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub latency_budget_ms: Option<&'a str>,
    /// The `x-outpost-region` header.
    pub region: Option<&'a str>,
    /// All of the request's texts, joined.
    pub text: &'a str,
    pub max_tokens: Option<u32>,
    /// The local model's context per sequence.
    pub local_ctx: u32,
    /// Requests waiting per local slot.
    pub queued_per_slot: f64,
}

/// A header the router could not use.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("{HEADER_MODE}: {0:?} is not a mode; use one of {modes}", modes = Mode::NAMES)]
    Mode(String),
    #[error("{HEADER_BUDGET}: {0:?} is not a number of milliseconds (e.g. 1500)")]
    Budget(String),
    #[error("{HEADER_APP}: no app {0:?} in the route policy; known apps: {1}")]
    App(String, String),
    #[error("{HEADER_REGION}: {0}")]
    Region(String),
}

impl HeaderError {
    pub fn header(&self) -> &'static str {
        match self {
            HeaderError::Mode(_) => HEADER_MODE,
            HeaderError::Budget(_) => HEADER_BUDGET,
            HeaderError::App(..) => HEADER_APP,
            HeaderError::Region(_) => HEADER_REGION,
        }
    }
}

/// A router that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Cloud(String),
    #[error("the route policy uses mode cloud_only{0} but names no cloud: give --cloud-url URL or [cloud] url in the policy")]
    CloudOnlyWithoutCloud(String),
}

/// One explained decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEvent {
    pub target: Target,
    pub reason: Reason,
}

/// The router's state, shared by all requests.
pub struct Router {
    pub policy: Policy,
    #[cfg(feature = "cloud")]
    pub cloud: Option<CloudClient>,
    /// A cloud is configured (its client, with the feature `cloud`).
    has_cloud: bool,
    pub breaker: Breaker,
    pub speeds: Speeds,
    pub spend: Spend,
    pub device: DeviceMonitor,
    scanner: Scanner,
    counts: Mutex<BTreeMap<(Target, Reason), u64>>,
}

impl Router {
    /// `cloud_url` overrides the policy's `[cloud] url`.
    pub fn new(mut policy: Policy, cloud_url: Option<String>) -> Result<Router, RouterError> {
        if let Some(url) = cloud_url {
            policy.cloud.url = Some(url);
        }
        #[cfg(feature = "cloud")]
        let cloud = match &policy.cloud.url {
            Some(url) => Some(CloudClient::new(url, &policy.cloud).map_err(RouterError::Cloud)?),
            None => None,
        };
        let has_cloud = policy.cloud.url.is_some();
        if !has_cloud {
            let apps: Vec<&str> = policy
                .apps
                .iter()
                .filter(|(_, a)| a.mode == Mode::CloudOnly)
                .map(|(n, _)| n.as_str())
                .collect();
            if policy.mode == Mode::CloudOnly || !apps.is_empty() {
                let which = if apps.is_empty() {
                    String::new()
                } else {
                    format!(" (apps {})", apps.join(", "))
                };
                return Err(RouterError::CloudOnlyWithoutCloud(which));
            }
        }
        Ok(Router {
            breaker: Breaker::new(policy.breaker.clone()),
            speeds: Speeds::new(&policy.local, &policy.cloud),
            spend: Spend::new(policy.spend.cap_usd, policy.spend.usd_per_1k_tokens),
            device: DeviceMonitor::new(policy.device.clone()),
            scanner: Scanner::with_regions(policy.guard.regions()),
            counts: Mutex::new(BTreeMap::new()),
            #[cfg(feature = "cloud")]
            cloud,
            has_cloud,
            policy,
        })
    }

    /// The app a request belongs to, checked.
    pub fn app<'a>(
        &'a self,
        info: &RequestInfo<'_>,
    ) -> Result<Option<(&'a str, &'a AppConfig)>, HeaderError> {
        let found = self.policy.app(info.app, info.bearer);
        if let (Some(name), None) = (info.app, &found) {
            let known: Vec<&str> = self.policy.apps.keys().map(String::as_str).collect();
            return Err(HeaderError::App(
                name.to_string(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            ));
        }
        Ok(found)
    }

    /// The regions whose phone formats the guard reads for a request: its
    /// `x-outpost-region` header's, else the policy's (or the locale's).
    pub fn regions(&self, header: Option<&str>) -> Result<Vec<Region>, HeaderError> {
        match header {
            Some(h) => parse_regions(h).map_err(HeaderError::Region),
            None => Ok(self.scanner.regions.clone()),
        }
    }

    /// Gathers the decision's inputs for one request.
    pub fn signals(&self, info: &RequestInfo<'_>) -> Result<Signals, HeaderError> {
        let regions = self.regions(info.region)?;
        let app = self.app(info)?;
        let mut mode = app.map_or(self.policy.mode, |(_, a)| a.mode);
        if let Some(m) = info.mode {
            mode = Mode::parse(m).ok_or_else(|| HeaderError::Mode(m.to_string()))?;
        }
        let sensitive = app
            .and_then(|(_, a)| a.sensitive)
            .unwrap_or(self.policy.auto.sensitive);
        let latency_budget_ms = match info.latency_budget_ms {
            None => None,
            Some(b) => Some(
                b.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| *v >= 0.0 && v.is_finite())
                    .ok_or_else(|| HeaderError::Budget(b.to_string()))?,
            ),
        };
        let auto = &self.policy.auto;
        let prompt_tokens = estimate_tokens(info.text.len());
        let answer = info.max_tokens.unwrap_or(auto.default_max_tokens);
        let device = self.device.state();
        Ok(Signals {
            mode,
            sensitive,
            findings: self.scanner.scan_in(info.text, &regions).len(),
            prompt_tokens,
            local_ctx: info.local_ctx,
            complexity: complexity(info.text, info.max_tokens, auto),
            complexity_threshold: auto.complexity_threshold,
            latency_budget_ms,
            local_predicted_ms: self
                .speeds
                .local_ms(prompt_tokens, answer, info.queued_per_slot),
            cloud_predicted_ms: self.speeds.cloud_ms(answer),
            battery_low: device.battery_low(self.device.config()),
            thermal_throttled: device.throttled(self.device.config()),
            cloud_configured: self.has_cloud,
            breaker_open: self.has_cloud && self.breaker.is_open(Instant::now()),
            spend_exhausted: self.spend.exhausted(),
        })
    }

    /// Replaces personal data in every text of `body` with placeholders,
    /// reading national phone numbers of `regions`; the vault restores them
    /// in the answer.
    #[cfg(feature = "cloud")]
    pub fn redact(
        &self,
        body: serde_json::Value,
        regions: &[Region],
    ) -> Result<(Redacted<CloudBody>, Vault, usize), GuardError> {
        let mut vault = Vault::new();
        let mut scanner = self.scanner.clone();
        scanner.regions = regions.to_vec();
        let (r, n) = redact_texts(&scanner, CloudBody(body), &Action::Placeholder, &mut vault)?;
        Ok((r, vault, n))
    }

    /// Counts a final decision (the server also spools it as telemetry
    /// when it follows a device store).
    pub fn record(&self, event: RouteEvent) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((event.target, event.reason)).or_insert(0) += 1;
        }
    }

    /// Decisions counted so far: (route, reason, count), for
    /// `outpost_route_decisions_total{route,reason}`.
    pub fn decisions(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.counts.lock().map_or_else(
            |_| Vec::new(),
            |c| {
                c.iter()
                    .map(|((t, r), n)| (t.as_str(), r.as_str(), *n))
                    .collect()
            },
        )
    }

    /// The estimates the router decides with, as (metric name, help, value).
    pub fn estimates(&self) -> [(&'static str, &'static str, f64); 5] {
        let (pp, tg, first, per) = self.speeds.snapshot();
        [
            (
                "route_local_prefill_tokens_per_second",
                "Local prompt speed the router predicts with.",
                pp,
            ),
            (
                "route_local_decode_tokens_per_second",
                "Local generation speed the router predicts with.",
                tg,
            ),
            (
                "route_cloud_first_token_ms",
                "Rolling estimate of the cloud's time to first token.",
                first,
            ),
            (
                "route_cloud_ms_per_token",
                "Rolling estimate of the cloud's time per token.",
                per,
            ),
            (
                "route_cloud_spend_usd",
                "Cloud spend since the server started.",
                self.spend.spent(),
            ),
        ]
    }
}
