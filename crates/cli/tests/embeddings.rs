//! Embeddings end to end: `outpost convert` on the real all-MiniLM-L6-v2
//! checkpoint, then the converted GGUF through llama.cpp compared with an
//! independent NumPy forward pass (crates/cli/tests/embed_reference.py,
//! Hugging Face's `tokenizers` for the tokens) on 200 sentences of the Lee
//! news corpus; the same vectors through `outpost serve` and the official
//! `openai` and `ollama` clients (embed_client.py), concurrent clients
//! batched into shared encoder passes; and the converter's refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::minilm::{checkpoint, convert_into, scratch};
use common::server::{metric, start_models};
use common::{models_dir, outpost, run_python_client, stderr, stdout};

/// 200 sentences of the Lee corpus (real news prose the tests did not
/// write), split as `outpost variants build` splits its evaluation text.
fn sentences(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(models_dir().join("eval/lee-background.txt"))
        .expect("models/eval/lee-background.txt: run scripts/fetch-models.sh");
    let out = outpost_variants::embedding::sentences(&text, 200);
    assert_eq!(out.len(), 200, "only {} sentences", out.len());
    let path = dir.join("sentences.txt");
    std::fs::write(&path, out.join("\n") + "\n").expect("write sentences");
    path
}

fn reference(dir: &Path, sentences: &Path) -> PathBuf {
    let out = dir.join("reference.jsonl");
    let o = Command::new("python3")
        .arg(format!(
            "{}/tests/embed_reference.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([
            checkpoint().as_os_str(),
            sentences.as_os_str(),
            out.as_os_str(),
        ])
        .output()
        .expect("python3 (numpy, safetensors, tokenizers: scripts/test.sh installs them)");
    assert!(o.status.success(), "reference: {}", stderr(&o));
    out
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("read jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn vector(v: &serde_json::Value) -> Vec<f32> {
    v["embedding"]
        .as_array()
        .expect("embedding")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn converted_minilm_matches_an_independent_numpy_reference_on_200_sentences() {
    let dir = scratch("emb-reference");
    let gguf = convert_into(&dir);
    let info = outpost(&["info", gguf.to_str().expect("utf-8")]);
    let info = stdout(&info);
    assert!(info.contains("architecture      bert"), "{info}");
    assert!(
        info.contains("kind              embedding (mean pooling, L2-normalised"),
        "{info}"
    );
    let sents = sentences(&dir);
    let refs = jsonl(&reference(&dir, &sents));
    let o = outpost(&[
        "embed",
        gguf.to_str().expect("utf-8"),
        "--file",
        sents.to_str().expect("utf-8"),
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "embed: {}", stderr(&o));
    let ours: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(ours.len(), 200);
    let mut worst = 1.0f64;
    let mut sum = 0.0;
    for (i, (r, e)) in refs.iter().zip(&ours).enumerate() {
        assert_eq!(
            r["tokens"].as_array().map(Vec::len),
            e["tokens"].as_u64().map(|n| n as usize),
            "sentence {i}: llama.cpp's WordPiece and Hugging Face's tokenizer disagree on the length"
        );
        let c = cosine(&vector(r), &vector(e));
        worst = worst.min(c);
        sum += c;
    }
    eprintln!(
        "f32 GGUF vs NumPy reference, 200 sentences: min cosine {worst:.6}, mean {:.6}",
        sum / 200.0
    );
    assert!(worst >= 0.999, "min cosine {worst}");
}

#[test]
fn embeddings_through_the_official_clients_and_batched_across_clients() {
    let dir = scratch("emb-clients");
    let gguf = convert_into(&dir);
    let sents = sentences(&dir);
    let refs = reference(&dir, &sents);
    let server = start_models(&[gguf.to_str().expect("utf-8"), "smollm2-135m"], &[]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = run_python_client(
        "embed_client.py",
        "openai ollama numpy",
        &[
            ("OUTPOST_BASE_URL", &base),
            ("OUTPOST_SENTENCES", sents.to_str().expect("utf-8")),
            ("OUTPOST_REFERENCE", refs.to_str().expect("utf-8")),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap_or(""))
        .expect("the script's summary line");
    assert!(v["checks"].as_u64() >= Some(60), "{out}");
    let requests = metric(
        server.port,
        "outpost_embedding_requests_total{model=\"minilm\"}",
    )
    .expect("requests metric");
    let passes = metric(
        server.port,
        "outpost_embedding_passes_total{model=\"minilm\"}",
    )
    .expect("passes metric");
    let shared = metric(
        server.port,
        "outpost_embedding_shared_passes_total{model=\"minilm\"}",
    )
    .expect("shared metric");
    eprintln!("embedding requests {requests}, encoder passes {passes}, passes shared by several requests {shared}");
    assert!(
        shared >= 1.0,
        "16 concurrent clients never shared an encoder pass"
    );
}

#[test]
fn convert_refuses_bad_checkpoints_by_name() {
    let dir = scratch("emb-refusals");
    let out = dir.join("x.gguf");
    let out_s = out.to_str().expect("utf-8");
    // No folder.
    let o = outpost(&[
        "convert",
        dir.join("absent").to_str().expect("utf-8"),
        "--out",
        out_s,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
    // An architecture without a table: the error lists the supported ones.
    let fake = dir.join("gpt2");
    std::fs::create_dir_all(&fake).expect("dir");
    std::fs::write(fake.join("config.json"), r#"{"model_type": "gpt2"}"#).expect("write");
    let o = outpost(&["convert", fake.to_str().expect("utf-8"), "--out", out_s]);
    assert!(
        stderr(&o).contains("`gpt2` is not supported; supported: bert"),
        "{}",
        stderr(&o)
    );
    // A truncated weights file names the file.
    let cut = dir.join("cut");
    std::fs::create_dir_all(cut.join("1_Pooling")).expect("dir");
    for f in [
        "config.json",
        "tokenizer.json",
        "1_Pooling/config.json",
        "modules.json",
    ] {
        std::fs::copy(checkpoint().join(f), cut.join(f)).expect("copy");
    }
    let bytes = std::fs::read(checkpoint().join("model.safetensors")).expect("read");
    std::fs::write(cut.join("model.safetensors"), &bytes[..bytes.len() / 2]).expect("write");
    let o = outpost(&["convert", cut.to_str().expect("utf-8"), "--out", out_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("model.safetensors"), "{}", stderr(&o));
    assert!(!out.exists(), "a failed conversion leaves no output");
    assert!(!dir.join("x.gguf.partial").exists(), "nor a partial file");
    // A bad output type.
    let o = outpost(&[
        "convert",
        checkpoint().to_str().expect("utf-8"),
        "--out",
        out_s,
        "--type",
        "q4_0",
    ]);
    assert!(
        stderr(&o).contains("`q4_0` is not supported; use f32 or f16"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn variants_of_the_f32_checkpoint_are_scored_by_cosine() {
    let dir = scratch("emb-variants");
    let gguf = convert_into(&dir);
    let out = dir.join("tiers");
    let o = outpost(&[
        "variants",
        "build",
        gguf.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "variants build: {}", stderr(&o));
    eprintln!("{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("embedding-variants.json")).expect("embedding-variants.json"),
    )
    .expect("json");
    assert_eq!(v["kind"], "embedding");
    assert_eq!(v["eval"]["sentences"], 200);
    let tiers = v["tiers"].as_array().expect("tiers");
    let names: Vec<&str> = tiers.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["f16", "q8_0", "q5_0", "q4_0"]);
    let min = |name: &str| {
        tiers
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["cosine_min"].as_f64())
            .expect("cosine_min")
    };
    assert!(min("f16") >= 0.999, "f16 min cosine {}", min("f16"));
    assert!(min("q8_0") >= 0.995, "q8_0 min cosine {}", min("q8_0"));
    // Fewer bits, further from the source; smaller files.
    let means: Vec<f64> = tiers
        .iter()
        .filter_map(|t| t["cosine_mean"].as_f64())
        .collect();
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");
    let sizes: Vec<u64> = tiers.iter().filter_map(|t| t["size"].as_u64()).collect();
    assert!(sizes.windows(2).all(|w| w[0] > w[1]), "{sizes:?}");
    for t in tiers {
        let file = out.join(t["file"].as_str().expect("file"));
        assert_eq!(
            std::fs::metadata(&file).map(|m| m.len()).ok(),
            t["size"].as_u64(),
            "{}",
            file.display()
        );
    }
    assert!(std::fs::read_to_string(out.join("report.md"))
        .expect("report")
        .contains("| q8_0 |"));
}
