//! Helpers for the end-to-end tests of the `outpost` binary.
#![allow(dead_code)]

pub mod server;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

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
