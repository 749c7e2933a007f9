//! `outpost variants build`: quantize every tier, merge near-duplicates,
//! score them against the source, measure their cost, fingerprint them,
//! recommend a tier per device class, and write the report.
//!
//! Crash safety: every file is written under a temporary name and renamed
//! when complete, and each finished step leaves a small record in
//! `OUT/.work/` keyed by the source digest (and the evaluation settings).
//! A killed run, run again, redoes only the unfinished steps and ends with
//! the same complete result.

use std::path::{Path, PathBuf};

use outpost_engine::gguf::GgufHeader;
use outpost_engine::{LoadOptions, Model};
use outpost_protocol::variants::{
    Cost, DeviceClass, EvalInfo, HostInfo, Merged, Quality, SourceInfo, Tier, TypeShare,
    VariantsFile, FORMAT_VERSION,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{fingerprint, quality, tiers, VariantsError};

/// What to build.
pub struct BuildOptions {
    pub source: PathBuf,
    pub tiers: Vec<String>,
    pub eval_text: PathBuf,
    pub out: PathBuf,
    /// Model name in file names and `variants.json`; default: the source's stem.
    pub name: Option<String>,
    pub n_ctx: u32,
    pub chunks: usize,
    pub threads: Option<u32>,
    pub classes: Vec<DeviceClass>,
}

/// Progress as the build goes.
#[derive(Debug, Clone)]
pub enum Step {
    Quantizing {
        tier: String,
        index: usize,
        of: usize,
    },
    Reused {
        what: String,
    },
    Merged {
        tier: String,
        into: String,
    },
    Scoring {
        chunk: usize,
        of: usize,
    },
    Measuring {
        tier: String,
        index: usize,
        of: usize,
    },
    Fingerprinting {
        tier: String,
    },
    Wrote {
        path: PathBuf,
    },
}

/// `sha256:<hex>` of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, VariantsError> {
    outpost_store::hash_file(path)
        .map(|(digest, _)| digest.to_string())
        .map_err(|e| VariantsError::io(path, e))
}

/// Effective bits per weight and the type mix of a GGUF.
pub(crate) fn bits(header: &GgufHeader) -> (f64, Vec<TypeShare>) {
    let params = header.n_params().max(1) as f64;
    let bytes: u64 = header.tensors.iter().map(|t| t.n_bytes).sum();
    let mix = header
        .type_mix()
        .into_iter()
        .map(|(ggml_type, tensors, bytes)| TypeShare {
            ggml_type,
            tensors: tensors as u64,
            bytes,
        })
        .collect();
    (bytes as f64 * 8.0 / params, mix)
}

/// A step's record in `.work/`: valid only for the same key.
#[derive(Serialize, Deserialize)]
struct Record<T> {
    key: String,
    value: T,
}

fn load_record<T: DeserializeOwned>(path: &Path, key: &str) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    let r: Record<T> = serde_json::from_str(&text).ok()?;
    (r.key == key).then_some(r.value)
}

fn save_record<T: Serialize>(path: &Path, key: &str, value: &T) -> Result<(), VariantsError> {
    let json = serde_json::to_vec_pretty(&Record {
        key: key.to_string(),
        value,
    })
    .map_err(|e| VariantsError::io(path, std::io::Error::other(e)))?;
    crate::report::write_atomic(path, &json).map_err(|e| VariantsError::Other(e.to_string()))
}

#[derive(Serialize, Deserialize, Clone)]
struct QuantRecord {
    digest: String,
    size: u64,
    /// Tensor name → (ggml type, bytes), to tell what tiers share.
    tensors: Vec<(String, String, u64)>,
}

