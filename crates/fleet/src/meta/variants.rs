//! `variants.json` → [`ReleaseMeta`]: the one place the variant pipeline's
//! output becomes a release.
//!
//! - each tier → a variant: digest, length = size, quantization = tier
//!   name, ggml types from `type_mix`, quality metrics by name,
//!   fingerprints as canaries, memory = the least any class recommending
//!   it needs (the host's peak RSS for a tier no class runs);
//! - each recommendation with a tier → that class's config (n_ctx, KV cache
//!   type; threads left to the device); one without → `blocked` with its
//!   reason, so those devices get no manifest and are counted as blocked;
//! - `default` (device classes `variants.json` does not know): the config
//!   of the recommended class with the smallest RAM budget. It is the
//!   cheapest config that was judged good enough for some class, and the
//!   check-in still refuses it to a device with too little RAM.
//!
//! `variants.json` has no model version nor minimum app and engine
//! versions: the publisher gives them ([`Minimums`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use outpost_protocol::manifest::{KvCacheType, ModelKind, ModelName, Version};
use outpost_protocol::variants::{VariantsFile, FORMAT_VERSION};
use outpost_protocol::Digest;

use super::{
    hash_gguf, invalid, ClassConfig, MetaError, ReleaseDir, ReleaseMeta, VariantMeta, DEFAULT_CLASS,
};

/// The file `outpost variants build` writes into its output folder.
pub const VARIANTS_FILE: &str = "variants.json";

/// What a release needs and `variants.json` does not say.
#[derive(Debug, Clone, Default)]
pub struct Minimums {
    /// The model version; required with `variants.json`.
    pub version: Option<String>,
    /// Default [`FIRST_VERSION`].
    pub min_app_version: Option<Version>,
    /// Default [`FIRST_VERSION`].
    pub min_engine_version: Option<Version>,
}

/// 0.1.0, the first app and engine release.
pub const FIRST_VERSION: Version = Version {
    major: 0,
    minor: 1,
    patch: 0,
};

/// Maps `file` onto a release (no I/O; digests and lengths are the file's
/// claims, [`load_variants_dir`] checks them) and validates it.
pub fn from_variants(file: &VariantsFile, mins: &Minimums) -> Result<ReleaseMeta, MetaError> {
    if file.format_version != FORMAT_VERSION {
        return Err(invalid(
            "format_version",
            format!(
                "{}, but this fleet reads variants.json format {FORMAT_VERSION}",
                file.format_version
            ),
        ));
    }
    let Some(version) = mins.version.clone() else {
        return Err(invalid(
            "version",
            "missing: variants.json has no model version, give one (--version 1.0.0)",
        ));
    };
    let model = ModelName::parse(&file.model).map_err(|e| invalid("model", e.to_string()))?;
    let min_engine_version = mins.min_engine_version.unwrap_or(FIRST_VERSION);

    let mut variants = Vec::with_capacity(file.tiers.len());
    for (i, t) in file.tiers.iter().enumerate() {
        let digest = Digest::parse(&t.digest)
            .map_err(|e| invalid(format!("tiers[{i}].digest"), e.to_string()))?;
        let mut ggml_types: Vec<String> = Vec::new();
        for share in &t.type_mix {
            if !ggml_types.contains(&share.ggml_type) {
                ggml_types.push(share.ggml_type.clone());
            }
        }
        let memory_bytes = file
            .recommendations
            .iter()
            .filter(|r| r.tier.as_deref() == Some(t.name.as_str()))
            .map(|r| r.memory_bytes)
            .min()
            .unwrap_or(t.cost.peak_rss_bytes.max(t.size));
        let q = &t.quality;
        let quality = BTreeMap::from([
            ("ppl".to_string(), q.ppl),
            ("ppl_ratio".to_string(), q.ppl_ratio),
            ("kld_mean".to_string(), q.kld_mean),
            ("kld_p99".to_string(), q.kld_p99),
            ("kld_max".to_string(), q.kld_max),
            ("same_top_pct".to_string(), q.same_top_pct),
            ("rms_dp_pct".to_string(), q.rms_dp_pct),
        ]);
        variants.push(VariantMeta {
            file: Some(t.file.clone()),
            digest: Some(digest),
            length: Some(t.size),
            quantization: t.name.clone(),
            ggml_types,
            memory_bytes,
            min_engine_version,
            quality,
            fingerprints: t.fingerprints.clone(),
            embedding_fingerprints: Vec::new(),
            encryption: None,
        });
    }

    let mut classes = BTreeMap::new();
    let mut blocked = BTreeMap::new();
    let mut default: Option<(u64, ClassConfig)> = None;
    for (i, r) in file.recommendations.iter().enumerate() {
        let Some(tier) = &r.tier else {
            let reason = if r.reason.trim().is_empty() {
                "no tier fits this device class".to_string()
            } else {
                r.reason.clone()
            };
            blocked.insert(r.device_class.clone(), reason);
            continue;
        };
        let kv_cache_type: KvCacheType = serde_json::from_value(serde_json::Value::String(
            r.kv_cache_type.clone(),
        ))
        .map_err(|_| {
            invalid(
                format!("recommendations[{i}].kv_cache_type"),
                format!("{:?}, which is not a KV cache type", r.kv_cache_type),
            )
        })?;
        let cfg = ClassConfig {
            variant: tier.clone(),
            n_ctx: r.n_ctx,
            kv_cache_type,
            threads: None,
        };
        let budget = file
            .device_classes
            .iter()
            .find(|c| c.name == r.device_class)
            .map_or(r.memory_bytes, |c| c.ram_budget_bytes);
        if default.as_ref().is_none_or(|(b, _)| budget < *b) {
            default = Some((budget, cfg.clone()));
        }
        if classes.insert(r.device_class.clone(), cfg).is_some() {
            return Err(invalid(
                format!("recommendations[{i}].device_class"),
                format!("{:?}, which is recommended twice", r.device_class),
            ));
        }
    }
    if let Some((_, cfg)) = default {
        if !classes.contains_key(DEFAULT_CLASS) && !blocked.contains_key(DEFAULT_CLASS) {
            classes.insert(DEFAULT_CLASS.to_string(), cfg);
        }
    }
    let meta = ReleaseMeta {
        model,
        app: crate::access::default_app(),
        kind: ModelKind::Generate,
        version,
        min_app_version: mins.min_app_version.unwrap_or(FIRST_VERSION),
        variants,
        classes,
        blocked,
        notes: Some(format!(
            "from {VARIANTS_FILE}: {} ({}), llama.cpp {}",
            file.source.file, file.source.quantization, file.host.llama_cpp
        )),
    };
    meta.validate()?;
    Ok(meta)
}

