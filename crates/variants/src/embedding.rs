//! `outpost variants build` on an embedding model: the first real "one
//! checkpoint → N tiers" (the LLM sources are already 4-bit). Each tier is
//! quantized by llama.cpp from the full-precision GGUF that `outpost
//! convert` writes, then scored by the cosine of its vectors to the
//! source's on the same sentences of the evaluation text (mean, 1st
//! percentile, min), and timed (sentences per second, batches of 32).
//! Output: the tier files, `embedding-variants.json` and `report.md`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use outpost_engine::gguf::GgufHeader;
use outpost_engine::{cosine, EmbedConfig, Embedder, LoadOptions, Model};
use outpost_protocol::variants::{
    EmbeddingEval, EmbeddingFingerprint, EmbeddingTier, EmbeddingVariantsFile, HostInfo,
    SourceInfo, FORMAT_VERSION,
};

use crate::pipeline::{bits, cpu_name, sha256_file, BuildOptions, Step};
use crate::VariantsError;

/// The default tiers for an embedding model, most bits first.
pub const DEFAULT_TIERS: &[&str] = &["f16", "q8_0", "q5_0", "q4_0"];

/// Sentences scored per tier.
pub const SENTENCES: usize = 200;

/// Sentences per tier whose vectors become its fingerprints (the device's
/// install check), spread over the scored ones.
pub const FINGERPRINTS: usize = 3;

/// The tier's fingerprints: its own vectors for [`FINGERPRINTS`] of the
/// sentences, evenly spread.
fn fingerprints(texts: &[String], vectors: &[Vec<f32>]) -> Vec<EmbeddingFingerprint> {
    (0..FINGERPRINTS)
        .map(|i| i * texts.len() / FINGERPRINTS)
        .map(|i| EmbeddingFingerprint {
            text: texts[i].clone(),
            vector: vectors[i].clone(),
        })
        .collect()
}

/// Sentences of five words or more, in order, at most `n`.
pub fn sentences(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut start = 0;
        let b = line.as_bytes();
        for i in 0..b.len() {
            let end = matches!(b[i], b'.' | b'!' | b'?') && b.get(i + 1).is_none_or(|c| *c == b' ');
            if end {
                let s = line[start..=i].trim();
                if s.split_whitespace().count() >= 5 {
                    out.push(s.to_string());
                    if out.len() == n {
                        return out;
                    }
                }
                start = i + 1;
            }
        }
    }
    out
}

/// One model's pass over the sentences.
struct Run {
    vectors: Vec<Vec<f32>>,
    per_s: f64,
    load_ms: f64,
    tokens: u64,
    info: outpost_engine::ModelInfo,
}

/// Loads `path`, embeds `texts` in batches of 32, and times both.
fn embed_all(path: &Path, texts: &[String], threads: u32) -> Result<Run, VariantsError> {
    let t = Instant::now();
    let model = Arc::new(Model::load(path, &LoadOptions::default())?);
    let info = model.info().clone();
    let embedder = Embedder::start(
        model,
        EmbedConfig {
            threads,
            ..EmbedConfig::default()
        },
    )?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let tokens: Vec<Vec<i32>> = texts
        .iter()
        .map(|s| embedder.tokenize(s, true))
        .collect::<Result<_, _>>()?;
    let n_tokens = tokens.iter().map(|t| t.len() as u64).sum();
    let t = Instant::now();
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in tokens.chunks(32) {
        vectors.extend(embedder.embed(chunk.to_vec())?);
    }
    Ok(Run {
        vectors,
        per_s: texts.len() as f64 / t.elapsed().as_secs_f64(),
        load_ms,
        tokens: n_tokens,
        info,
    })
}

