//! Device telemetry: what a device sends to `POST /v1/telemetry` (with its
//! device token) and the fleet's acknowledgement.
//!
//! A batch carries a batch id chosen by the device (unique per device: the
//! fleet counts a batch once however often it is sent, so a device resends
//! freely after a timeout) and up to [`MAX_EVENTS`] events. Every event
//! names the model release it is about (model, version, digest), the engine
//! and app versions, and when it happened; its `kind` and `data` say what.
//! `feedback` is what a user did with one answer (`POST /v1/feedback` on
//! the server: a signal and an optional reason from a fixed list).
//! `install` is the device agent's report on a manifest (installed,
//! rejected or reverted, with a short reason code). `embedding` is one
//! embedding request (inputs, tokens, latency; never text). A `canary`
//! carries `kld` + `same_top` for a generative model and `min_cosine` for
//! an embedding model.
//!
//! The request denies unknown fields and unknown kinds (serde names the
//! kind); [`TelemetryBatch::validate`] checks what serde cannot (label
//! syntax, finite non-negative numbers, ranges). The ack is lenient.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::{ModelName, Version};
use crate::time::Timestamp;

/// Most events in one batch.
pub const MAX_EVENTS: usize = 1000;

/// `POST /v1/telemetry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryBatch {
    /// 1-64 of `a-z A-Z 0-9 . _ -`, unique per device.
    pub batch_id: String,
    /// The sender's device id; must be the token's device.
    pub device_id: String,
    pub events: Vec<TelemetryEvent>,
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryEvent {
    /// When it happened, by the device's clock.
    pub at: Timestamp,
    pub model: ModelName,
    pub model_version: String,
    pub model_digest: Digest,
    pub engine_version: Version,
    pub app_version: Version,
    #[serde(flatten)]
    pub data: EventData,
}

/// What happened: `{"kind": "inference", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventData {
    Inference(Inference),
    /// One embedding request.
    Embedding(EmbeddingRequest),
    Crash(Crash),
    MemoryPeak(MemoryPeak),
    Thermal(Thermal),
    Battery(Battery),
    Route(Route),
    Canary(Canary),
    /// Reserved: accepted and counted.
    Feedback(Feedback),
    /// The device agent installed a release, refused one, or reverted one.
    Install(Install),
}

impl EventData {
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::Inference(_) => "inference",
            EventData::Embedding(_) => "embedding",
            EventData::Crash(_) => "crash",
            EventData::MemoryPeak(_) => "memory_peak",
            EventData::Thermal(_) => "thermal",
            EventData::Battery(_) => "battery",
            EventData::Route(_) => "route",
            EventData::Canary(_) => "canary",
            EventData::Feedback(_) => "feedback",
            EventData::Install(_) => "install",
        }
    }
}

/// One generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Inference {
    /// Time to first token.
    pub ttft_ms: f64,
    /// Whole request.
    pub latency_ms: f64,
    /// Tokens generated.
    pub tokens: u32,
    /// Decode speed.
    pub tok_s: f64,
    #[serde(default)]
    pub cached_tokens: u32,
    /// Set when the request failed (a short code, e.g. `oom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One embedding request (all its inputs, one encoder pass or more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    /// Texts or token lists embedded.
    pub inputs: u32,
    /// Tokens over all inputs.
    pub tokens: u32,
    /// Whole request, from its tokens to its vectors.
    pub latency_ms: f64,
    /// Set when the engine failed it (a short code, e.g. `engine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    /// e.g. `sigsegv`, `oom-kill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryPeak {
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThermalState {
    Nominal,
    Fair,
    Serious,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Thermal {
    pub state: ThermalState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Battery {
    /// 0-100.
    pub level_pct: u8,
    pub charging: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    #[default]
    Local,
    Cloud,
}

/// Where a request was run, and why; with what it cost (tokens, time)
/// and the signals the decision saw, so the fleet's economics report can
/// price it and replay the decision at other thresholds. Every field but
/// `target` and `reason` is optional (older devices send none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub target: RouteTarget,
    pub reason: String,
    /// Prompt tokens, as the answer reported them (else the estimate the
    /// decision used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    /// Tokens generated (a stream without usage: its text chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u32>,
    /// The whole request, as the client saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The prompt's complexity score, 0-1, and the threshold it was held
    /// to (at or above: the cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complexity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complexity_threshold: Option<f64>,
    /// The predicted latency of each route when the decision was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_predicted_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_predicted_ms: Option<f64>,
}

/// An on-device canary check against the release's fingerprint: `kld`
/// and `same_top` for a generative model, `min_cosine` for an embedding
/// model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// Worst KLD (nats) over the canary positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kld: Option<f64>,
    /// Share of positions whose top token matched, 0-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_top: Option<f64>,
    /// Worst cosine of the device's vectors to the build host's, -1..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cosine: Option<f64>,
    pub pass: bool,
}

