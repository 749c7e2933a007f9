//! Helpers for the end-to-end tests of the `outpost` binary.
#![allow(dead_code)]

pub mod fleet;
pub mod minilm;
pub mod server;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The model the fleet helpers publish and release.
pub const MODEL: &str = "smollm2-135m";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The models folder; panics (never skips) when a model is missing.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("OUTPOST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"));
    for f in ["smollm2-135m.gguf", "gemma3-270m.gguf"] {
        assert!(
            dir.join(f).is_file(),
            "real model {} is missing: run scripts/fetch-models.sh (these tests never skip)",
            dir.join(f).display()
        );
    }
    dir
}

pub fn model_path(file: &str) -> PathBuf {
    models_dir().join(file)
}

/// `outpost ARGS` with the models folder set.
pub fn outpost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(args)
        .env("OUTPOST_MODELS_DIR", models_dir())
        .output()
        .expect("run outpost")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `outpost ARGS` started with piped stdin, stdout and stderr.
pub fn spawn_outpost(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(args)
        .env("OUTPOST_MODELS_DIR", models_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outpost")
}

/// Runs the Python client `script` (in crates/cli/tests), which needs the
/// pip package `package`, with `env`; it must succeed and print its
/// "checks". Returns its stdout.
pub fn run_python_client(script: &str, package: &str, env: &[(&str, &str)]) -> String {
    let o = Command::new("python3")
        .arg(format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR")))
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 (pip install {package}: scripts/test.sh does it): {e:?}")
        });
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "{package} client checks failed:\n{out}\n{err}"
    );
    eprintln!("{out}");
    assert!(out.contains("\"checks\""), "{out}");
    out
}

/// A variants build of SmolLM2 with tiers q8_0 and q4_0 (one eval chunk),
/// shared by the test binaries through the target folder: built once,
/// then reused while its variants.json parses and every tier file has the
/// size it names. Callers that modify files must copy them first.
pub fn smollm2_variants() -> (PathBuf, serde_json::Value) {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smollm2-q8_0-q4_0-variants");
    let cached = || -> Option<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("variants.json")).ok()?).ok()?;
        let tiers = v["tiers"].as_array()?;
        let complete = tiers.len() == 2
            && tiers.iter().all(|t| {
                let file = out.join(t["file"].as_str().unwrap_or("-"));
                std::fs::metadata(file).map(|m| m.len()).ok() == t["size"].as_u64()
            });
        complete.then_some(v)
    };
    if let Some(v) = cached() {
        return (out, v);
    }
    let o = outpost(&[
        "variants",
        "build",
        "smollm2-135m",
        "--tiers",
        "q8_0,q4_0",
        "--chunks",
        "1",
        "-t",
        "2",
        "--out",
        out.to_str().expect("utf-8 target folder"),
    ]);
    assert!(o.status.success(), "variants build: {}", stderr(&o));
    let v = cached().expect("a complete variants build");
    (out, v)
}
