//! `outpost convert`: a full-precision Hugging Face checkpoint
//! (`config.json`, `tokenizer.json`, `model.safetensors` or its sharded
//! index, the sentence-transformers pooling config) to one GGUF that
//! llama.cpp loads, in f32 or f16. It is the variant pipeline's
//! full-precision entry: `outpost variants build` quantizes its output.
//!
//! What is architecture-specific lives in a table ([`arch`]); this file reads
//! the checkpoint, checks every tensor against the table and `config.json`
//! (nothing unknown is dropped silently) and writes through
//! [`gguf_write::GgufWriter`] (temporary file, then rename).

pub mod arch;
mod error;
pub mod gguf_write;
pub mod vocab;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;

pub use arch::{Arch, ARCHES};
pub use error::{ConvertError, Result};
use gguf_write::{GgufWriter, Tensor, TensorType, Value};

/// GGUF key for whether embeddings are L2-normalised after pooling
/// (sentence-transformers' `Normalize` module). llama.cpp ignores it.
pub const NORMALIZE_KEY: &str = "outpost.embedding.normalize";

/// How token vectors become one sentence vector (llama.cpp's pooling types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
}

impl Pooling {
    /// llama.cpp's `llama_pooling_type` number.
    pub fn llama_id(self) -> u32 {
        match self {
            Pooling::Mean => 1,
            Pooling::Cls => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Options {
    /// `f32` (the default: the reference every tier is scored against) or `f16`.
    pub out_type: TensorType,
    /// Pooling when the checkpoint has no `1_Pooling/config.json`.
    pub pooling: Option<Pooling>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            out_type: TensorType::F32,
            pooling: None,
        }
    }
}

/// Parses `f32` / `f16`.
pub fn parse_out_type(s: &str) -> Result<TensorType> {
    match s.to_ascii_lowercase().as_str() {
        "f32" => Ok(TensorType::F32),
        "f16" => Ok(TensorType::F16),
        _ => Err(ConvertError::OutType(s.to_string())),
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct Report {
    pub architecture: &'static str,
    pub path: PathBuf,
    pub size: u64,
    pub tensors: usize,
    pub parameters: u64,
    pub vocab: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Checkpoint tensors left out on purpose (the pooler, position ids).
    pub dropped: Vec<String>,
}

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|io| ConvertError::Read {
        path: path.to_path_buf(),
        io,
    })?;
    serde_json::from_str(&text).map_err(|e| ConvertError::Json {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

/// The safetensors files of a checkpoint: `model.safetensors`, or the
/// shards its `model.safetensors.index.json` names.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(ConvertError::Read {
            path: single,
            io: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither model.safetensors nor model.safetensors.index.json is there",
            ),
        });
    }
    let json = read_json(&index)?;
    let map = json
        .get("weight_map")
        .and_then(Json::as_object)
        .ok_or_else(|| ConvertError::Config {
            path: index.clone(),
            key: "weight_map".into(),
            expected: "an object of tensor → file",
        })?;
    let mut files: Vec<PathBuf> = map
        .values()
        .filter_map(Json::as_str)
        .map(|f| dir.join(f))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn pooling_of(dir: &Path, opts: &Options) -> Result<Pooling> {
    let path = dir.join("1_Pooling/config.json");
    if !path.is_file() {
        return opts.pooling.ok_or_else(|| ConvertError::Config {
            path,
            key: "pooling_mode_*".into(),
            expected: "present (or pass --pooling mean|cls)",
        });
    }
    let json = read_json(&path)?;
    let on = |k: &str| json.get(k).and_then(Json::as_bool).unwrap_or(false);
    match (on("pooling_mode_mean_tokens"), on("pooling_mode_cls_token")) {
        (true, false) => Ok(Pooling::Mean),
        (false, true) => Ok(Pooling::Cls),
        _ => Err(ConvertError::Config {
            path,
            key: "pooling_mode_mean_tokens / pooling_mode_cls_token".into(),
            expected: "exactly one of mean or cls set (max and sqrt-length pooling are not supported by llama.cpp)",
        }),
    }
}