/// What a user did with an answer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackSignal {
    ThumbsUp,
    ThumbsDown,
    /// Asked for the answer again.
    Regenerate,
    /// Changed the answer before using it.
    Edited,
    /// Copied the answer out.
    Copied,
}

impl FeedbackSignal {
    pub const ALL: [FeedbackSignal; 5] = [
        FeedbackSignal::ThumbsUp,
        FeedbackSignal::ThumbsDown,
        FeedbackSignal::Regenerate,
        FeedbackSignal::Edited,
        FeedbackSignal::Copied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackSignal::ThumbsUp => "thumbs_up",
            FeedbackSignal::ThumbsDown => "thumbs_down",
            FeedbackSignal::Regenerate => "regenerate",
            FeedbackSignal::Edited => "edited",
            FeedbackSignal::Copied => "copied",
        }
    }

    /// Thumbs up and down are one vote per answer; the others are acts.
    pub fn is_vote(self) -> bool {
        matches!(self, FeedbackSignal::ThumbsUp | FeedbackSignal::ThumbsDown)
    }
}

/// Why, from a fixed list (free text could carry personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackReason {
    Inaccurate,
    Unhelpful,
    Harmful,
    TooSlow,
    WrongLanguage,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub signal: FeedbackSignal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FeedbackReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstallOutcome {
    /// Verified, downloaded, activated (and its canary passed).
    Installed,
    /// Refused before activation (signature, version, expiry, hash,
    /// length); the previous model kept serving.
    Rejected,
    /// Activated, then put back to the previous version (canary failed).
    Reverted,
}

/// What the agent did with a manifest, and why (a short code such as
/// `hash-mismatch`, `bad-signature`, `older-version`, `expired`,
/// `canary-kld`). The event's release is the one the manifest named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Install {
    pub outcome: InstallOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The fleet's answer. `duplicate`: this batch id was counted before and
/// nothing was counted now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TelemetryAck {
    pub batch_id: String,
    pub duplicate: bool,
    /// Events counted (clamped ones included).
    pub accepted: u32,
    /// Events stamped too far in the future: counted at receive time.
    pub clamped: u32,
    /// Events older than the fleet keeps: dropped.
    pub too_old: u32,
    /// Events naming a release the fleet never published: dropped.
    pub unknown_release: u32,
}

/// Why a batch is refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("telemetry field `{field}` is {problem}")]
pub struct TelemetryError {
    pub field: String,
    pub problem: String,
}

fn bad(field: String, problem: impl Into<String>) -> TelemetryError {
    TelemetryError {
        field,
        problem: problem.into(),
    }
}

fn label(field: &str, v: &str, max: usize) -> Result<(), TelemetryError> {
    let ok = !v.is_empty()
        && v.len() <= max
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field.to_string(),
            format!(
                "{:?}; it must be 1-{max} of a-z, A-Z, 0-9, '.', '_', '-'",
                v.chars().take(80).collect::<String>()
            ),
        ))
    }
}

fn number(field: String, v: f64) -> Result<(), TelemetryError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(bad(field, format!("{v}; it must be a finite number >= 0")))
    }
}