/// The whole build. `measure` runs a tier's speed test (in a separate
/// process, for its peak RSS).
pub fn build(
    o: &BuildOptions,
    measure: &dyn Fn(&Path) -> Result<Cost, VariantsError>,
    on: &mut dyn FnMut(Step),
) -> Result<VariantsFile, VariantsError> {
    let src_header = GgufHeader::read(&o.source)?;
    let text =
        std::fs::read_to_string(&o.eval_text).map_err(|e| VariantsError::io(&o.eval_text, e))?;
    let name = o.name.clone().unwrap_or_else(|| {
        o.source
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    });
    let work = o.out.join(".work");
    std::fs::create_dir_all(&work).map_err(|e| VariantsError::io(&work, e))?;
    let src_digest = sha256_file(&o.source)?;
    let text_digest = outpost_protocol::Digest::sha256(text.as_bytes()).to_string();
    let (src_bpw, _) = bits(&src_header);
    let src_type = src_header.file_type_name().unwrap_or("unknown").to_string();
    let already_quantized = !matches!(src_type.as_str(), "F32" | "F16" | "BF16");
    let opts = LoadOptions::default();
    let reference = Model::load(&o.source, &opts)?;
    let tokens = reference.tokenize(&text, true);
    let needed = o.chunks * o.n_ctx as usize;
    if o.chunks == 0 || tokens.len() < needed {
        return Err(VariantsError::TextTooShort {
            tokens: tokens.len(),
            needed,
            chunks: o.chunks,
            n_ctx: o.n_ctx,
        });
    }

    // 1. Quantize every tier (a tier with a record from an earlier run is
    //    reused; its file may be gone if it was merged away).
    let threads = o.threads.unwrap_or_else(outpost_engine::default_threads);
    let quantize = |tier: &str, path: &Path, rec_path: &Path, key: &str| {
        let tmp = path.with_file_name(format!(
            ".{}.partial",
            path.file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
        ));
        outpost_engine::quantize(&o.source, &tmp, tier, threads)?;
        std::fs::rename(&tmp, path).map_err(|e| VariantsError::io(path, e))?;
        let header = GgufHeader::read(path)?;
        let r = QuantRecord {
            digest: sha256_file(path)?,
            size: std::fs::metadata(path)
                .map_err(|e| VariantsError::io(path, e))?
                .len(),
            tensors: header
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.type_name.clone(), t.n_bytes))
                .collect(),
        };
        save_record(rec_path, key, &r)?;
        Ok::<QuantRecord, VariantsError>(r)
    };
    let mut files = Vec::new();
    for (i, tier) in o.tiers.iter().enumerate() {
        let file = format!("{name}-{tier}.gguf");
        let path = o.out.join(&file);
        let rec_path = work.join(format!("{tier}.quant.json"));
        let key = format!("{src_digest} {tier}");
        let rec = match load_record::<QuantRecord>(&rec_path, &key) {
            Some(r) => {
                on(Step::Reused {
                    what: format!("{tier} ({file})"),
                });
                r
            }
            None => {
                on(Step::Quantizing {
                    tier: tier.clone(),
                    index: i + 1,
                    of: o.tiers.len(),
                });
                quantize(tier, &path, &rec_path, &key)?
            }
        };
        files.push((tier.clone(), file, path, rec, rec_path, key));
    }

    // 2. Merge tiers within 3 % in size; the kept ones must be on disk.
    //    Size here leaves out tensors every tier stores alike (Gemma 3's
    //    170 MiB q8_0 embedding table), which would otherwise squeeze
    //    different tiers within 3 % of each other.
    let shared = |name: &str, ty: &str| {
        files
            .iter()
            .all(|f| f.3.tensors.iter().any(|(n, t, _)| n == name && t == ty))
    };
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| {
            f.3.tensors
                .iter()
                .filter(|(n, t, _)| !shared(n, t))
                .map(|(_, _, b)| b)
                .sum::<u64>()
                .max(1)
        })
        .collect();
    let (kept, merged_idx) = tiers::merge(&sizes);
    let merged: Vec<Merged> = merged_idx
        .iter()
        .map(|&(i, k, pct)| Merged {
            tier: files[i].0.clone(),
            into: files[k].0.clone(),
            size_diff_pct: pct,
        })
        .collect();
    for m in &merged {
        on(Step::Merged {
            tier: m.tier.clone(),
            into: m.into.clone(),
        });
    }
    for &(i, _, _) in &merged_idx {
        let _ = std::fs::remove_file(&files[i].2);
    }
    for (n, &k) in kept.iter().enumerate() {
        let f = &mut files[k];
        let on_disk = std::fs::metadata(&f.2).is_ok_and(|m| m.len() == f.3.size);
        if !on_disk {
            on(Step::Quantizing {
                tier: f.0.clone(),
                index: n + 1,
                of: kept.len(),
            });
            f.3 = quantize(&f.0, &f.2, &f.4, &f.5)?;
        }
    }
    let distinct: Vec<_> = kept
        .iter()
        .map(|&k| {
            let f = &files[k];
            (f.0.clone(), f.1.clone(), f.2.clone(), f.3.clone())
        })
        .collect();

    // 3. Quality, all models in lockstep.
    let q_key = format!(
        "{src_digest} {text_digest} ctx={} chunks={} tiers={}",
        o.n_ctx,
        o.chunks,
        distinct
            .iter()
            .map(|d| format!("{}:{}", d.0, d.3.digest))
            .collect::<Vec<_>>()
            .join(",")
    );
    let q_path = work.join("quality.json");
    let models: Vec<Model> = distinct
        .iter()
        .map(|d| Model::load(&d.2, &opts))
        .collect::<Result<_, _>>()?;
    let (ref_ppl, scored, qualities) =
        match load_record::<(f64, u64, Vec<Quality>)>(&q_path, &q_key) {
            Some(v) => {
                on(Step::Reused {
                    what: "quality scores".into(),
                });
                v
            }
            None => {
                let refs: Vec<&Model> = models.iter().collect();
                let (r, q) = quality::evaluate(
                    &reference,
                    &refs,
                    &tokens,
                    o.n_ctx,
                    o.chunks,
                    o.threads,
                    |chunk, of| on(Step::Scoring { chunk, of }),
                )?;
                let v = (r.ppl, r.scored_tokens, q);
                save_record(&q_path, &q_key, &v)?;
                v
            }
        };

    // 4. Cost (each in its own process) and fingerprints.
    let mut out_tiers = Vec::new();
    for (i, ((tier, file, path, rec), model)) in distinct.iter().zip(&models).enumerate() {
        let c_path = work.join(format!("{tier}.cost.json"));
        let c_key = format!("{} threads={:?}", rec.digest, o.threads);
        let cost = match load_record::<Cost>(&c_path, &c_key) {
            Some(c) => c,
            None => {
                on(Step::Measuring {
                    tier: tier.clone(),
                    index: i + 1,
                    of: distinct.len(),
                });
                let c = measure(path)?;
                save_record(&c_path, &c_key, &c)?;
                c
            }
        };
        on(Step::Fingerprinting { tier: tier.clone() });
        let fingerprints = fingerprint::fingerprints(model, o.threads)?;
        let header = GgufHeader::read(path)?;
        let (bpw, type_mix) = bits(&header);
        out_tiers.push(Tier {
            name: tier.clone(),
            file: file.clone(),
            digest: rec.digest.clone(),
            size: rec.size,
            bpw,
            type_mix,
            no_quality_gain: already_quantized && bpw >= src_bpw,
            quality: qualities[i].clone(),
            cost,
            fingerprints,
        });
    }

    // 5. Recommendations per device class.
    let headers: Vec<GgufHeader> = distinct
        .iter()
        .map(|d| GgufHeader::read(&d.2))
        .collect::<Result<_, _>>()?;
    let memory = |t: &Tier, n_ctx: u32, kv_q8: bool| {
        out_tiers
            .iter()
            .position(|x| x.name == t.name)
            .and_then(|i| crate::devices::memory_for(&headers[i], n_ctx, kv_q8).ok())
            .unwrap_or(u64::MAX)
    };
    let recommendations = crate::devices::recommend(&out_tiers, memory, &o.classes);

    let info = reference.info();
    let build = outpost_engine::build_info();
    let file = VariantsFile {
        format_version: FORMAT_VERSION,
        model: name,
        source: SourceInfo {
            file: o
                .source
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            digest: src_digest,
            size: src_header.file_size,
            quantization: src_type,
            bpw: src_bpw,
            already_quantized,
            n_params: src_header.n_params(),
            architecture: info.architecture.clone(),
            n_ctx_train: info.n_ctx_train,
            n_vocab: u32::try_from(info.n_vocab).unwrap_or(0),
        },
        eval: EvalInfo {
            text: o.eval_text.display().to_string(),
            text_digest,
            n_ctx: o.n_ctx,
            chunks: o.chunks as u32,
            scored_tokens: scored,
            reference_ppl: ref_ppl,
        },
        host: HostInfo {
            cpu: cpu_name(),
            threads: o.threads.unwrap_or_else(outpost_engine::default_threads),
            llama_cpp: format!(
                "llama-cpp-sys-2 {} (llama.cpp {})",
                build.llama_cpp_sys_version, build.llama_cpp_commit
            ),
        },
        tiers: out_tiers,
        merged,
        device_classes: o.classes.clone(),
        recommendations,
    };

    // 6. Outputs, each written whole.
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| VariantsError::io(&o.out, std::io::Error::other(e)))?;
    let write = |p: PathBuf, bytes: &[u8], on: &mut dyn FnMut(Step)| {
        crate::report::write_atomic(&p, bytes).map_err(|e| VariantsError::Other(e.to_string()))?;
        on(Step::Wrote { path: p });
        Ok::<(), VariantsError>(())
    };
    let svg = o.out.join(crate::report::CHART_FILE);
    crate::chart::write_svg(&file, &svg).map_err(|e| VariantsError::Other(e.to_string()))?;
    on(Step::Wrote { path: svg });
    write(
        o.out.join("report.md"),
        crate::report::markdown(&file).as_bytes(),
        on,
    )?;
    write(o.out.join("variants.json"), &json, on)?;
    Ok(file)
}

/// The CPU model name (Linux), for the report.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
