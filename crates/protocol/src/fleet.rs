//! The device side of the fleet API: registration, the check-in profile and
//! the check-in answer. Shared by the control plane (`outpost-fleet`, which
//! parses requests and writes answers) and the device agent (the reverse).
//!
//! Requests deny unknown fields (a typo in a profile is an error, not a
//! silently ignored value); answers do not, so the control plane can add a
//! field without breaking deployed agents. The signed [`Manifest`] inside an
//! answer is strict, as everywhere. `snapshot` in the tests pins the JSON.
//!
//! [`Manifest`]: crate::manifest::Manifest

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::{ModelName, Version};
use crate::signing::SignedManifest;

/// Longest list a profile may carry (installed models, ggml types).
pub const MAX_LIST: usize = 64;
/// Longest CPU feature list.
pub const MAX_CPU_FEATURES: usize = 128;

/// `POST /v1/devices/register`: an app key (shipped in the app) buys a
/// device token. `channel` defaults to `stable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub app_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The device's X25519 public key (32 bytes, standard base64), to which
    /// the fleet wraps the content keys of sealed models. Agents before
    /// sealed models send none and are never sent a sealed manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// The device's identity. `token` is shown once: the fleet keeps only its
/// SHA-256. Send it as `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterResponse {
    pub device_id: String,
    pub token: String,
    pub channel: String,
}

/// `POST /v1/content-keys`, authenticated with the device token: the
/// content key of a sealed variant this device was assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// The sealed blob's digest, as in the manifest's `variant.digest`.
    pub digest: Digest,
    /// 32 hex digits the device chose for this request; the wrap is bound
    /// to it, so an answer recorded for another request does not open.
    pub nonce: String,
}

/// The content key, wrapped with HPKE to the device's public key and bound
/// to this grant (`outpost_seal::wrap::Grant`: release, digest, device id
/// in `info`; expiry and nonce in the associated data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyGrant {
    /// `model@version`.
    pub release: String,
    pub digest: Digest,
    pub device_id: String,
    /// Unix seconds after which the device must ask again.
    pub expires_at: u64,
    pub nonce: String,
    /// HPKE's encapsulated key, standard base64 (32 bytes).
    pub enc: String,
    /// The wrapped key and its tag, standard base64 (48 bytes).
    pub ciphertext: String,
}

/// `POST /v1/devices/check-in`, authenticated with the device token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    pub profile: DeviceProfile,
}

/// What the fleet needs to know to pick a variant the device can load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// e.g. `phone-8gb`; picks the runtime config in a release.
    pub device_class: String,
    pub ram_bytes: u64,
    #[serde(default)]
    pub cpu_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// e.g. `android`, `ios`, `linux`.
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub app_version: Version,
    /// The `outpost-engine` version the app embeds.
    pub engine_version: Version,
    /// ggml tensor types the engine can load (`f32`, `q4_K`, ...).
    pub ggml_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub installed: Vec<Installed>,
    pub free_disk_bytes: u64,
}

/// A model the device has installed (its store's active pointer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    pub model: ModelName,
    pub model_version: String,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_version: Option<u64>,
}

/// Why a profile is refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile field `{field}` is {problem}")]
pub struct ProfileError {
    pub field: String,
    pub problem: String,
}

fn label(field: &str, value: &str, max: usize) -> Result<(), ProfileError> {
    let bad = |problem: String| ProfileError {
        field: field.to_string(),
        problem,
    };
    if value.is_empty() || value.len() > max {
        return Err(bad(format!(
            "{} bytes long; it must be 1-{max}",
            value.len()
        )));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!(
            "{:?}, which contains {c:?}; allowed are a-z, A-Z, 0-9, '.', '_', '-'",
            value.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

fn list_len(field: &str, len: usize, max: usize) -> Result<(), ProfileError> {
    if len > max {
        return Err(ProfileError {
            field: field.to_string(),
            problem: format!("a list of {len} entries; at most {max} are accepted"),
        });
    }
    Ok(())
}

impl DeviceProfile {
    /// The checks serde cannot express: label syntax and list sizes.
    pub fn validate(&self) -> Result<(), ProfileError> {
        label("device_class", &self.device_class, 64)?;
        label("os", &self.os, 32)?;
        if let Some(v) = &self.os_version {
            label("os_version", v, 64)?;
        }
        if let Some(a) = &self.accelerator {
            label("accelerator", a, 64)?;
        }
        if let Some(r) = &self.region {
            label("region", r, 32)?;
        }
        list_len("cpu_features", self.cpu_features.len(), MAX_CPU_FEATURES)?;
        for (i, f) in self.cpu_features.iter().enumerate() {
            label(&format!("cpu_features[{i}]"), f, 32)?;
        }
        list_len("ggml_types", self.ggml_types.len(), MAX_LIST)?;
        for (i, t) in self.ggml_types.iter().enumerate() {
            label(&format!("ggml_types[{i}]"), t, 16)?;
        }
        list_len("installed", self.installed.len(), MAX_LIST)?;
        for (i, m) in self.installed.iter().enumerate() {
            label(
                &format!("installed[{i}].model_version"),
                &m.model_version,
                64,
            )?;
        }
        Ok(())
    }
}

/// The answer to a check-in: one entry per model the device's channel (or
/// a pin) gives it, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckInResponse {
    pub device_id: String,
    pub channel: String,
    /// Seconds until the next check-in.
    pub check_in_after_s: u64,
    pub models: Vec<ModelAssignment>,
}

/// What one model should be on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelAssignment {
    pub model: ModelName,
    /// The signed manifest to verify and install; `None` when no release
    /// of this model may be installed (see `blocked` and `note`). The same
    /// bytes come back at every check-in until something changes; a change
    /// (rollout, rollback, revocation, a new profile) brings a higher
    /// `manifest_version`.
    pub manifest: Option<SignedManifest>,
    /// The release the manifest is for.
    #[serde(default)]
    pub model_version: Option<String>,
    /// Why this release: a pin, a rollout, or the channel's release.
    #[serde(default)]
    pub source: Option<AssignmentSource>,
    /// Releases this device would have got but cannot load, newest first.
    #[serde(default)]
    pub blocked: Vec<Blocked>,
    /// Anything else worth knowing (a revoked release skipped, ...).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentSource {
    Pin,
    Rollout,
    Channel,
}

/// A release skipped because this device cannot load it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Blocked {
    pub model_version: String,
    pub reason: String,
}