impl TelemetryBatch {
    /// The checks serde cannot express. The event count is checked by the
    /// fleet first (an oversized batch is a 413, not a 400).
    pub fn validate(&self) -> Result<(), TelemetryError> {
        label("batch_id", &self.batch_id, 64)?;
        label("device_id", &self.device_id, 64)?;
        if self.events.is_empty() {
            return Err(bad("events".into(), "empty; send at least one event"));
        }
        for (i, e) in self.events.iter().enumerate() {
            let f = |name: &str| format!("events[{i}].{name}");
            label(&f("model_version"), &e.model_version, 64)?;
            match &e.data {
                EventData::Inference(x) => {
                    number(f("data.ttft_ms"), x.ttft_ms)?;
                    number(f("data.latency_ms"), x.latency_ms)?;
                    number(f("data.tok_s"), x.tok_s)?;
                    if let Some(err) = &x.error {
                        label(&f("data.error"), err, 64)?;
                    }
                }
                EventData::Crash(Crash { reason: Some(r) }) => label(&f("data.reason"), r, 64)?,
                EventData::Battery(b) if b.level_pct > 100 => {
                    return Err(bad(f("data.level_pct"), "above 100"));
                }
                EventData::Route(r) => {
                    label(&f("data.reason"), &r.reason, 64)?;
                    for (name, v) in [
                        ("latency_ms", r.latency_ms),
                        ("local_predicted_ms", r.local_predicted_ms),
                        ("cloud_predicted_ms", r.cloud_predicted_ms),
                    ] {
                        if let Some(v) = v {
                            number(f(&format!("data.{name}")), v)?;
                        }
                    }
                    for (name, v) in [
                        ("complexity", r.complexity),
                        ("complexity_threshold", r.complexity_threshold),
                    ] {
                        if let Some(v) = v {
                            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                                return Err(bad(
                                    f(&format!("data.{name}")),
                                    format!("{v}; a complexity score is in 0-1"),
                                ));
                            }
                        }
                    }
                }
                EventData::Install(Install {
                    reason: Some(r), ..
                }) => label(&f("data.reason"), r, 64)?,
                EventData::Embedding(x) => {
                    number(f("data.latency_ms"), x.latency_ms)?;
                    if let Some(err) = &x.error {
                        label(&f("data.error"), err, 64)?;
                    }
                }
                EventData::Canary(c) => {
                    match (c.kld, c.same_top, c.min_cosine) {
                        (Some(kld), Some(same_top), None) => {
                            number(f("data.kld"), kld)?;
                            number(f("data.same_top"), same_top)?;
                            if same_top > 1.0 {
                                return Err(bad(f("data.same_top"), "above 1; it is a share"));
                            }
                        }
                        (None, None, Some(cos)) => {
                            if !(cos.is_finite() && (-1.0 - 1e-6..=1.0 + 1e-6).contains(&cos)) {
                                return Err(bad(
                                    f("data.min_cosine"),
                                    format!("{cos}; a cosine is a finite number in -1..1"),
                                ));
                            }
                        }
                        _ => {
                            return Err(bad(
                                f("data"),
                                "not a canary result: give `kld` and `same_top` (a generative model) or `min_cosine` (an embedding model)",
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{"batch_id":"b-1","device_id":"dev-1","events":[{"at":"2030-01-01T00:00:00Z","model":"smollm2-135m","model_version":"2025-06","model_digest":"sha256:1cb1b7e0f8b96cee3445e317b8064d8805bf35c7dc7de82cddcb9f78d4c95e0e","engine_version":"0.1.0","app_version":"2.3.0","kind":"inference","data":{"ttft_ms":120.5,"latency_ms":900.0,"tokens":64,"tok_s":71.1,"cached_tokens":8}},{"at":"2030-01-01T00:00:00Z","model":"smollm2-135m","model_version":"2025-06","model_digest":"sha256:1cb1b7e0f8b96cee3445e317b8064d8805bf35c7dc7de82cddcb9f78d4c95e0e","engine_version":"0.1.0","app_version":"2.3.0","kind":"route","data":{"target":"cloud","reason":"low-battery"}},{"at":"2030-01-01T00:00:00Z","model":"smollm2-135m","model_version":"2025-06","model_digest":"sha256:1cb1b7e0f8b96cee3445e317b8064d8805bf35c7dc7de82cddcb9f78d4c95e0e","engine_version":"0.1.0","app_version":"2.3.0","kind":"feedback","data":{"signal":"regenerate"}}]}"#;

    pub(crate) fn event(data: EventData) -> TelemetryEvent {
        TelemetryEvent {
            at: Timestamp::parse("2030-01-01T00:00:00Z").expect("t"),
            model: ModelName::parse("smollm2-135m").expect("name"),
            model_version: "2025-06".into(),
            model_digest: Digest::sha256(b"gguf"),
            engine_version: Version::parse("0.1.0").expect("v"),
            app_version: Version::parse("2.3.0").expect("v"),
            data,
        }
    }

    fn sample() -> TelemetryBatch {
        TelemetryBatch {
            batch_id: "b-1".into(),
            device_id: "dev-1".into(),
            events: vec![
                event(EventData::Inference(Inference {
                    ttft_ms: 120.5,
                    latency_ms: 900.0,
                    tokens: 64,
                    tok_s: 71.1,
                    cached_tokens: 8,
                    error: None,
                })),
                event(EventData::Route(Route {
                    target: RouteTarget::Cloud,
                    reason: "low-battery".into(),
                    ..Route::default()
                })),
                event(EventData::Feedback(Feedback {
                    signal: FeedbackSignal::Regenerate,
                    reason: None,
                })),
            ],
        }
    }

    #[test]
    fn snapshot() {
        let b = sample();
        assert_eq!(serde_json::to_string(&b).expect("json"), SNAPSHOT);
        let back: TelemetryBatch = serde_json::from_str(SNAPSHOT).expect("parse");
        assert_eq!(back, b);
        assert!(back.validate().is_ok());
    }

    #[test]
    fn unknown_kinds_and_fields_are_named() {
        let mut v: serde_json::Value = serde_json::from_str(SNAPSHOT).expect("json");
        v["events"][1]["kind"] = "telepathy".into();
        let e = serde_json::from_value::<TelemetryBatch>(v)
            .expect_err("unknown kind")
            .to_string();
        assert!(e.contains("telepathy"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(SNAPSHOT).expect("json");
        v["events"][0]["data"]["gpu_ms"] = 1.into();
        let e = serde_json::from_value::<TelemetryBatch>(v)
            .expect_err("unknown field")
            .to_string();
        assert!(e.contains("gpu_ms"), "{e}");
    }

    #[test]
    fn validate_names_the_field() {
        let mut b = sample();
        b.batch_id = "a b".into();
        assert_eq!(b.validate().expect_err("space").field, "batch_id");
        let mut b = sample();
        b.events[0] = event(EventData::Inference(Inference {
            ttft_ms: f64::NAN,
            latency_ms: 1.0,
            tokens: 1,
            tok_s: 1.0,
            cached_tokens: 0,
            error: None,
        }));
        assert_eq!(
            b.validate().expect_err("nan").field,
            "events[0].data.ttft_ms"
        );
        let mut b = sample();
        b.events[0] = event(EventData::Canary(Canary {
            kld: Some(0.1),
            same_top: Some(1.5),
            min_cosine: None,
            pass: true,
        }));
        assert!(b.validate().is_err());
        // An embedding canary: a cosine, nothing else.
        let canary = |kld: Option<f64>, min_cosine: Option<f64>| {
            let mut b = sample();
            b.events[0] = event(EventData::Canary(Canary {
                kld,
                same_top: kld,
                min_cosine,
                pass: true,
            }));
            b.validate()
        };
        // A route event's numbers: latencies finite and >= 0, complexity 0-1.
        let route = |r: Route| {
            let mut b = sample();
            b.events[0] = event(EventData::Route(r));
            b.validate()
        };
        let full = Route {
            target: RouteTarget::Local,
            reason: "simple".into(),
            prompt_tokens: Some(120),
            completion_tokens: Some(64),
            latency_ms: Some(900.0),
            complexity: Some(0.3),
            complexity_threshold: Some(0.6),
            local_predicted_ms: Some(850.0),
            cloud_predicted_ms: Some(1200.0),
        };
        assert_eq!(route(full.clone()), Ok(()));
        let e = route(Route {
            complexity: Some(1.5),
            ..full.clone()
        })
        .expect_err("range");
        assert_eq!(e.field, "events[0].data.complexity");
        let e = route(Route {
            cloud_predicted_ms: Some(-1.0),
            ..full
        })
        .expect_err("negative");
        assert_eq!(e.field, "events[0].data.cloud_predicted_ms");
        assert_eq!(canary(None, Some(0.9999)), Ok(()));
        assert_eq!(canary(Some(0.01), None), Ok(()));
        assert_eq!(
            canary(None, Some(1.5)).expect_err("range").field,
            "events[0].data.min_cosine"
        );
        assert_eq!(
            canary(Some(0.1), Some(0.9)).expect_err("both").field,
            "events[0].data"
        );
        assert_eq!(
            canary(None, None).expect_err("none").field,
            "events[0].data"
        );
        let mut b = sample();
        b.events[0] = event(EventData::Embedding(EmbeddingRequest {
            inputs: 2,
            tokens: 17,
            latency_ms: f64::NAN,
            error: None,
        }));
        assert_eq!(
            b.validate().expect_err("nan").field,
            "events[0].data.latency_ms"
        );
        let mut b = sample();
        b.events.clear();
        assert!(b.validate().is_err());
    }
}
