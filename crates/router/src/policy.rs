//! The routing policy, read from TOML: a default mode, per-app sections
//! (picked by the `x-outpost-app` header or an app's API key), the cloud
//! upstream, the `auto` thresholds, device-state overrides, the breaker and
//! the spend cap. Every field has a documented default; unknown fields are
//! refused, and every error names the line.
//!
//! ```toml
//! mode = "auto"                  # local_only | prefer_local | auto | prefer_cloud | cloud_only
//! [cloud]
//! url = "https://api.example.com/v1"
//! model = "gpt-4o-mini"
//! [auto]
//! sensitive = "redact"           # or "local": personal data never leaves the device
//! [apps.notes]
//! mode = "local_only"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use outpost_guard::{locale_region, Region};
use serde::Deserialize;

/// Where a request may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Never the cloud.
    LocalOnly,
    /// Local, unless the prompt does not fit the local context.
    PreferLocal,
    /// Decided per request from the signals (see [`crate::decide`]).
    Auto,
    /// The cloud, unless it is unreachable, over budget, or the guard keeps
    /// the request local.
    PreferCloud,
    /// Always the cloud (redacted); if it fails, 503.
    CloudOnly,
}

impl Mode {
    pub const NAMES: &'static str = "local_only, prefer_local, auto, prefer_cloud, cloud_only";

    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s.trim() {
            "local_only" => Mode::LocalOnly,
            "prefer_local" => Mode::PreferLocal,
            "auto" => Mode::Auto,
            "prefer_cloud" => Mode::PreferCloud,
            "cloud_only" => Mode::CloudOnly,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::LocalOnly => "local_only",
            Mode::PreferLocal => "prefer_local",
            Mode::Auto => "auto",
            Mode::PreferCloud => "prefer_cloud",
            Mode::CloudOnly => "cloud_only",
        }
    }
}

/// What `auto` does with a request the guard found personal data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitive {
    /// Keep it on the device.
    Local,
    /// Replace the data with placeholders; the other signals decide, and
    /// the answer gets the values back.
    Redact,
}

/// The whole policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Mode for requests of no known app. Default `auto`.
    pub mode: Mode,
    pub cloud: CloudConfig,
    pub auto: AutoConfig,
    pub local: LocalConfig,
    pub device: DeviceConfig,
    pub breaker: BreakerConfig,
    pub spend: SpendConfig,
    pub cascade: CascadeConfig,
    pub guard: GuardConfig,
    /// Per-app sections, `[apps.NAME]`.
    pub apps: BTreeMap<String, AppConfig>,
}

/// `[guard]`: how the guard reads the texts it checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Regions whose national phone formats are read (`["US", "GB"]`).
    /// Empty: the region of the server's locale (LC_ALL, LC_TELEPHONE,
    /// LANG), else the US. A request can name others in `x-outpost-region`.
    pub regions: Vec<String>,
}

impl GuardConfig {
    /// The configured regions, or the locale's.
    pub fn regions(&self) -> Vec<Region> {
        let parsed: Vec<Region> = self.regions.iter().filter_map(|r| r.parse().ok()).collect();
        if parsed.is_empty() {
            vec![locale_default()]
        } else {
            parsed
        }
    }
}

/// The region of the process's locale (LC_ALL, then LC_TELEPHONE, then
/// LANG), or the US when none names one (the C locale).
pub fn locale_default() -> Region {
    ["LC_ALL", "LC_TELEPHONE", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .and_then(|v| locale_region(&v))
        .unwrap_or(Region::US)
}

/// Parses `US,GB`: every code one libphonenumber has metadata for.
pub fn parse_regions(list: &str) -> Result<Vec<Region>, String> {
    let out: Vec<Region> = list
        .split(',')
        .filter(|c| !c.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if out.is_empty() {
        return Err("give at least one region code, such as US".into());
    }
    Ok(out)
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Auto,
            cloud: CloudConfig::default(),
            auto: AutoConfig::default(),
            local: LocalConfig::default(),
            device: DeviceConfig::default(),
            breaker: BreakerConfig::default(),
            spend: SpendConfig::default(),
            cascade: CascadeConfig::default(),
            guard: GuardConfig::default(),
            apps: BTreeMap::new(),
        }
    }
}

/// The OpenAI-compatible upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudConfig {
    /// Base URL up to and including `/v1`, e.g. `https://api.openai.com/v1`.
    /// `outpost serve --cloud-url` overrides it. None: no cloud.
    pub url: Option<String>,
    /// Model name sent upstream. None: the client's own model name.
    pub model: Option<String>,
    /// Environment variable holding the API key (sent as Bearer).
    /// Default `OUTPOST_CLOUD_API_KEY`.
    pub api_key_env: String,
    /// Whole-request timeout for non-streaming calls, and time to the
    /// response head for streaming ones, in ms. Default 60000.
    pub timeout_ms: u64,
    /// Prior for the rolling cloud latency estimate: time to the first
    /// token, ms. Default 600.
    pub expected_first_token_ms: f64,
    /// Prior: ms per generated token. Default 20.
    pub expected_ms_per_token: f64,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            url: None,
            model: None,
            api_key_env: "OUTPOST_CLOUD_API_KEY".into(),
            timeout_ms: 60_000,
            expected_first_token_ms: 600.0,
            expected_ms_per_token: 20.0,
        }
    }
}

