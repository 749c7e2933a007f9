//! Architecture tables: how one Hugging Face architecture maps onto the
//! GGUF that llama.cpp loads (metadata keys from `config.json`, tensor
//! names, which tensors are dropped, which tokenizer). A second
//! architecture is a second table.
//!
//! BERT (facts from llama.cpp's `src/models/bert.cpp`, `src/llama-arch.cpp`
//! and `src/llama-vocab.cpp` at the vendored commit): the loader needs
//! `attention.layer_norm_epsilon`, `tokenizer.ggml.token_type_count` > 0,
//! `token_embd`, `position_embd`, `token_embd_norm` and per layer q/k/v,
//! `attn_output`, `attn_output_norm`, `ffn_up`, `ffn_down`,
//! `layer_output_norm`; the pooler is not used for embeddings.

use crate::vocab::{self, Vocab};
use crate::Result;
use std::path::Path;

/// How a `config.json` value becomes a GGUF metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HparamKind {
    U32,
    F32,
}

/// One hyperparameter: the GGUF key (after `ARCH.`) and the config key.
#[derive(Debug, Clone, Copy)]
pub struct Hparam {
    pub key: &'static str,
    pub config: &'static str,
    pub kind: HparamKind,
}

/// Everything the converter knows about one architecture.
#[derive(Debug)]
pub struct Arch {
    /// `general.architecture` in the GGUF.
    pub name: &'static str,
    /// Accepted `config.json` `model_type` values.
    pub model_types: &'static [&'static str],
    pub hparams: &'static [Hparam],
    /// Keys that must be present in `config.json` beside `hparams`
    /// (checked, not written), e.g. the layer count used for the tensor map.
    pub layers_key: &'static str,
    /// Prefixes some checkpoints put in front of every name (`bert.`).
    pub strip_prefixes: &'static [&'static str],
    /// Tensors outside the layers: (checkpoint name, GGUF name).
    pub globals: &'static [(&'static str, &'static str)],
    /// The checkpoint's per-layer prefix, `{}` standing for the layer index.
    pub layer_prefix: &'static str,
    /// Per-layer tensors: (checkpoint suffix, GGUF suffix); GGUF names are
    /// `blk.N.` + suffix.
    pub layer_tensors: &'static [(&'static str, &'static str)],
    /// Tensors that are dropped on purpose, by exact name or `prefix*`.
    pub dropped: &'static [&'static str],
    /// GGUF tensor names that stay f32 in an f16 file besides 1-D tensors.
    pub keep_f32: &'static [&'static str],
    pub vocab: fn(&Path) -> Result<Vocab>,
}

impl Arch {
    /// The GGUF name for checkpoint tensor `name`, `None` when it is dropped,
    /// or an error naming it when the table does not know it.
    pub fn map(&self, name: &str, n_layers: u32) -> Result<Option<String>, String> {
        let name = self
            .strip_prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(name);
        let dropped = self.dropped.iter().any(|d| match d.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *d,
        });
        if dropped {
            return Ok(None);
        }
        if let Some((_, g)) = self.globals.iter().find(|(h, _)| *h == name) {
            return Ok(Some((*g).to_string()));
        }
        let (before, after) = self
            .layer_prefix
            .split_once("{}")
            .unwrap_or((self.layer_prefix, ""));
        if let Some(rest) = name.strip_prefix(before) {
            if let Some((index, suffix)) = rest.split_once(after) {
                if let Ok(i) = index.parse::<u32>() {
                    if i < n_layers {
                        if let Some((_, g)) = self.layer_tensors.iter().find(|(h, _)| *h == suffix)
                        {
                            return Ok(Some(format!("blk.{i}.{g}")));
                        }
                    }
                }
            }
        }
        Err(name.to_string())
    }

    /// Every GGUF tensor name this architecture needs for `n_layers`.
    pub fn required(&self, n_layers: u32) -> Vec<String> {
        let mut names: Vec<String> = self.globals.iter().map(|(_, g)| g.to_string()).collect();
        for i in 0..n_layers {
            names.extend(
                self.layer_tensors
                    .iter()
                    .map(|(_, g)| format!("blk.{i}.{g}")),
            );
        }
        names
    }
}

const U32: HparamKind = HparamKind::U32;
const F32: HparamKind = HparamKind::F32;

/// BERT encoders (MiniLM, BGE, E5 and the like).
pub static BERT: Arch = Arch {
    name: "bert",
    model_types: &["bert"],
    hparams: &[
        Hparam {
            key: "context_length",
            config: "max_position_embeddings",
            kind: U32,
        },
        Hparam {
            key: "embedding_length",
            config: "hidden_size",
            kind: U32,
        },
        Hparam {
            key: "feed_forward_length",
            config: "intermediate_size",
            kind: U32,
        },
        Hparam {
            key: "block_count",
            config: "num_hidden_layers",
            kind: U32,
        },
        Hparam {
            key: "attention.head_count",
            config: "num_attention_heads",
            kind: U32,
        },
        Hparam {
            key: "attention.layer_norm_epsilon",
            config: "layer_norm_eps",
            kind: F32,
        },
    ],
    layers_key: "num_hidden_layers",
    strip_prefixes: &["bert."],
    globals: &[
        ("embeddings.word_embeddings.weight", "token_embd.weight"),
        (
            "embeddings.token_type_embeddings.weight",
            "token_types.weight",
        ),
        (
            "embeddings.position_embeddings.weight",
            "position_embd.weight",
        ),
        ("embeddings.LayerNorm.weight", "token_embd_norm.weight"),
        ("embeddings.LayerNorm.bias", "token_embd_norm.bias"),
    ],
    layer_prefix: "encoder.layer.{}.",
    layer_tensors: &[
        ("attention.self.query.weight", "attn_q.weight"),
        ("attention.self.query.bias", "attn_q.bias"),
        ("attention.self.key.weight", "attn_k.weight"),
        ("attention.self.key.bias", "attn_k.bias"),
        ("attention.self.value.weight", "attn_v.weight"),
        ("attention.self.value.bias", "attn_v.bias"),
        ("attention.output.dense.weight", "attn_output.weight"),
        ("attention.output.dense.bias", "attn_output.bias"),
        (
            "attention.output.LayerNorm.weight",
            "attn_output_norm.weight",
        ),
        ("attention.output.LayerNorm.bias", "attn_output_norm.bias"),
        ("intermediate.dense.weight", "ffn_up.weight"),
        ("intermediate.dense.bias", "ffn_up.bias"),
        ("output.dense.weight", "ffn_down.weight"),
        ("output.dense.bias", "ffn_down.bias"),
        ("output.LayerNorm.weight", "layer_output_norm.weight"),
        ("output.LayerNorm.bias", "layer_output_norm.bias"),
    ],
    dropped: &["embeddings.position_ids", "pooler.*", "cls.*"],
    keep_f32: &["position_embd.weight", "token_types.weight"],
    vocab: vocab::wordpiece,
};

/// Every table, for lookup by `model_type` and for error messages.
pub static ARCHES: &[&Arch] = &[&BERT];
