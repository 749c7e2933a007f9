//! How much memory a model will hold once loaded with a given context,
//! computed from its GGUF header alone, so that a server can refuse a load
//! that would not fit before llama.cpp allocates anything.
//!
//! The parts follow llama.cpp's own allocations (its load log prints each):
//! the weights (memory-mapped file), the KV cache (f16 K and V for every
//! layer and context cell), the output logits (one row per sequence) and
//! the compute buffer, which is dominated by a full batch of logits
//! (n_batch × n_vocab floats). Measured on this build, the estimate is at
//! or above what llama.cpp reports: SmolLM2-135M, 4 × 8192 cells: KV 720 MiB,
//! compute 110 MiB; Gemma-3-270M: KV 576 MiB, compute 534 MiB.

use std::fmt;

use crate::error::{EngineError, Result};
use crate::gguf::GgufHeader;

/// Bytes a loaded model holds, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEstimate {
    pub weights: u64,
    pub kv_cache: u64,
    /// Logits rows and the compute graph's buffer.
    pub compute: u64,
}

impl MemoryEstimate {
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.compute
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "{:.0} MiB (weights {:.0} MiB + KV cache {:.0} MiB + compute {:.0} MiB)",
            mib(self.total()),
            mib(self.weights),
            mib(self.kv_cache),
            mib(self.compute)
        )
    }
}

/// The memory of `header`'s model with `n_ctx_total` KV cells (all
/// sequences together), `n_seq` sequences and batches of `n_batch` tokens.
pub fn estimate_memory(
    header: &GgufHeader,
    n_ctx_total: u64,
    n_seq: u64,
    n_batch: u64,
) -> Result<MemoryEstimate> {
    let need = |suffix: &str| {
        header.arch_u64(suffix).ok_or_else(|| EngineError::BadGguf {
            path: header.path.clone(),
            problem: format!("its header has no <architecture>.{suffix} key"),
        })
    };
    let n_layer = need("block_count")?;
    let n_embd = need("embedding_length")?;
    let n_head = need("attention.head_count")?.max(1);
    let n_head_kv = header.arch_u64("attention.head_count_kv").unwrap_or(n_head);
    let k_len = header
        .arch_u64("attention.key_length")
        .unwrap_or(n_embd / n_head);
    let v_len = header.arch_u64("attention.value_length").unwrap_or(k_len);
    let n_ff = header.arch_u64("feed_forward_length").unwrap_or(4 * n_embd);
    let n_vocab = header
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .and_then(|t| t.dims.get(1).copied())
        .ok_or_else(|| EngineError::BadGguf {
            path: header.path.clone(),
            problem: "it has no token_embd.weight tensor to size the vocabulary by".into(),
        })?;
    const F16: u64 = 2;
    const F32: u64 = 4;
    let kv_cache = n_layer * n_ctx_total * n_head_kv * (k_len + v_len) * F16;
    let outputs = n_vocab * n_seq * F32;
    let graph = n_batch * (n_vocab + 8 * n_embd + 4 * n_ff) * F32;
    Ok(MemoryEstimate {
        weights: header.file_size,
        kv_cache,
        compute: outputs + graph,
    })
}