fn normalize_of(dir: &Path) -> Result<bool> {
    let path = dir.join("modules.json");
    if !path.is_file() {
        return Ok(false);
    }
    let json = read_json(&path)?;
    Ok(json.as_array().is_some_and(|mods| {
        mods.iter().any(|m| {
            m.get("type").and_then(Json::as_str) == Some("sentence_transformers.models.Normalize")
        })
    }))
}

fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let chunks2 = || bytes.chunks_exact(2).map(|c| [c[0], c[1]]);
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => chunks2()
            .map(|b| half::f16::from_le_bytes(b).to_f32())
            .collect(),
        Dtype::BF16 => chunks2()
            .map(|b| half::bf16::from_le_bytes(b).to_f32())
            .collect(),
        other => {
            return Err(ConvertError::Dtype {
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// Converts the checkpoint in `dir` to `out`. `progress(done, total)` is
/// called while tensors are read (first half) and written (second half).
pub fn convert(
    dir: &Path,
    out: &Path,
    opts: &Options,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report> {
    let config_path = dir.join("config.json");
    let config = read_json(&config_path)?;
    let model_type = config
        .get("model_type")
        .and_then(Json::as_str)
        .unwrap_or("");
    let arch: &Arch = ARCHES
        .iter()
        .copied()
        .find(|a| a.model_types.contains(&model_type))
        .ok_or_else(|| ConvertError::Architecture {
            path: config_path.clone(),
            found: model_type.to_string(),
            supported: ARCHES
                .iter()
                .flat_map(|a| a.model_types.iter().copied())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let cfg_u64 = |key: &str| -> Result<u64> {
        config
            .get(key)
            .and_then(Json::as_u64)
            .ok_or_else(|| ConvertError::Config {
                path: config_path.clone(),
                key: key.to_string(),
                expected: "a whole number",
            })
    };
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::Str(arch.name.into()));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| arch.name.to_string());
    w.set("general.name", Value::Str(name));
    let file_type = match opts.out_type {
        TensorType::F32 => 0,
        TensorType::F16 => 1,
    };
    w.set("general.file_type", Value::U32(file_type));
    for h in arch.hparams {
        let key = format!("{}.{}", arch.name, h.key);
        let value = match h.kind {
            arch::HparamKind::U32 => {
                let v = cfg_u64(h.config)?;
                Value::U32(u32::try_from(v).map_err(|_| ConvertError::Config {
                    path: config_path.clone(),
                    key: h.config.to_string(),
                    expected: "a number below 2^32",
                })?)
            }
            arch::HparamKind::F32 => {
                Value::F32(config.get(h.config).and_then(Json::as_f64).ok_or_else(|| {
                    ConvertError::Config {
                        path: config_path.clone(),
                        key: h.config.to_string(),
                        expected: "a number",
                    }
                })? as f32)
            }
        };
        w.set(&key, value);
    }
    let n_layers = u32::try_from(cfg_u64(arch.layers_key)?).unwrap_or(u32::MAX);
    let hidden = cfg_u64("hidden_size")?;
    let pooling = pooling_of(dir, opts)?;
    let normalize = normalize_of(dir)?;
    w.set(
        &format!("{}.attention.causal", arch.name),
        Value::Bool(false),
    );
    w.set(
        &format!("{}.pooling_type", arch.name),
        Value::U32(pooling.llama_id()),
    );
    w.set(NORMALIZE_KEY, Value::Bool(normalize));

    let vocab = (arch.vocab)(&dir.join("tokenizer.json"))?;
    let token_types = config
        .get("type_vocab_size")
        .and_then(Json::as_u64)
        .unwrap_or(1);
    w.set("tokenizer.ggml.model", Value::Str(vocab.model.into()));
    // WordPiece has no pre-tokenizer variants in llama.cpp.
    w.set("tokenizer.ggml.pre", Value::Str("default".into()));
    w.set(
        "tokenizer.ggml.tokens",
        Value::StrArray(vocab.tokens.clone()),
    );
    w.set(
        "tokenizer.ggml.token_type",
        Value::I32Array(vocab.types.clone()),
    );
    w.set(
        "tokenizer.ggml.token_type_count",
        Value::U32(token_types as u32),
    );
    for (role, key) in [
        ("cls", "tokenizer.ggml.bos_token_id"),
        ("cls", "tokenizer.ggml.cls_token_id"),
        ("sep", "tokenizer.ggml.seperator_token_id"),
        ("unk", "tokenizer.ggml.unknown_token_id"),
        ("pad", "tokenizer.ggml.padding_token_id"),
        ("mask", "tokenizer.ggml.mask_token_id"),
    ] {
        if let Some(id) = vocab.special.get(role) {
            w.set(key, Value::U32(*id));
        }
    }

    // Tensors: read every file, map every name, check shapes.
    let files = weight_files(dir)?;
    let mut pending: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut dropped = Vec::new();
    let total_files = files.len() as u64;
    for (i, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).map_err(|io| ConvertError::Read {
            path: file.clone(),
            io,
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ConvertError::Safetensors {
            path: file.clone(),
            problem: e.to_string(),
        })?;
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        for hf in names {
            let gguf = match arch.map(&hf, n_layers) {
                Ok(Some(g)) => g,
                Ok(None) => {
                    dropped.push(hf);
                    continue;
                }
                Err(tensor) => {
                    return Err(ConvertError::UnknownTensor {
                        tensor,
                        arch: arch.name,
                    })
                }
            };
            let view = st.tensor(&hf).map_err(|e| ConvertError::Safetensors {
                path: file.clone(),
                problem: e.to_string(),
            })?;
            let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
            let data = to_f32(&hf, view.dtype(), view.data())?;
            let keep_f32 = shape.len() <= 1
                || gguf.ends_with("_norm.weight")
                || arch.keep_f32.contains(&gguf.as_str());
            let ty = if keep_f32 {
                TensorType::F32
            } else {
                opts.out_type
            };
            pending.insert(
                gguf.clone(),
                Tensor {
                    name: gguf,
                    shape,
                    ty,
                    data,
                },
            );
        }
        progress(i as u64 + 1, total_files * 2);
    }
    for name in arch.required(n_layers) {
        if !pending.contains_key(&name) {
            return Err(ConvertError::MissingTensor {
                tensor: name,
                arch: arch.name,
            });
        }
    }
    let expect = |name: &str, expected: Vec<u64>| -> Result<()> {
        match pending.get(name) {
            Some(t) if t.shape != expected => Err(ConvertError::ShapeMismatch {
                tensor: name.to_string(),
                shape: t.shape.clone(),
                expected,
            }),
            _ => Ok(()),
        }
    };
    expect("token_embd.weight", vec![vocab.tokens.len() as u64, hidden])?;
    expect("token_types.weight", vec![token_types, hidden])?;
    let parameters: u64 = pending.values().map(|t| t.data.len() as u64).sum();
    // Globals first, then layers in order (as llama.cpp's converter writes them).
    let order = arch.required(n_layers);
    let n_tensors = pending.len();
    for name in &order {
        if let Some(t) = pending.remove(name) {
            w.add_tensor(t)?;
        }
    }
    for (_, t) in std::mem::take(&mut pending) {
        w.add_tensor(t)?;
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|io| ConvertError::Write {
            path: out.to_path_buf(),
            io,
        })?;
    }
    let size = w.write(out, |done, total| {
        progress(
            total_files + done * total_files / total.max(1),
            total_files * 2,
        )
    })?;
    Ok(Report {
        architecture: arch.name,
        path: out.to_path_buf(),
        size,
        tensors: n_tensors,
        parameters,
        vocab: vocab.tokens.len(),
        pooling,
        normalize,
        dropped,
    })
}
