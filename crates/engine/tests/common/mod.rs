//! Shared helpers for the engine's real-model tests.
#![allow(dead_code)]

use std::path::PathBuf;

use outpost_engine::{LoadOptions, Model};

/// The folder scripts/fetch-models.sh fills.
pub fn models_dir() -> PathBuf {
    std::env::var_os("OUTPOST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// Path of a fetched model; panics (never skips) when it is missing.
pub fn model_path(file: &str) -> PathBuf {
    let p = models_dir().join(file);
    assert!(
        p.is_file(),
        "real model {} is missing: run scripts/fetch-models.sh (these tests need the real models and never skip)",
        p.display()
    );
    p
}

pub fn smollm() -> Model {
    Model::load(&model_path("smollm2-135m.gguf"), &LoadOptions::default()).expect("load SmolLM2")
}

pub fn gemma() -> Model {
    Model::load(&model_path("gemma3-270m.gguf"), &LoadOptions::default()).expect("load Gemma 3")
}

/// Tests run in parallel on a 2-core machine: one thread each.
pub const THREADS: Option<u32> = Some(1);