/// The thresholds of `auto`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoConfig {
    /// Personal data found: `local` (default) or `redact`.
    pub sensitive: Sensitive,
    /// Complexity score (0..1) at or above which `auto` picks the cloud.
    /// Default 0.6.
    pub complexity_threshold: f32,
    /// Prompt length (estimated tokens) that counts as long. Default 1024.
    pub long_prompt_tokens: u32,
    /// Requested max tokens that count as a long answer. Default 512.
    pub long_answer_tokens: u32,
    /// Answer length assumed when a request sets no max_tokens. Default 256.
    pub default_max_tokens: u32,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig {
            sensitive: Sensitive::Local,
            complexity_threshold: 0.6,
            long_prompt_tokens: 1024,
            long_answer_tokens: 512,
            default_max_tokens: 256,
        }
    }
}

/// The local model's speed, for the latency prediction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Fixed prompt speed (tokens/s) instead of the measured one.
    pub prefill_tok_s: Option<f64>,
    /// Fixed generation speed (tokens/s) instead of the measured one.
    pub decode_tok_s: Option<f64>,
}

/// Device state: read from Linux sysfs unless overridden here or in
/// `state_file` (JSON `{"battery_percent": 15, "charging": false,
/// "thermal_throttled": true}`, read at most once a second).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Battery at or below this percentage, not charging, counts as low.
    /// Default 20.
    pub battery_low_percent: u8,
    /// A zone at or above this temperature (°C) counts as throttling.
    /// Default 80.
    pub thermal_limit_c: f32,
    pub state_file: Option<PathBuf>,
    pub battery_percent: Option<u8>,
    pub charging: Option<bool>,
    pub thermal_throttled: Option<bool>,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            battery_low_percent: 20,
            thermal_limit_c: 80.0,
            state_file: None,
            battery_percent: None,
            charging: None,
            thermal_throttled: None,
        }
    }
}

/// The cloud circuit breaker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open it. Default 3.
    pub failures: u32,
    /// How long it stays open before one trial request, ms. Default 30000.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            cooldown_ms: 30_000,
        }
    }
}

/// The cloud spend cap (in memory: it restarts with the server).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpendConfig {
    /// Stop using the cloud once this much was spent. None: no cap.
    pub cap_usd: Option<f64>,
    /// Price per 1000 tokens (prompt + completion). Default 0.
    pub usd_per_1k_tokens: f64,
}

/// Answer locally first; escalate weak answers to the cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CascadeConfig {
    /// Only in `auto`, only for non-streaming requests. Default false.
    pub enabled: bool,
    /// Escalate when the local answer's mean token logprob is below this.
    /// Default -1.0.
    pub min_mean_logprob: f32,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig {
            enabled: false,
            min_mean_logprob: -1.0,
        }
    }
}

/// One app's section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub mode: Mode,
    /// Overrides `[auto] sensitive` for this app.
    pub sensitive: Option<Sensitive>,
    /// Bearer keys that identify this app (besides `x-outpost-app: NAME`).
    #[serde(default)]
    pub api_keys: Vec<String>,
}