/// Builds and scores the tiers of the embedding model `o.source`.
pub fn build(
    o: &BuildOptions,
    on: &mut dyn FnMut(Step),
) -> Result<EmbeddingVariantsFile, VariantsError> {
    let header = GgufHeader::read(&o.source)?;
    let text =
        std::fs::read_to_string(&o.eval_text).map_err(|e| VariantsError::io(&o.eval_text, e))?;
    let texts = sentences(&text, SENTENCES);
    if texts.len() < 20 {
        return Err(VariantsError::Other(format!(
            "{}: only {} sentences of five words or more; an embedding model is scored on up to {SENTENCES}: give a longer --eval text",
            o.eval_text.display(),
            texts.len()
        )));
    }
    let name = o.name.clone().unwrap_or_else(|| {
        o.source
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    });
    let threads = o.threads.unwrap_or_else(outpost_engine::default_threads);
    let src_type = header.file_type_name().unwrap_or("unknown").to_string();
    let (src_bpw, _) = bits(&header);
    on(Step::Scoring {
        chunk: 0,
        of: o.tiers.len() + 1,
    });
    // The source's vectors are the reference; its load gives the model facts.
    let source = embed_all(&o.source, &texts, threads)?;
    let info = &source.info;
    let mut tiers = Vec::new();
    for (i, tier) in o.tiers.iter().enumerate() {
        on(Step::Quantizing {
            tier: tier.clone(),
            index: i + 1,
            of: o.tiers.len(),
        });
        let file = format!("{name}-{tier}.gguf");
        let path = o.out.join(&file);
        let tmp = o.out.join(format!(".{file}.partial"));
        outpost_engine::quantize(&o.source, &tmp, tier, threads)?;
        std::fs::rename(&tmp, &path).map_err(|e| VariantsError::io(&path, e))?;
        on(Step::Scoring {
            chunk: i + 1,
            of: o.tiers.len() + 1,
        });
        let run = embed_all(&path, &texts, threads)?;
        let mut cos: Vec<f64> = run
            .vectors
            .iter()
            .zip(&source.vectors)
            .map(|(a, b)| cosine(a, b))
            .collect();
        cos.sort_by(f64::total_cmp);
        let tier_header = GgufHeader::read(&path)?;
        let (bpw, type_mix) = bits(&tier_header);
        tiers.push(EmbeddingTier {
            name: tier.clone(),
            file,
            digest: sha256_file(&path)?,
            size: tier_header.file_size,
            bpw,
            type_mix,
            cosine_mean: cos.iter().sum::<f64>() / cos.len() as f64,
            cosine_p01: cos[cos.len() / 100],
            cosine_min: cos[0],
            embeddings_per_s: run.per_s,
            load_ms: run.load_ms,
            fingerprints: fingerprints(&texts, &run.vectors),
        });
    }
    let build = outpost_engine::build_info();
    let file = EmbeddingVariantsFile {
        format_version: FORMAT_VERSION,
        kind: "embedding".into(),
        model: name,
        source: SourceInfo {
            file: o
                .source
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            digest: sha256_file(&o.source)?,
            size: header.file_size,
            quantization: src_type,
            bpw: src_bpw,
            already_quantized: false,
            n_params: header.n_params(),
            architecture: info.architecture.clone(),
            n_ctx_train: info.n_ctx_train,
            n_vocab: u32::try_from(info.n_vocab).unwrap_or(0),
        },
        eval: EmbeddingEval {
            text: o.eval_text.display().to_string(),
            text_digest: outpost_protocol::Digest::sha256(text.as_bytes()).to_string(),
            sentences: texts.len() as u32,
            tokens: source.tokens,
            source_embeddings_per_s: source.per_s,
        },
        host: HostInfo {
            cpu: cpu_name(),
            threads,
            llama_cpp: format!(
                "llama-cpp-sys-2 {} (llama.cpp {})",
                build.llama_cpp_sys_version, build.llama_cpp_commit
            ),
        },
        tiers,
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| VariantsError::Other(e.to_string()))?;
    let out = o.out.join("embedding-variants.json");
    crate::report::write_atomic(&out, &json).map_err(|e| VariantsError::Other(e.to_string()))?;
    on(Step::Wrote { path: out });
    let report = o.out.join("report.md");
    crate::report::write_atomic(&report, markdown(&file).as_bytes())
        .map_err(|e| VariantsError::Other(e.to_string()))?;
    on(Step::Wrote { path: report });
    Ok(file)
}

/// `report.md` for an embedding build.
pub fn markdown(f: &EmbeddingVariantsFile) -> String {
    let mut s = format!(
        "# {} embedding tiers\n\nSource {} ({}, {:.1} MiB), {} sentences ({} tokens) of {}, {} threads on {}.\nSource speed {:.1} sentences/s.\n\n",
        f.model,
        f.source.file,
        f.source.quantization,
        f.source.size as f64 / 1048576.0,
        f.eval.sentences,
        f.eval.tokens,
        f.eval.text,
        f.host.threads,
        f.host.cpu,
        f.eval.source_embeddings_per_s
    );
    s.push_str("| tier | MiB | bpw | cosine mean | p01 | min | sentences/s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for t in &f.tiers {
        s.push_str(&format!(
            "| {} | {:.1} | {:.2} | {:.6} | {:.6} | {:.6} | {:.1} |\n",
            t.name,
            t.size as f64 / 1048576.0,
            t.bpw,
            t.cosine_mean,
            t.cosine_p01,
            t.cosine_min,
            t.embeddings_per_s
        ));
    }
    s
}
