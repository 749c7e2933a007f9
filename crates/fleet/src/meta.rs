//! `ReleaseMeta`: the one description of a model release, as published.
//!
//! This is the registry's input type. A release folder holds either
//! `variants.json` from `outpost variants build` beside the tier files it
//! wrote (mapped in `variants.rs`, [`from_variants`]: the model version and
//! minimum versions come from the publisher), or a hand-written
//! `release.json` beside the GGUF files (below). The admin API receives it
//! as JSON with every `digest` and `length` filled; [`load_dir`] fills and
//! checks them from the files.
//!
//! ```json
//! {
//!   "model": "smollm2-135m",
//!   "version": "2025-06",
//!   "min_app_version": "1.0.0",
//!   "variants": [
//!     {"file": "smollm2-135m.Q8_0.gguf", "quantization": "Q8_0",
//!      "ggml_types": ["f32", "q8_0"], "memory_bytes": 400000000,
//!      "min_engine_version": "0.1.0",
//!      "quality": {"kld_mean": 0.0012, "same_top_pct": 98.1},
//!      "fingerprints": [{"prompt": "The capital of France is", "position": 6,
//!                        "top": [[7042, -0.21], [30, -2.4]]}]}
//!   ],
//!   "classes": {
//!     "phone-4gb": {"variant": "Q8_0", "n_ctx": 2048, "kv_cache_type": "q8_0", "threads": 4},
//!     "default":   {"variant": "Q8_0", "n_ctx": 4096, "kv_cache_type": "f16"}
//!   },
//!   "blocked": {"watch-1gb": "no tier fits in 512 MiB"}
//! }
//! ```
//!
//! A device whose class is in `blocked` gets nothing from this release (it
//! is counted as blocked, with the reason). Otherwise a class without an
//! entry uses `default`; with no `default` either, it is blocked too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use outpost_protocol::manifest::{
    Canary, EmbeddingCanary, Encryption, KvCacheType, Manifest, ModelKind, ModelName, Requirements,
    RuntimeConfig, Variant, Version,
};
use outpost_protocol::{Digest, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

mod embedding;
mod seal;
mod variants;

pub use embedding::{
    from_embedding_variants, load_embedding_dir, BUFFER_BYTES as EMBEDDING_BUFFER_BYTES,
    EMBEDDING_VARIANTS_FILE,
};
pub use seal::seal_release;
pub use variants::{from_variants, load_variants_dir, Minimums, VARIANTS_FILE};

/// The file `load_release_dir` reads in a release folder.
pub const RELEASE_FILE: &str = "release.json";

/// The class used when a device's own class has no entry.
pub const DEFAULT_CLASS: &str = "default";

/// A model release: its variants (quantization tiers) and which one each
/// device class runs, with what runtime config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseMeta {
    pub model: ModelName,
    /// The app whose devices run it (default `default`); every release of
    /// a model has the same app. Tokens scoped to apps may change only
    /// their apps' releases.
    #[serde(
        default = "crate::access::default_app",
        skip_serializing_if = "crate::access::is_default_app"
    )]
    pub app: String,
    /// `generate` (the default, not written) or `embedding`; decides which
    /// canaries the variants carry.
    #[serde(default, skip_serializing_if = "ModelKind::is_generate")]
    pub kind: ModelKind,
    /// Free text such as `2025-06` or `v3` (1-64 printable ASCII, no spaces).
    pub version: String,
    /// Oldest app that may install this release.
    pub min_app_version: Version,
    pub variants: Vec<VariantMeta>,
    /// Device class → runtime config; `default` for every other class.
    pub classes: BTreeMap<String, ClassConfig>,
    /// Device class → why it runs nothing of this release (not even
    /// `default`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blocked: BTreeMap<String, String>,
    /// Free-form notes shown by `outpost fleet status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One GGUF file of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantMeta {
    /// The file name inside the release folder (input only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Filled from the file when absent; checked against it when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// The tier's name, unique within the release, e.g. `Q4_K_M`.
    pub quantization: String,
    /// ggml tensor types in the file; a device must support them all.
    pub ggml_types: Vec<String>,
    /// RAM needed to run it (weights + KV cache + buffers at the classes'
    /// n_ctx); a device with less is not given it.
    pub memory_bytes: u64,
    pub min_engine_version: Version,
    /// Quality against the reference, by metric name (`kld_mean`,
    /// `same_top_pct`, `ppl_ratio`, ...).
    #[serde(default)]
    pub quality: BTreeMap<String, f64>,
    /// Canary prompts the agent runs before switching to this variant
    /// (generative models).
    #[serde(default)]
    pub fingerprints: Vec<Canary>,
    /// Canary texts and vectors (embedding models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding_fingerprints: Vec<EmbeddingCanary>,
    /// Set by `outpost fleet publish --encrypt` ([`seal_release`]): the
    /// blob (`digest`, `length`) is sealed and this says how it opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// What a device class runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// A `quantization` from `variants`.
    pub variant: String,
    pub n_ctx: u32,
    pub kv_cache_type: KvCacheType,
    /// Absent: the device picks.
    #[serde(default)]
    pub threads: Option<u32>,
}

