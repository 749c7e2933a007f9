//! The model manifest: what a device of one class should run, and how.
//!
//! The control plane writes one per (model, device class) and signs its
//! exact bytes (`signing.rs`); the device parses only bytes whose signature
//! it has checked. Every struct denies unknown fields: a device that does
//! not understand a field must not act on the rest, so adding a field is a
//! compatibility event (send it only to devices whose `min_app_version`
//! knows it). `snapshot` in the tests pins the JSON.
//!
//! Compatibility events so far: the canary changed from greedy expected
//! tokens to the variant pipeline's log-prob fingerprint (`Canary` =
//! [`crate::variants::Fingerprint`]), and `runtime.threads` became optional.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::time::Timestamp;

/// A signed statement "devices of `device_class` run `variant` of `model`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Issued from one counter per model by the control plane; it only ever
    /// goes up, also when a rollback points at an older model version.
    pub manifest_version: u64,
    /// The key this manifest is signed with; must equal the envelope's.
    pub key_id: String,
    /// After this instant a device accepts the manifest no more (it keeps
    /// serving what it already installed).
    pub expires_at: Timestamp,
    pub model: ModelName,
    /// The release of the model, free text such as `2025-06` or `v3`.
    pub model_version: String,
    /// The device class this runtime config is for, e.g. `phone-8gb`.
    pub device_class: String,
    pub variant: Variant,
    pub runtime: RuntimeConfig,
    pub requires: Requirements,
    /// At least one; the agent runs them before switching the active pointer.
    pub canaries: Vec<Canary>,
    /// Reserved for sealed (encrypted) blobs: must be `null` (or absent) in
    /// this format; any other value is refused with a clear error.
    #[serde(default)]
    pub encryption: Option<Reserved>,
}

/// The GGUF file to run: content digest, exact size, quantization label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub digest: Digest,
    /// Bytes; a download never writes more than this (TUF's "endless data").
    pub length: u64,
    /// The tier's name, e.g. `Q4_K_M`.
    pub quantization: String,
}

/// How the engine is set up on this device class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub n_ctx: u32,
    pub kv_cache_type: KvCacheType,
    /// `null`: the device picks (e.g. its performance cores).
    pub threads: Option<u32>,
}

/// llama.cpp's KV-cache element types (`--cache-type-k/-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum KvCacheType {
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "bf16")]
    Bf16,
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q4_0")]
    Q4_0,
    #[serde(rename = "q4_1")]
    Q4_1,
    #[serde(rename = "iq4_nl")]
    Iq4Nl,
    #[serde(rename = "q5_0")]
    Q5_0,
    #[serde(rename = "q5_1")]
    Q5_1,
}

/// What the device must have to run the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    pub min_app_version: Version,
    /// The `outpost-engine` version (which pins llama.cpp).
    pub min_engine_version: Version,
    /// ggml tensor types in the file, spelled as ggml does (`q4_K`, `f32`).
    pub ggml_types: Vec<String>,
}

/// A fingerprint of correct behaviour, measured by the variant pipeline on
/// its build host: after the first `position` tokens of `prompt` (raw text,
/// no chat template, tokenized with BOS), the variant's top next tokens and
/// their log-probs, most likely first. The agent recomputes its own
/// log-probs for these token ids and accepts the install when they agree
/// within its KLD/ε tolerance. Token ids belong to the variant's own
/// vocabulary. Shared with `variants.json` so nothing is lost in between.
pub type Canary = crate::variants::Fingerprint;

/// Most top entries a canary may carry.
pub const MAX_CANARY_TOP: usize = 64;

/// A value that cannot exist: `encryption` must be null until sealed blobs
/// are specified. Deserializing anything but null fails with that reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {}

impl Serialize for Reserved {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        match *self {}
    }
}

impl<'de> Deserialize<'de> for Reserved {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "`encryption` is reserved for sealed blobs and must be null in this manifest format",
        ))
    }
}

/// A model's name: 1-64 of `a-z 0-9 . _ -`, starting with a letter or digit,
/// no `..`. Safe as a file name, which the store relies on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(String);

