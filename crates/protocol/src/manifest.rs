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
//! [`crate::variants::Fingerprint`]), `runtime.threads` became optional,
//! and `kind` + `embedding_canaries` came with embedding models (both are
//! left out of a generative model's JSON, so its bytes did not change);
//! `encryption`, reserved and always null until then, became [`Encryption`]
//! with sealed variants (a plain manifest's bytes did not change).

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
    /// What the model does; `generate` (the default) is not written.
    #[serde(default, skip_serializing_if = "ModelKind::is_generate")]
    pub kind: ModelKind,
    /// The device class this runtime config is for, e.g. `phone-8gb`.
    pub device_class: String,
    pub variant: Variant,
    pub runtime: RuntimeConfig,
    pub requires: Requirements,
    /// At least one for a generative model (empty for an embedding model);
    /// the agent runs them before switching the active pointer.
    pub canaries: Vec<Canary>,
    /// At least one for an embedding model, none for a generative one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding_canaries: Vec<EmbeddingCanary>,
    /// `null` for a plain GGUF. For a sealed one (`outpost-seal`), how it
    /// opens: `variant.digest` and `length` are then the sealed blob's (what
    /// is downloaded and checked), and the content key is asked of the
    /// fleet (`POST /v1/keys`). Agents older than this field refuse such
    /// manifests, so they are only sent to devices that sent a public key.
    #[serde(default)]
    pub encryption: Option<Encryption>,
}

/// How a sealed variant opens (issue #23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    pub scheme: SealScheme,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The GGUF inside: checked after opening, before anything loads it.
    pub plaintext_digest: Digest,
    pub plaintext_length: u64,
}

/// The sealing format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SealScheme {
    /// `outpost_seal::stream`: XChaCha20-Poly1305 in STREAM, 40-byte header.
    #[serde(rename = "xchacha20poly1305-stream-v1")]
    XChaCha20Poly1305StreamV1,
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

/// An embedding model's canary: a text and the vector its tier gave on the
/// build host. Shared with `embedding-variants.json`.
pub type EmbeddingCanary = crate::variants::EmbeddingFingerprint;

/// Longest embedding canary vector (dimensions).
pub const MAX_CANARY_DIMENSIONS: usize = 8192;

/// What a model does, which decides how the device checks and serves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Text generation (chat, completions); checked by log-prob canaries.
    #[default]
    Generate,
    /// Sentence embeddings; checked by cosine to the build host's vectors.
    Embedding,
}

impl ModelKind {
    pub fn is_generate(&self) -> bool {
        *self == ModelKind::Generate
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ModelKind::Generate => "generate",
            ModelKind::Embedding => "embedding",
        }
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
        if let Some(e) = &self.encryption {
            let want = outpost_seal::stream::sealed_len(e.chunk_size, e.plaintext_length)
                .ok_or_else(|| {
                    ManifestError::invalid(
                        "encryption.chunk_size",
                        format!(
                            "{}: sealed chunks are 4 KiB to 16 MiB, at most 2^32 of them",
                            e.chunk_size
                        ),
                    )
                })?;
            if self.variant.length != want {
                return Err(ManifestError::invalid(
                    "variant.length",
                    format!(
                        "{}, but a sealed blob of {} bytes in {}-byte chunks is {want}",
                        self.variant.length, e.plaintext_length, e.chunk_size
                    ),
                ));
            }
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
        self.validate_canaries_of_kind()?;
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

impl Manifest {
    /// The canaries that fit the kind: log-prob ones for a generative
    /// model, vectors (finite, not zero, all of one length) for an
    /// embedding model; never both.
    fn validate_canaries_of_kind(&self) -> Result<(), ManifestError> {
        match self.kind {
            ModelKind::Generate => {
                if self.canaries.is_empty() {
                    return Err(ManifestError::invalid(
                        "canaries",
                        "empty: give at least one canary so an install can be checked",
                    ));
                }
                if !self.embedding_canaries.is_empty() {
                    return Err(ManifestError::invalid(
                        "embedding_canaries",
                        "given for a generative model: they belong to `kind: embedding`",
                    ));
                }
            }
            ModelKind::Embedding => {
                if self.embedding_canaries.is_empty() {
                    return Err(ManifestError::invalid(
                        "embedding_canaries",
                        "empty: an embedding model needs at least one (text, vector) canary",
                    ));
                }
                if !self.canaries.is_empty() {
                    return Err(ManifestError::invalid(
                        "canaries",
                        "given for an embedding model, which predicts no tokens: use `embedding_canaries`",
                    ));
                }
                let dims = self.embedding_canaries[0].vector.len();
                for (i, c) in self.embedding_canaries.iter().enumerate() {
                    let f = |name: &str| format!("embedding_canaries[{i}].{name}");
                    if c.text.trim().is_empty() {
                        return Err(ManifestError::invalid(f("text"), "empty"));
                    }
                    if c.vector.is_empty() || c.vector.len() > MAX_CANARY_DIMENSIONS {
                        return Err(ManifestError::invalid(
                            f("vector"),
                            format!(
                                "{} numbers long; give 1-{MAX_CANARY_DIMENSIONS}",
                                c.vector.len()
                            ),
                        ));
                    }
                    if c.vector.len() != dims {
                        return Err(ManifestError::invalid(
                            f("vector"),
                            format!(
                                "{} numbers long, but embedding_canaries[0] has {dims}",
                                c.vector.len()
                            ),
                        ));
                    }
                    if c.vector.iter().any(|x| !x.is_finite()) {
                        return Err(ManifestError::invalid(
                            f("vector"),
                            "not finite (NaN or infinity)",
                        ));
                    }
                    if c.vector.iter().all(|x| *x == 0.0) {
                        return Err(ManifestError::invalid(
                            f("vector"),
                            "all zeros, which no cosine can be taken against",
                        ));
                    }
                }
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
#[path = "manifest_tests.rs"]
pub(crate) mod tests;
