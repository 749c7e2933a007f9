//! The route decision for an app (UniFFI `RoutePolicy`, C
//! `outpost_route_decide`): local model or cloud for one request, and why,
//! under the app's route policy (the same TOML as `outpost serve
//! --route-policy`). The app calls its cloud itself; the router here is
//! built without its cloud client (`outpost-router`'s `cloud` feature off),
//! so a policy's `[cloud] url` only says a cloud exists. The app supplies
//! the device conditions (battery, heat) instead of sysfs.

use std::ffi::c_char;
use std::sync::Arc;

use outpost_router::{decide, Policy, RequestInfo, Router};

use crate::api::OutpostError;
use crate::{give, guarded, text};

/// One request to route.
#[derive(Debug, Clone, Default, uniffi::Record, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteRequest {
    /// All of the request's texts, joined.
    #[uniffi(default = "")]
    pub text: String,
    #[uniffi(default = None)]
    pub max_tokens: Option<u32>,
    /// The local model's context, in tokens (default 2048).
    #[uniffi(default = 0)]
    pub local_ctx: u32,
    /// The app's name in the policy (`[apps.NAME]`).
    #[uniffi(default = None)]
    pub app: Option<String>,
    /// `local_only`, `prefer_local`, `auto`, `prefer_cloud`, `cloud_only`.
    #[uniffi(default = None)]
    pub mode: Option<String>,
    #[uniffi(default = None)]
    pub latency_budget_ms: Option<f64>,
    /// Regions whose phone formats the guard reads (`NL,DE`).
    #[uniffi(default = None)]
    pub region: Option<String>,
    /// The device's state as the app sees it (default: not low, not hot).
    #[uniffi(default = None)]
    pub battery_low: Option<bool>,
    #[uniffi(default = None)]
    pub thermal_throttled: Option<bool>,
}

/// Where a request goes, and why.
#[derive(Debug, Clone, uniffi::Record, serde::Serialize)]
pub struct RouteDecision {
    /// `local` or `cloud`.
    pub target: String,
    /// e.g. `simple`, `fit`, `sensitive`, `latency_budget`, `mode`.
    pub reason: String,
    /// Personal data the guard found in the text (redact it before a cloud
    /// call: `PiiGuard.redact`).
    pub findings: u64,
}

/// An app's route policy. Thread-safe.
#[derive(uniffi::Object)]
pub struct RoutePolicy(Router);

#[uniffi::export]
impl RoutePolicy {
    /// Parses `policy_toml` (the route policy file's text).
    #[uniffi::constructor]
    pub fn new(policy_toml: String) -> Result<Arc<Self>, OutpostError> {
        route_policy(&policy_toml)
            .map(|r| Arc::new(RoutePolicy(r)))
            .map_err(|reason| OutpostError::Failed { reason })
    }

    /// The decision for one request.
    pub fn decide(&self, request: RouteRequest) -> Result<RouteDecision, OutpostError> {
        decide_one(&self.0, &request).map_err(|reason| OutpostError::Failed { reason })
    }
}

fn route_policy(toml: &str) -> Result<Router, String> {
    let policy =
        Policy::parse(toml, std::path::Path::new("route policy")).map_err(|e| e.to_string())?;
    Router::new(policy, None).map_err(|e| e.to_string())
}

fn decide_one(router: &Router, r: &RouteRequest) -> Result<RouteDecision, String> {
    let budget = r.latency_budget_ms.map(|b| b.to_string());
    let info = RequestInfo {
        app: r.app.as_deref(),
        mode: r.mode.as_deref(),
        latency_budget_ms: budget.as_deref(),
        region: r.region.as_deref(),
        text: &r.text,
        max_tokens: r.max_tokens,
        local_ctx: if r.local_ctx == 0 { 2048 } else { r.local_ctx },
        ..RequestInfo::default()
    };
    let mut s = router.signals(&info).map_err(|e| e.to_string())?;
    s.battery_low = r.battery_low.unwrap_or(false);
    s.thermal_throttled = r.thermal_throttled.unwrap_or(false);
    let d = decide(&s);
    Ok(RouteDecision {
        target: d.target.as_str().to_string(),
        reason: d.reason.as_str().to_string(),
        findings: s.findings as u64,
    })
}

/// The decision for `request_json` (`{"text", "max_tokens", "local_ctx",
/// "app", "mode", "latency_budget_ms", "region", "battery_low",
/// "thermal_throttled"}`, any subset) under the route policy
/// `policy_toml`, as JSON `{"target", "reason", "findings"}`; free it with
/// `outpost_string_free`. NULL on failure. Thread-safe.
///
/// # Safety
/// Both arguments are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn outpost_route_decide(
    policy_toml: *const c_char,
    request_json: *const c_char,
) -> *mut c_char {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let policy = unsafe { text(policy_toml, "policy_toml") }?;
        // SAFETY: as the caller promises.
        let json = unsafe { text(request_json, "request_json") }?;
        let request: RouteRequest =
            serde_json::from_str(json).map_err(|e| format!("request_json: {e}"))?;
        let d = decide_one(&route_policy(policy)?, &request)?;
        Ok(give(serde_json::to_string(&d).map_err(|e| e.to_string())?))
    })
}