impl ModelName {
    pub fn parse(s: &str) -> Result<ModelName, ManifestError> {
        let bad = |problem: &'static str| ManifestError::BadModelName {
            value: s.chars().take(80).collect(),
            problem,
        };
        if s.is_empty() || s.len() > 64 {
            return Err(bad("must be 1-64 characters"));
        }
        if !s
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        {
            return Err(bad("only lowercase a-z, 0-9, '.', '_' and '-' are allowed"));
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() || s.contains("..") {
            return Err(bad(
                "must start with a letter or digit and not contain \"..\"",
            ));
        }
        Ok(ModelName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ModelName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ModelName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ModelName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `MAJOR.MINOR.PATCH`, decimal, no leading zeros, no pre-release tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version, ManifestError> {
        let bad = || ManifestError::BadVersion {
            value: s.chars().take(40).collect(),
        };
        let mut parts = s.split('.').map(|p| {
            let leading_zero = p.len() > 1 && p.starts_with('0');
            if p.is_empty() || leading_zero || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse::<u64>().map_err(|_| bad())
        });
        let mut next = || parts.next().ok_or_else(bad).and_then(|r| r);
        let v = Version {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Why bytes are not a usable manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid: {0}")]
    Json(String),
    #[error("model name {value:?} is not valid: {problem}")]
    BadModelName {
        value: String,
        problem: &'static str,
    },
    #[error(
        "version {value:?} is not MAJOR.MINOR.PATCH (decimal, no leading zeros, e.g. \"1.4.0\")"
    )]
    BadVersion { value: String },
    #[error("manifest field `{field}` is {problem}")]
    Invalid { field: String, problem: String },
}

impl ManifestError {
    fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ManifestError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl Manifest {
    /// Parses and validates. For bytes that arrived signed, go through
    /// `signing::verify`, which calls this only after the signature holds.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The checks serde cannot express.
    pub fn validate(&self) -> Result<(), ManifestError> {
        check_label("key_id", &self.key_id, 64, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
        })?;
        check_label("model_version", &self.model_version, 64, |c| {
            c.is_ascii_graphic()
        })?;
        check_label("device_class", &self.device_class, 64, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
        })?;
        check_label(
            "variant.quantization",
            &self.variant.quantization,
            32,
            |c| c.is_ascii_alphanumeric() || c == '_',
        )?;
        if self.variant.length == 0 {
            return Err(ManifestError::invalid(
                "variant.length",
                "0: a GGUF file is never empty",
            ));
        }
        if self.runtime.n_ctx == 0 {
            return Err(ManifestError::invalid(
                "runtime.n_ctx",
                "0: give a context size",
            ));
        }
        if self.runtime.threads == Some(0) {
            return Err(ManifestError::invalid(
                "runtime.threads",
                "0: give at least one thread, or null to let the device pick",
            ));
        }
        if self.requires.ggml_types.is_empty() {
            return Err(ManifestError::invalid(
                "requires.ggml_types",
                "empty: list the ggml tensor types the file uses",
            ));
        }
        for (i, t) in self.requires.ggml_types.iter().enumerate() {
            check_label(&format!("requires.ggml_types[{i}]"), t, 16, |c| {
                c.is_ascii_alphanumeric() || c == '_'
            })?;
        }
        if self.canaries.is_empty() {
            return Err(ManifestError::invalid(
                "canaries",
                "empty: give at least one canary so an install can be checked",
            ));
        }
        for (i, c) in self.canaries.iter().enumerate() {
            if c.prompt.is_empty() {
                return Err(ManifestError::invalid(
                    format!("canaries[{i}].prompt"),
                    "empty",
                ));
            }
            if c.position == 0 {
                return Err(ManifestError::invalid(
                    format!("canaries[{i}].position"),
                    "0: at least the BOS token comes before a prediction",
                ));
            }
            if c.top.is_empty() || c.top.len() > MAX_CANARY_TOP {
                return Err(ManifestError::invalid(
                    format!("canaries[{i}].top"),
                    format!(
                        "{} entries long; give 1-{MAX_CANARY_TOP} (token id, log-prob) pairs",
                        c.top.len()
                    ),
                ));
            }
            let mut prev = f32::INFINITY;
            for (j, &(token, lp)) in c.top.iter().enumerate() {
                let bad = |problem: String| {
                    Err(ManifestError::invalid(
                        format!("canaries[{i}].top[{j}]"),
                        problem,
                    ))
                };
                if token < 0 {
                    return bad(format!("token id {token}, which is negative"));
                }
                // A log-prob is ≤ 0; allow float rounding of a certain token.
                if !lp.is_finite() || lp > 1e-4 {
                    return bad(format!("log-prob {lp}, which is not a finite value ≤ 0"));
                }
                if lp > prev {
                    return bad(format!(
                        "log-prob {lp} after {prev}: list the most likely first"
                    ));
                }
                if c.top[..j].iter().any(|&(t, _)| t == token) {
                    return bad(format!("token id {token}, which is listed twice"));
                }
                prev = lp;
            }
        }
        Ok(())
    }
}

fn check_label(
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ManifestError> {
    if value.is_empty() || value.len() > max {
        return Err(ManifestError::invalid(
            field,
            format!("{} bytes long; it must be 1-{max}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|&c| !allowed(c)) {
        return Err(ManifestError::invalid(
            field,
            format!("{value:?}, which contains the character {c:?} that is not allowed there"),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid manifest, shared with the signing tests.
    pub(crate) fn sample() -> Manifest {
        Manifest {
            manifest_version: 7,
            key_id: "fleet-2026a".into(),
            expires_at: Timestamp::parse("2030-01-01T00:00:00Z").expect("time"),
            model: ModelName::parse("smollm2-135m").expect("name"),
            model_version: "2025-06".into(),
            device_class: "phone-8gb".into(),
            variant: Variant {
                digest: Digest::sha256(b"gguf"),
                length: 105_000_000,
                quantization: "Q4_K_M".into(),
            },
            runtime: RuntimeConfig {
                n_ctx: 4096,
                kv_cache_type: KvCacheType::Q8_0,
                threads: Some(4),
            },
            requires: Requirements {
                min_app_version: Version::parse("0.2.0").expect("v"),
                min_engine_version: Version::parse("0.1.0").expect("v"),
                ggml_types: vec!["f32".into(), "q4_K".into(), "q6_K".into()],
            },
            canaries: vec![Canary {
                prompt: "The capital of France is".into(),
                position: 6,
                top: vec![(7042, -0.25), (30, -2.5), (378, -3.125)],
            }],
            encryption: None,
        }
    }

    const SNAPSHOT: &str = r#"{"manifest_version":7,"key_id":"fleet-2026a","expires_at":"2030-01-01T00:00:00Z","model":"smollm2-135m","model_version":"2025-06","device_class":"phone-8gb","variant":{"digest":"sha256:1cb1b7e0f8b96cee3445e317b8064d8805bf35c7dc7de82cddcb9f78d4c95e0e","length":105000000,"quantization":"Q4_K_M"},"runtime":{"n_ctx":4096,"kv_cache_type":"q8_0","threads":4},"requires":{"min_app_version":"0.2.0","min_engine_version":"0.1.0","ggml_types":["f32","q4_K","q6_K"]},"canaries":[{"prompt":"The capital of France is","position":6,"top":[[7042,-0.25],[30,-2.5],[378,-3.125]]}],"encryption":null}"#;

    #[test]
    fn snapshot() {
        // A compatibility snapshot: a change here is a change of the signed
        // format every deployed device parses.
        let m = sample();
        assert_eq!(serde_json::to_string(&m).expect("json"), SNAPSHOT);
        assert_eq!(Manifest::from_json(SNAPSHOT.as_bytes()), Ok(m));
    }

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(SNAPSHOT).expect("json");
        edit(&mut v);
        serde_json::to_vec(&v).expect("json")
    }

    fn err(bytes: &[u8]) -> String {
        Manifest::from_json(bytes)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = err(&with(|v| v["priority"] = 1.into()));
        assert!(e.contains("unknown field `priority`"), "{e}");
        let e = err(&with(|v| v["runtime"]["flash_attn"] = true.into()));
        assert!(e.contains("unknown field `flash_attn`"), "{e}");
    }

    #[test]
    fn encryption_is_reserved() {
        let absent = with(|v| {
            v.as_object_mut().map(|o| o.remove("encryption"));
        });
        assert!(Manifest::from_json(&absent).is_ok());
        let e = err(&with(|v| v["encryption"] = serde_json::json!({"alg": "x"})));
        assert!(e.contains("reserved"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        for (edit, field) in [
            (
                with(|v| v["variant"]["digest"] = "sha256:ABC".into()),
                "lowercase",
            ),
            (
                with(|v| v["variant"]["length"] = 0.into()),
                "variant.length",
            ),
            (with(|v| v["runtime"]["n_ctx"] = 0.into()), "runtime.n_ctx"),
            (
                with(|v| v["runtime"]["threads"] = 0.into()),
                "runtime.threads",
            ),
            (
                with(|v| v["runtime"]["kv_cache_type"] = "q3".into()),
                "unknown variant `q3`",
            ),
            (with(|v| v["model"] = "../etc".into()), "model name"),
            (with(|v| v["model"] = "Big".into()), "model name"),
            (
                with(|v| v["requires"]["min_app_version"] = "1.02.0".into()),
                "MAJOR.MINOR.PATCH",
            ),
            (
                with(|v| v["requires"]["ggml_types"] = serde_json::json!([])),
                "requires.ggml_types",
            ),
            (
                with(|v| v["requires"]["ggml_types"] = serde_json::json!(["q4 K"])),
                "requires.ggml_types[0]",
            ),
            (with(|v| v["canaries"] = serde_json::json!([])), "canaries"),
            (
                with(|v| v["canaries"][0]["position"] = 0.into()),
                "canaries[0].position",
            ),
            (
                with(|v| v["canaries"][0]["top"] = serde_json::json!([])),
                "canaries[0].top",
            ),
            (
                with(|v| v["canaries"][0]["top"][1] = serde_json::json!([30, 0.5])),
                "canaries[0].top[1]",
            ),
            (
                with(|v| v["canaries"][0]["top"][1] = serde_json::json!([30, -0.1])),
                "most likely first",
            ),
            (
                with(|v| v["canaries"][0]["top"][1] = serde_json::json!([-3, -2.5])),
                "negative",
            ),
            (
                with(|v| v["canaries"][0]["expected_tokens"] = serde_json::json!([1])),
                "unknown field `expected_tokens`",
            ),
            (with(|v| v["key_id"] = "a/b".into()), "key_id"),
            (
                with(|v| v["expires_at"] = "2030-01-01T00:00:00+02:00".into()),
                "RFC 3339",
            ),
            (
                with(|v| v["manifest_version"] = (-1).into()),
                "expected u64",
            ),
        ] {
            let e = err(&edit);
            assert!(e.contains(field), "expected {field:?} in {e}");
        }
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(
            Version::parse("10.0.3"),
            Ok(Version {
                major: 10,
                minor: 0,
                patch: 3
            })
        );
        for s in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.x",
            "1.2.3-rc1",
            " 1.2.3",
        ] {
            assert!(Version::parse(s).is_err(), "{s}");
        }
        assert!(Version::parse("1.10.0").expect("v") > Version::parse("1.9.9").expect("v"));
    }

    proptest! {
        #[test]
        fn model_names_are_safe_file_names(s in "\\PC{0,70}") {
            if let Ok(n) = ModelName::parse(&s) {
                prop_assert!(!n.as_str().contains(['/', '\\']));
                prop_assert!(!n.as_str().starts_with('.'));
                prop_assert!(!n.as_str().contains(".."));
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Manifest::from_json(&bytes);
        }

        #[test]
        fn any_valid_manifest_round_trips(version in any::<u64>(), secs in 0u64..253_402_300_800, n_ctx in 1u32.., len in 1u64..) {
            let mut m = sample();
            m.manifest_version = version;
            m.expires_at = Timestamp::from_unix_seconds(secs);
            m.runtime.n_ctx = n_ctx;
            m.variant.length = len;
            let bytes = serde_json::to_vec(&m).expect("json");
            prop_assert_eq!(Manifest::from_json(&bytes), Ok(m));
        }
    }
}
