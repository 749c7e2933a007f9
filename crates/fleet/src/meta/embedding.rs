//! `embedding-variants.json` → [`ReleaseMeta`] of `kind: embedding`: an
//! embedding model is a release like any other.
//!
//! - each tier → a variant: digest, length = size, quantization = tier
//!   name, ggml types from `type_mix`, the cosine scores as quality
//!   (`cosine_mean`, `cosine_p01`, `cosine_min`), the tier's own vectors
//!   for a few sentences as its embedding canaries;
//! - memory = the file plus [`BUFFER_BYTES`] (an encoder keeps no KV cache
//!   between requests; the buffer covers the compute graph of a full
//!   512-token pass and the runtime);
//! - one class, `default`: the smallest tier whose worst sentence is at
//!   least [`DEFAULT_MIN_COSINE`] from the source (the tier with the best
//!   worst sentence when none is), at the model's trained context.
//!
//! Like `variants.json`, it names no model version nor minimum versions:
//! the publisher gives them ([`Minimums`]).

use std::collections::BTreeMap;
use std::path::Path;

use outpost_protocol::manifest::{KvCacheType, ModelKind, ModelName};
use outpost_protocol::variants::{EmbeddingVariantsFile, FORMAT_VERSION};
use outpost_protocol::Digest;

use super::variants::{check_tier_files, read_listing, TierFile, FIRST_VERSION};
use super::DEFAULT_CLASS;
use super::{invalid, ClassConfig, MetaError, Minimums, ReleaseDir, ReleaseMeta, VariantMeta};

/// The file `outpost variants build` writes for an embedding source.
pub const EMBEDDING_VARIANTS_FILE: &str = "embedding-variants.json";

/// RAM beyond the file an embedding tier is given. Measured (`/usr/bin/time
/// -v outpost embed minilm.gguf --file 512-tokens.txt -t 2`): peak RSS
/// 175 MiB for the 87 MiB f32 all-MiniLM-L6-v2, 88 MiB over the file (29
/// MiB over for a one-word input); 128 MiB leaves ~45 % headroom.
pub const BUFFER_BYTES: u64 = 128 << 20;

/// The worst-sentence cosine the default tier must reach.
pub const DEFAULT_MIN_COSINE: f64 = 0.99;

/// Maps `file` onto a release (no I/O; [`load_embedding_dir`] checks the
/// files) and validates it.
pub fn from_embedding_variants(
    file: &EmbeddingVariantsFile,
    mins: &Minimums,
) -> Result<ReleaseMeta, MetaError> {
    if file.format_version != FORMAT_VERSION {
        return Err(invalid(
            "format_version",
            format!(
                "{}, but this fleet reads {EMBEDDING_VARIANTS_FILE} format {FORMAT_VERSION}",
                file.format_version
            ),
        ));
    }
    if file.kind != "embedding" {
        return Err(invalid(
            "kind",
            format!(
                "{:?}; {EMBEDDING_VARIANTS_FILE} is always \"embedding\"",
                file.kind
            ),
        ));
    }
    let Some(version) = mins.version.clone() else {
        return Err(invalid(
            "version",
            format!("missing: {EMBEDDING_VARIANTS_FILE} has no model version, give one (--version 1.0.0)"),
        ));
    };
    let model = ModelName::parse(&file.model).map_err(|e| invalid("model", e.to_string()))?;
    let min_engine_version = mins.min_engine_version.unwrap_or(FIRST_VERSION);
    let mut variants = Vec::with_capacity(file.tiers.len());
    for (i, t) in file.tiers.iter().enumerate() {
        let digest = Digest::parse(&t.digest)
            .map_err(|e| invalid(format!("tiers[{i}].digest"), e.to_string()))?;
        if t.fingerprints.is_empty() {
            return Err(invalid(
                format!("tiers[{i}].fingerprints"),
                "empty: rebuild with this version of `outpost variants build`, which records each tier's vectors for the device's install check",
            ));
        }
        let mut ggml_types: Vec<String> = Vec::new();
        for share in &t.type_mix {
            if !ggml_types.contains(&share.ggml_type) {
                ggml_types.push(share.ggml_type.clone());
            }
        }
        variants.push(VariantMeta {
            file: Some(t.file.clone()),
            digest: Some(digest),
            length: Some(t.size),
            quantization: t.name.clone(),
            ggml_types,
            memory_bytes: t.size + BUFFER_BYTES,
            min_engine_version,
            quality: BTreeMap::from([
                ("cosine_mean".to_string(), t.cosine_mean),
                ("cosine_p01".to_string(), t.cosine_p01),
                ("cosine_min".to_string(), t.cosine_min),
            ]),
            fingerprints: Vec::new(),
            embedding_fingerprints: t.fingerprints.clone(),
            encryption: None,
        });
    }
    let chosen = file
        .tiers
        .iter()
        .filter(|t| t.cosine_min >= DEFAULT_MIN_COSINE)
        .min_by_key(|t| t.size)
        .or_else(|| {
            file.tiers
                .iter()
                .max_by(|a, b| a.cosine_min.total_cmp(&b.cosine_min))
        })
        .ok_or_else(|| invalid("tiers", "empty: a release needs a GGUF file"))?;
    let classes = BTreeMap::from([(
        DEFAULT_CLASS.to_string(),
        ClassConfig {
            variant: chosen.name.clone(),
            n_ctx: file.source.n_ctx_train.max(1),
            kv_cache_type: KvCacheType::F16,
            threads: None,
        },
    )]);
    let meta = ReleaseMeta {
        model,
        app: crate::access::default_app(),
        kind: ModelKind::Embedding,
        version,
        min_app_version: mins.min_app_version.unwrap_or(FIRST_VERSION),
        variants,
        classes,
        blocked: BTreeMap::new(),
        notes: Some(format!(
            "from {EMBEDDING_VARIANTS_FILE}: {} ({}), default tier {} (worst cosine {:.4}), llama.cpp {}",
            file.source.file,
            file.source.quantization,
            chosen.name,
            chosen.cosine_min,
            file.host.llama_cpp
        )),
    };
    meta.validate()?;
    Ok(meta)
}

/// Reads `DIR/embedding-variants.json`, checks every tier file against it
/// and maps it with [`from_embedding_variants`].
pub fn load_embedding_dir(dir: &Path, mins: &Minimums) -> Result<ReleaseDir, MetaError> {
    let path = dir.join(EMBEDDING_VARIANTS_FILE);
    let file: EmbeddingVariantsFile =
        read_listing(&path, &format!("an {EMBEDDING_VARIANTS_FILE}"))?;
    let meta = from_embedding_variants(&file, mins)?;
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
