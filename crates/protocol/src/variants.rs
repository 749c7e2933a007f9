//! `variants.json`: what `outpost variants build` measured for each
//! quantization tier of one checkpoint, and the tier it recommends per
//! device class. The fleet registry ingests it when a model version is
//! published, so it is a wire type: changing it is a compatibility event
//! (`FORMAT_VERSION`).

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantsFile {
    pub format_version: u32,
    /// Model name (the source file's stem unless given).
    pub model: String,
    pub source: SourceInfo,
    pub eval: EvalInfo,
    pub host: HostInfo,
    /// Distinct tiers, most bits first.
    pub tiers: Vec<Tier>,
    /// Tiers dropped because another tier was within 3 % in size (counting
    /// only the tensors tiers store differently).
    pub merged: Vec<Merged>,
    pub device_classes: Vec<DeviceClass>,
    pub recommendations: Vec<Recommendation>,
}

/// The checkpoint every tier is made from and compared against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub file: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    /// llama.cpp's file type name, e.g. `F16`, `Q4_1`.
    pub quantization: String,
    /// Effective bits per weight over all tensors.
    pub bpw: f64,
    /// True when the source is itself quantized: the metrics then compare
    /// against a quantized reference, and tiers with more bits than the
    /// source cannot gain quality.
    pub already_quantized: bool,
    pub n_params: u64,
    pub architecture: String,
    pub n_ctx_train: u32,
    pub n_vocab: u32,
}

/// How quality was measured (llama-perplexity's method).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalInfo {
    /// Where the text came from.
    pub text: String,
    /// `sha256:<hex>` of the text.
    pub text_digest: String,
    /// Window size; the second half of each window is scored.
    pub n_ctx: u32,
    pub chunks: u32,
    /// Tokens scored per model (chunks × (n_ctx/2 − 1)).
    pub scored_tokens: u64,
    pub reference_ppl: f64,
}

/// Where the cost numbers were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostInfo {
    pub cpu: String,
    pub threads: u32,
    pub llama_cpp: String,
}

/// One quantization tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Tier name as asked, e.g. `q4_k_m`.
    pub name: String,
    /// File name inside the output folder.
    pub file: String,
    /// `sha256:<hex>` of the file.
    pub digest: String,
    pub size: u64,
    /// Effective bits per weight (file tensor bytes × 8 / parameters).
    pub bpw: f64,
    /// ggml type → tensors and bytes, largest first: what llama.cpp really
    /// used (rows that are not a multiple of 256 fall back from K types).
    pub type_mix: Vec<TypeShare>,
    /// More bits than an already-quantized source: cannot be better than it.
    pub no_quality_gain: bool,
    pub quality: Quality,
    pub cost: Cost,
    /// The tier's own next-token log-probs on fixed prompts, for the
    /// device's canary.
    pub fingerprints: Vec<Fingerprint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypeShare {
    pub ggml_type: String,
    pub tensors: u64,
    pub bytes: u64,
}

/// Quality against the reference on the same scored tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quality {
    pub ppl: f64,
    /// `ppl / reference_ppl`.
    pub ppl_ratio: f64,
    /// Mean KL divergence (reference ‖ tier), nats per token.
    pub kld_mean: f64,
    pub kld_p99: f64,
    pub kld_max: f64,
    /// Positions where the tier's most likely token is the reference's, %.
    pub same_top_pct: f64,
    /// Root mean square of p_tier − p_ref for the actual next token, in
    /// percentage points.
    pub rms_dp_pct: f64,
}

/// Cost on the build host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    pub load_ms: f64,
    pub pp512_tps: f64,
    pub tg128_tps: f64,
    /// Peak resident memory of a process that loaded the tier and ran the
    /// speed test.
    pub peak_rss_bytes: u64,
}

/// Top next-token log-probs after a prefix of a fixed prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    pub prompt: String,
    /// Tokens of the prompt (with BOS) consumed before the prediction.
    pub position: u32,
    /// `(token id, log-prob)`, most likely first.
    pub top: Vec<(i32, f32)>,
}

/// An embedding model's fingerprint: a fixed text and the vector the tier
/// gave for it on the build host (pooled and normalised as the model says).
/// The device embeds the same text and compares by cosine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingFingerprint {
    pub text: String,
    pub vector: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Merged {
    pub tier: String,
    pub into: String,
    /// Size difference in %, relative to the kept tier, over the tensors
    /// the tiers store differently.
    pub size_diff_pct: f64,
}

/// A class of device: how much memory the model may use, and how fast its
/// memory is relative to the build host (decode speed scales with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceClass {
    pub name: String,
    /// Memory the model may take: weights + KV cache + buffers.
    pub ram_budget_bytes: u64,
    pub relative_bandwidth: f64,
    /// Highest acceptable mean KLD for this class.
    pub kld_ceiling: f64,
}

/// What a device class should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recommendation {
    pub device_class: String,
    /// None when nothing fits; `reason` says why.
    pub tier: Option<String>,
    pub n_ctx: u32,
    /// `f16` or `q8_0`.
    pub kv_cache_type: String,
    /// Weights + KV cache + compute buffers.
    pub memory_bytes: u64,
    /// tg128 on the host × the class's relative bandwidth.
    pub predicted_tg_tps: f64,
    pub reason: String,
}

/// `embedding-variants.json`: the tiers of an embedding model, scored by
/// cosine similarity to the source's vectors on the same sentences (not
/// perplexity: an encoder predicts no tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingVariantsFile {
    pub format_version: u32,
    /// Always `embedding`.
    pub kind: String,
    pub model: String,
    pub source: SourceInfo,
    pub eval: EmbeddingEval,
    pub host: HostInfo,
    pub tiers: Vec<EmbeddingTier>,
}

/// The sentences every tier was scored on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingEval {
    pub text: String,
    pub text_digest: String,
    pub sentences: u32,
    pub tokens: u64,
    /// The source's own speed on them, for the tiers' ratios.
    pub source_embeddings_per_s: f64,
}

/// One embedding tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingTier {
    pub name: String,
    pub file: String,
    pub digest: String,
    pub size: u64,
    pub bpw: f64,
    pub type_mix: Vec<TypeShare>,
    /// Cosine to the source's vector, over the sentences.
    pub cosine_mean: f64,
    /// The 1st percentile (99 % of sentences are at least this close).
    pub cosine_p01: f64,
    pub cosine_min: f64,
    /// Sentences embedded per second (batches of 32) on this host.
    pub embeddings_per_s: f64,
    pub load_ms: f64,
    /// The tier's own vectors for a few of the sentences: what a device
    /// checks its install against.
    #[serde(default)]
    pub fingerprints: Vec<EmbeddingFingerprint>,
}