/// Every fleet API error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetErrorBody {
    pub error: FleetErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetErrorDetail {
    /// Stable, machine-readable (`unauthorized`, `bad_request`, ...).
    pub code: String,
    /// For people: what was wrong, with which value, and what to do.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{"profile":{"device_class":"phone-8gb","ram_bytes":8000000000,"cpu_features":["neon","dotprod"],"accelerator":"adreno-740","os":"android","os_version":"14","app_version":"2.3.0","engine_version":"0.1.0","ggml_types":["f32","f16","q4_K","q8_0"],"region":"eu-west","installed":[{"model":"smollm2-135m","model_version":"2025-06","digest":"sha256:1cb1b7e0f8b96cee3445e317b8064d8805bf35c7dc7de82cddcb9f78d4c95e0e","manifest_version":12}],"free_disk_bytes":4000000000}}"#;

    pub(crate) fn sample() -> DeviceProfile {
        DeviceProfile {
            device_class: "phone-8gb".into(),
            ram_bytes: 8_000_000_000,
            cpu_features: vec!["neon".into(), "dotprod".into()],
            accelerator: Some("adreno-740".into()),
            os: "android".into(),
            os_version: Some("14".into()),
            app_version: Version::parse("2.3.0").expect("v"),
            engine_version: Version::parse("0.1.0").expect("v"),
            ggml_types: vec!["f32".into(), "f16".into(), "q4_K".into(), "q8_0".into()],
            region: Some("eu-west".into()),
            installed: vec![Installed {
                model: ModelName::parse("smollm2-135m").expect("name"),
                model_version: "2025-06".into(),
                digest: Digest::sha256(b"gguf"),
                manifest_version: Some(12),
            }],
            free_disk_bytes: 4_000_000_000,
        }
    }

    #[test]
    fn snapshot() {
        let req = CheckInRequest { profile: sample() };
        assert_eq!(serde_json::to_string(&req).expect("json"), SNAPSHOT);
        let back: CheckInRequest = serde_json::from_str(SNAPSHOT).expect("parse");
        assert_eq!(back, req);
        assert!(back.profile.validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_labels_are_named() {
        let mut v: serde_json::Value = serde_json::from_str(SNAPSHOT).expect("json");
        v["profile"]["gpu"] = "x".into();
        let e = serde_json::from_value::<CheckInRequest>(v)
            .expect_err("unknown field")
            .to_string();
        assert!(e.contains("unknown field `gpu`"), "{e}");

        let mut p = sample();
        p.device_class = "phone 8gb".into();
        let e = p.validate().expect_err("space").to_string();
        assert!(e.contains("device_class"), "{e}");
        let mut p = sample();
        p.ggml_types = vec!["f32".into(); MAX_LIST + 1];
        let e = p.validate().expect_err("long").to_string();
        assert!(e.contains("ggml_types") && e.contains("65"), "{e}");
        let mut p = sample();
        p.region = Some(String::new());
        assert!(p.validate().is_err());
    }

    #[test]
    fn answers_tolerate_new_fields() {
        let a =
            r#"{"device_id":"d","channel":"stable","check_in_after_s":60,"models":[],"later":1}"#;
        let r: CheckInResponse = serde_json::from_str(a).expect("lenient");
        assert_eq!(r.check_in_after_s, 60);
    }
}