/// Reads `DIR/variants.json`, checks every tier file's size and SHA-256
/// against it (a missing, truncated or altered file is refused, naming it),
/// and maps it with [`from_variants`].
pub fn load_variants_dir(dir: &Path, mins: &Minimums) -> Result<ReleaseDir, MetaError> {
    let path = dir.join(VARIANTS_FILE);
    let file: VariantsFile = read_listing(&path, "a variants.json")?;
    let meta = from_variants(&file, mins)?;
    let tiers: Vec<TierFile> = file
        .tiers
        .iter()
        .map(|t| TierFile {
            name: &t.name,
            file: &t.file,
            size: t.size,
            digest: &t.digest,
        })
        .collect();
    let files = check_tier_files(dir, &path, &tiers, &meta.variants)?;
    Ok(ReleaseDir { meta, files })
}

/// Reads the build listing at `path` (`what` names it in the error).
pub(super) fn read_listing<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<T, MetaError> {
    let file_err = |problem: String| MetaError::File {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read(path).map_err(|e| file_err(format!("cannot read it: {e}")))?;
    serde_json::from_slice(&text)
        .map_err(|e| file_err(format!("not {what} of `outpost variants build`: {e}")))
}

/// A tier file as a build listing names it.
pub(super) struct TierFile<'a> {
    pub name: &'a str,
    pub file: &'a str,
    pub size: u64,
    pub digest: &'a str,
}

/// Checks each tier file in `dir` against the listing at `listing` (a
/// plain file name, that size, that SHA-256; `variants[i]` holds the parsed
/// claims of `tiers[i]`) and returns the files by digest. A missing,
/// truncated or altered file is refused, naming it.
pub(super) fn check_tier_files(
    dir: &Path,
    listing: &Path,
    tiers: &[TierFile],
    variants: &[VariantMeta],
) -> Result<Vec<(Digest, PathBuf)>, MetaError> {
    let file_err = |path: &Path, problem: String| MetaError::File {
        path: path.to_path_buf(),
        problem,
    };
    let shown = listing
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut files = Vec::with_capacity(tiers.len());
    for (t, v) in tiers.iter().zip(variants) {
        let name = t.file;
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(file_err(
                listing,
                format!("tier {}: file {name:?} is not a plain file name", t.name),
            ));
        }
        let fpath = dir.join(name);
        let (digest, length) = hash_gguf(&fpath)
            .map_err(|p| file_err(&fpath, format!("{p} (tier {} of {shown})", t.name)))?;
        if Some(length) != v.length || Some(digest) != v.digest {
            return Err(file_err(
                &fpath,
                format!(
                    "{length} bytes hashing to {digest}, but {shown} says tier {} is {} bytes with {}; the file is damaged or from another build",
                    t.name, t.size, t.digest
                ),
            ));
        }
        files.push((digest, fpath));
    }
    Ok(files)
}