/// A policy that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the route policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("route policy {path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text, path)
    }

    /// Parses policy text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let invalid = |line: usize, message: String| PolicyError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            let message = e.message().trim().to_string();
            invalid(line, format!("{message} (modes: {})", Mode::NAMES))
        })?;
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(needle))
                .map_or(1, |i| i + 1)
        };
        let a = &policy.auto;
        if !(0.0..=1.0).contains(&a.complexity_threshold) {
            return Err(invalid(
                line_of("complexity_threshold"),
                format!(
                    "complexity_threshold = {} must be between 0 and 1 (0: everything is complex, 1: only the most complex prompts)",
                    a.complexity_threshold
                ),
            ));
        }
        for (key, v) in [
            ("prefill_tok_s", policy.local.prefill_tok_s),
            ("decode_tok_s", policy.local.decode_tok_s),
        ] {
            if v.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
                return Err(invalid(
                    line_of(key),
                    format!("{key} = {v:?} must be a positive number of tokens per second"),
                ));
            }
        }
        if let Some(url) = &policy.cloud.url {
            check_url(url).map_err(|m| invalid(line_of("url"), m))?;
        }
        if policy.spend.cap_usd.is_some_and(|c| c < 0.0) || policy.spend.usd_per_1k_tokens < 0.0 {
            return Err(invalid(
                line_of("cap_usd").max(line_of("usd_per_1k_tokens")),
                "spend values must not be negative".into(),
            ));
        }
        for r in &policy.guard.regions {
            if let Err(e) = r.parse::<Region>() {
                return Err(invalid(line_of("regions"), format!("[guard] regions: {e}")));
            }
        }
        if policy.breaker.failures == 0 {
            return Err(invalid(
                line_of("failures"),
                "failures = 0 would open the breaker before any request: use 1 or more".into(),
            ));
        }
        Ok(policy)
    }

    /// The app a request belongs to: its `x-outpost-app` header, else the
    /// app whose `api_keys` holds its bearer key.
    pub fn app(&self, header: Option<&str>, bearer: Option<&str>) -> Option<(&str, &AppConfig)> {
        if let Some(name) = header {
            return self.apps.get_key_value(name).map(|(k, v)| (k.as_str(), v));
        }
        let key = bearer?;
        self.apps
            .iter()
            .find(|(_, a)| a.api_keys.iter().any(|k| k == key))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// An upstream URL must be http(s) and name a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("cloud url {url:?} must start with http:// or https:// (e.g. https://api.openai.com/v1)")
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("cloud url {url:?} names no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Policy, PolicyError> {
        Policy::parse(t, Path::new("p.toml"))
    }

    #[test]
    fn defaults_and_apps() {
        let p = parse(
            "mode = \"prefer_local\"\n[cloud]\nurl = \"http://127.0.0.1:1/v1\"\n[apps.notes]\nmode = \"local_only\"\napi_keys = [\"k1\"]\n",
        )
        .expect("valid");
        assert_eq!(p.mode, Mode::PreferLocal);
        assert_eq!(p.auto.sensitive, Sensitive::Local);
        assert_eq!(
            p.app(Some("notes"), None).map(|a| a.1.mode),
            Some(Mode::LocalOnly)
        );
        assert_eq!(p.app(None, Some("k1")).map(|a| a.0), Some("notes"));
        assert!(p.app(Some("other"), Some("k1")).is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("mode = \"auto\"\n\n[auto]\nsensitive = \"maybe\"\n")
            .expect_err("bad enum")
            .to_string();
        assert!(e.contains("line 4") && e.contains("maybe"), "{e}");
        let e = parse("mode = \"auto\"\n[cloud]\nurll = \"x\"\n")
            .expect_err("unknown field")
            .to_string();
        assert!(e.contains("line 3") && e.contains("urll"), "{e}");
        let e = parse("[cloud]\nurl = \"ftp://x\"\n")
            .expect_err("url")
            .to_string();
        assert!(e.contains("line 2") && e.contains("http://"), "{e}");
        let e = parse("[auto]\n\ncomplexity_threshold = 3\n")
            .expect_err("range")
            .to_string();
        assert!(e.contains("line 3") && e.contains("between 0 and 1"), "{e}");
        let e = parse("mode = \"sometimes\"\n")
            .expect_err("mode")
            .to_string();
        assert!(e.contains("line 1") && e.contains("local_only"), "{e}");
    }

    #[test]
    fn guard_regions_are_checked_and_read() {
        let e = parse("[guard]\nregions = [\"US\", \"ZQ\"]\n")
            .expect_err("unknown region")
            .to_string();
        assert!(e.contains("line 2") && e.contains("ZQ"), "{e}");
        let p = parse("[guard]\nregions = [\"gb\", \"DE\"]\n").expect("valid");
        let names: Vec<String> = p.guard.regions().iter().map(|r| r.to_string()).collect();
        assert_eq!(names, ["GB", "DE"]);
        assert!(parse_regions("US,,NL").is_ok_and(|r| r.len() == 2));
        assert!(parse_regions(" , ").is_err());
    }

    #[test]
    fn a_request_reads_the_regions_it_names() {
        use crate::{HeaderError, RequestInfo, Router};
        let p = parse("[guard]\nregions = [\"GB\"]\n").expect("valid");
        let router = Router::new(p, None).expect("router");
        // A London number written nationally: a phone number in the UK,
        // eleven digits that no US number has.
        let text = "ring me on 020 7946 0958 tonight";
        let info = |region| RequestInfo {
            text,
            region,
            local_ctx: 2048,
            ..Default::default()
        };
        assert_eq!(router.signals(&info(None)).expect("signals").findings, 1);
        assert_eq!(
            router.signals(&info(Some("US"))).expect("signals").findings,
            0
        );
        let e = router
            .signals(&info(Some("US,XX")))
            .expect_err("bad header");
        assert!(
            matches!(e, HeaderError::Region(_)) && e.to_string().contains("XX"),
            "{e}"
        );
        let (safe, _, n) = router
            .redact(
                serde_json::json!({"messages": [{"role": "user", "content": text}]}),
                &router.regions(None).expect("regions"),
            )
            .expect("redact");
        assert_eq!(n, 1);
        assert!(
            !safe.as_inner().0.to_string().contains("7946"),
            "{:?}",
            safe.as_inner().0
        );
    }
}