/// Why release metadata is refused: the field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("release metadata field `{field}` is {problem}")]
    Invalid { field: String, problem: String },
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> MetaError {
    MetaError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

impl ReleaseMeta {
    /// Every check that does not need the blobs: names, tiers, classes, and
    /// that each class yields a manifest `Manifest::validate` accepts.
    /// Digests and lengths must be present (`load_release_dir` fills them).
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.version.is_empty()
            || self.version.len() > 64
            || !self.version.chars().all(|c| c.is_ascii_graphic())
            || self.version.contains('@')
        {
            return Err(invalid(
                "version",
                format!(
                    "{:?}: it must be 1-64 printable ASCII characters without spaces or '@'",
                    self.version.chars().take(80).collect::<String>()
                ),
            ));
        }
        crate::access::check_name("app", &self.app).map_err(|e| invalid("app", e))?;
        if self.variants.is_empty() {
            return Err(invalid("variants", "empty: a release needs a GGUF file"));
        }
        if self.variants.len() > 32 {
            return Err(invalid("variants", "longer than 32 entries"));
        }
        for (i, v) in self.variants.iter().enumerate() {
            let f = |name: &str| format!("variants[{i}].{name}");
            if v.digest.is_none() {
                return Err(invalid(f("digest"), "missing"));
            }
            match v.length {
                None => return Err(invalid(f("length"), "missing")),
                Some(0) => return Err(invalid(f("length"), "0: a GGUF file is never empty")),
                Some(_) => {}
            }
            if v.memory_bytes == 0 {
                return Err(invalid(f("memory_bytes"), "0: give the RAM it needs"));
            }
            if self.variants[..i]
                .iter()
                .any(|o| o.quantization == v.quantization)
            {
                return Err(invalid(
                    f("quantization"),
                    format!("{:?}, which another variant already uses", v.quantization),
                ));
            }
            if v.quality.values().any(|q| !q.is_finite()) {
                return Err(invalid(f("quality"), "not finite (NaN or infinity)"));
            }
            let (needed, other) = match self.kind {
                ModelKind::Generate => (
                    v.fingerprints.is_empty(),
                    !v.embedding_fingerprints.is_empty(),
                ),
                ModelKind::Embedding => (
                    v.embedding_fingerprints.is_empty(),
                    !v.fingerprints.is_empty(),
                ),
            };
            if needed || other {
                let (want, not) = match self.kind {
                    ModelKind::Generate => ("fingerprints", "embedding_fingerprints"),
                    ModelKind::Embedding => ("embedding_fingerprints", "fingerprints"),
                };
                return Err(invalid(
                    f(if needed { want } else { not }),
                    format!(
                        "{}: a release of kind {} has canaries in `{want}` (and none in `{not}`)",
                        if needed { "empty" } else { "given" },
                        self.kind.as_str()
                    ),
                ));
            }
        }
        if self.classes.is_empty() {
            return Err(invalid(
                "classes",
                "empty: map device classes (or \"default\") to a variant",
            ));
        }
        for (class, reason) in &self.blocked {
            if self.classes.contains_key(class) {
                return Err(invalid(
                    format!("blocked.{class}"),
                    "also in `classes`: a class either runs a variant or is blocked",
                ));
            }
            if reason.trim().is_empty() || reason.len() > 500 {
                return Err(invalid(
                    format!("blocked.{class}"),
                    "not a reason: say in 1-500 bytes why the class runs nothing",
                ));
            }
        }
        for (class, cfg) in &self.classes {
            if !self.variants.iter().any(|v| v.quantization == cfg.variant) {
                return Err(invalid(
                    format!("classes.{class}.variant"),
                    format!(
                        "{:?}, which is not among the variants' quantizations {:?}",
                        cfg.variant,
                        self.variants
                            .iter()
                            .map(|v| v.quantization.as_str())
                            .collect::<Vec<_>>()
                    ),
                ));
            }
            // The manifest each class will get must itself be valid; its
            // errors name manifest fields, so say which class made it.
            let m = self
                .manifest_for(class, 1, "check", Timestamp::from_unix_seconds(1))
                .ok_or_else(|| invalid(format!("classes.{class}"), "unusable"))?;
            m.validate().map_err(|e| {
                invalid(
                    format!("classes.{class}"),
                    format!("not a valid manifest: {e}"),
                )
            })?;
        }
        Ok(())
    }

    /// The class entry a device of `class` uses, and under which name.
    /// `None` when the class is blocked or has no entry and no `default`.
    pub fn class_config(&self, class: &str) -> Option<(&str, &ClassConfig)> {
        if self.blocked.contains_key(class) {
            return None;
        }
        self.classes
            .get_key_value(class)
            .or_else(|| self.classes.get_key_value(DEFAULT_CLASS))
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn variant(&self, quantization: &str) -> Option<&VariantMeta> {
        self.variants
            .iter()
            .find(|v| v.quantization == quantization)
    }

    /// The manifest for a device of `device_class`, unsigned. `None` when
    /// the release has no config for that class (nor a default) or the
    /// variant lacks its digest or length.
    pub fn manifest_for(
        &self,
        device_class: &str,
        manifest_version: u64,
        key_id: &str,
        expires_at: Timestamp,
    ) -> Option<Manifest> {
        let (_, cfg) = self.class_config(device_class)?;
        let v = self.variant(&cfg.variant)?;
        Some(Manifest {
            manifest_version,
            key_id: key_id.to_string(),
            expires_at,
            model: self.model.clone(),
            model_version: self.version.clone(),
            kind: self.kind,
            device_class: device_class.to_string(),
            variant: Variant {
                digest: v.digest?,
                length: v.length?,
                quantization: v.quantization.clone(),
            },
            runtime: RuntimeConfig {
                n_ctx: cfg.n_ctx,
                kv_cache_type: cfg.kv_cache_type,
                threads: cfg.threads,
            },
            requires: Requirements {
                min_app_version: self.min_app_version,
                min_engine_version: v.min_engine_version,
                ggml_types: v.ggml_types.clone(),
            },
            canaries: v.fingerprints.clone(),
            embedding_canaries: v.embedding_fingerprints.clone(),
            encryption: v.encryption.clone(),
        })
    }
}

/// A release folder read from disk: the metadata with every digest and
/// length filled in, and the file behind each variant.
#[derive(Debug, Clone)]
pub struct ReleaseDir {
    pub meta: ReleaseMeta,
    pub files: Vec<(Digest, PathBuf)>,
}

/// Reads a release folder: `variants.json` (with `mins`, see
/// [`load_variants_dir`]), `embedding-variants.json` (the same for an
/// embedding model, see [`load_embedding_dir`]) or `release.json` (see
/// [`load_release_dir`]; it names its own versions, so `mins` must be
/// empty). More than one of them is refused.
pub fn load_dir(dir: &Path, mins: &Minimums) -> Result<ReleaseDir, MetaError> {
    let present: Vec<&str> = [VARIANTS_FILE, EMBEDDING_VARIANTS_FILE, RELEASE_FILE]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    match present.as_slice() {
        [VARIANTS_FILE] => load_variants_dir(dir, mins),
        [EMBEDDING_VARIANTS_FILE] => load_embedding_dir(dir, mins),
        [] | [RELEASE_FILE] => {
            if mins.version.is_some()
                || mins.min_app_version.is_some()
                || mins.min_engine_version.is_some()
            {
                return Err(MetaError::File {
                    path: dir.join(RELEASE_FILE),
                    problem: format!(
                        "names its own version and minimum versions; --version and --min-*-version are for folders with {VARIANTS_FILE} or {EMBEDDING_VARIANTS_FILE}"
                    ),
                });
            }
            load_release_dir(dir)
        }
        many => Err(MetaError::File {
            path: dir.to_path_buf(),
            problem: format!("holds {}; keep the one to publish", many.join(" and ")),
        }),
    }
}

/// Reads `DIR/release.json`, hashes every variant's file (which must start
/// with the GGUF magic), fills `digest` and `length` (refusing given values
/// that disagree with the file) and validates the result.
pub fn load_release_dir(dir: &Path) -> Result<ReleaseDir, MetaError> {
    let path = dir.join(RELEASE_FILE);
    let file_err = |path: &Path, problem: String| MetaError::File {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read(&path).map_err(|e| {
        file_err(
            &path,
            format!("cannot read it ({e}); a release folder holds {VARIANTS_FILE} (from `outpost variants build`) or {RELEASE_FILE}, beside the GGUF files they name"),
        )
    })?;
    let mut meta: ReleaseMeta = serde_json::from_slice(&text)
        .map_err(|e| file_err(&path, format!("not valid release metadata: {e}")))?;
    let mut files = Vec::new();
    for (i, v) in meta.variants.iter_mut().enumerate() {
        let Some(name) = v.file.clone() else {
            return Err(invalid(
                format!("variants[{i}].file"),
                "missing: name the GGUF file in the release folder",
            ));
        };
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(invalid(
                format!("variants[{i}].file"),
                format!("{name:?}: give a plain file name inside the release folder"),
            ));
        }
        let fpath = dir.join(&name);
        let (digest, length) = hash_gguf(&fpath).map_err(|problem| file_err(&fpath, problem))?;
        if let Some(given) = v.digest {
            if given != digest {
                return Err(invalid(
                    format!("variants[{i}].digest"),
                    format!("{given}, but {name} hashes to {digest}"),
                ));
            }
        }
        if let Some(given) = v.length {
            if given != length {
                return Err(invalid(
                    format!("variants[{i}].length"),
                    format!("{given}, but {name} has {length} bytes"),
                ));
            }
        }
        v.digest = Some(digest);
        v.length = Some(length);
        files.push((digest, fpath));
    }
    meta.validate()?;
    Ok(ReleaseDir { meta, files })
}

/// SHA-256 and length of a file that must start with `GGUF`.
pub(crate) fn hash_gguf(path: &Path) -> Result<(Digest, u64), String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        if len == 0 && !buf[..n].starts_with(b"GGUF") {
            return Err("not a GGUF file (it does not start with \"GGUF\")".into());
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    if len == 0 {
        return Err("empty file".into());
    }
    Ok((Digest::from_sha256_bytes(h.finalize().into()), len))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid release with one variant over `data`, for tests.
    pub(crate) fn sample(model: &str, version: &str, data: &[u8]) -> ReleaseMeta {
        let json = serde_json::json!({
            "model": model, "version": version, "min_app_version": "1.0.0",
            "variants": [{
                "digest": Digest::sha256(data).to_string(), "length": data.len(),
                "quantization": "Q4_0", "ggml_types": ["f32", "q4_0"],
                "memory_bytes": 300_000_000u64, "min_engine_version": "0.1.0",
                "quality": {"kld_mean": 0.05},
                "fingerprints": [{"prompt": "Hi", "position": 2, "top": [[1, -0.5], [2, -1.5]]}]
            }],
            "classes": {"default": {"variant": "Q4_0", "n_ctx": 2048, "kv_cache_type": "f16", "threads": 4}}
        });
        serde_json::from_value(json).expect("sample meta")
    }

    #[test]
    fn sample_is_valid_and_yields_manifests() {
        let m = sample("smollm2-135m", "v1", b"GGUF1");
        m.validate().expect("valid");
        let man = m
            .manifest_for("phone-8gb", 3, "k1", Timestamp::from_unix_seconds(9))
            .expect("default class");
        assert_eq!(man.device_class, "phone-8gb");
        assert_eq!(man.variant.length, 5);
    }

    #[test]
    fn errors_name_the_field() {
        let base = sample("m", "v1", b"GGUF1");
        type Edit = Box<dyn Fn(&mut ReleaseMeta)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|m| m.version = "a b".into()), "version"),
            (Box::new(|m| m.variants.clear()), "variants"),
            (
                Box::new(|m| m.variants[0].digest = None),
                "variants[0].digest",
            ),
            (
                Box::new(|m| m.variants[0].length = Some(0)),
                "variants[0].length",
            ),
            (Box::new(|m| m.variants[0].memory_bytes = 0), "memory_bytes"),
            (Box::new(|m| m.classes.clear()), "classes"),
            (
                Box::new(|m| {
                    if let Some(c) = m.classes.get_mut("default") {
                        c.variant = "Q9".into();
                    }
                }),
                "classes.default.variant",
            ),
            (Box::new(|m| m.variants[0].fingerprints.clear()), "canaries"),
            (
                Box::new(|m| {
                    m.blocked.insert("default".into(), "too small".into());
                }),
                "blocked.default",
            ),
            (
                Box::new(|m| {
                    m.variants[0].quality.insert("x".into(), f64::NAN);
                }),
                "quality",
            ),
        ];
        for (edit, field) in cases {
            let mut m = base.clone();
            edit(&mut m);
            let e = m.validate().expect_err(field).to_string();
            assert!(e.contains(field), "expected {field} in: {e}");
        }
    }

    #[test]
    fn release_dirs_are_hashed_and_checked() {
        let dir = std::env::temp_dir().join(format!("outpost-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("a.gguf"), b"GGUFdata").expect("write");
        std::fs::write(dir.join("b.gguf"), b"NOPE").expect("write");
        let mut meta = serde_json::to_value(sample("m", "v1", b"x")).expect("json");
        meta["variants"][0]["file"] = "a.gguf".into();
        meta["variants"][0]
            .as_object_mut()
            .map(|o| (o.remove("digest"), o.remove("length")));
        std::fs::write(dir.join(RELEASE_FILE), meta.to_string()).expect("write");
        let r = load_release_dir(&dir).expect("loads");
        assert_eq!(r.meta.variants[0].digest, Some(Digest::sha256(b"GGUFdata")));
        assert_eq!(r.meta.variants[0].length, Some(8));

        meta["variants"][0]["file"] = "b.gguf".into();
        std::fs::write(dir.join(RELEASE_FILE), meta.to_string()).expect("write");
        let e = load_release_dir(&dir).expect_err("not gguf").to_string();
        assert!(e.contains("GGUF"), "{e}");

        meta["variants"][0]["file"] = "../a.gguf".into();
        std::fs::write(dir.join(RELEASE_FILE), meta.to_string()).expect("write");
        let e = load_release_dir(&dir).expect_err("path").to_string();
        assert!(e.contains("variants[0].file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
