//! Bad model files give an error naming the file and the problem, and never
//! crash or abort the process (these tests run in-process: an abort would
//! kill the test binary).

mod common;

use std::path::{Path, PathBuf};

use outpost_engine::{EngineError, LoadOptions, Model};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outpost-bad-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

fn load_err(path: &Path) -> EngineError {
    match Model::load(path, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e,
    }
}

fn assert_names(err: &EngineError, path: &Path, needles: &[&str]) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "no path in: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "{n:?} not in: {msg}");
    }
}

/// A minimal GGUF writer for crafting files.
enum V<'a> {
    Str(&'a str),
    U32(u32),
}

fn gguf(kvs: &[(&str, V)], tensors: &[(&str, &[u64], u32, usize)]) -> Vec<u8> {
    let mut b = Vec::new();
    let s = |b: &mut Vec<u8>, t: &str| {
        b.extend((t.len() as u64).to_le_bytes());
        b.extend(t.as_bytes());
    };
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        s(&mut b, k);
        match v {
            V::Str(x) => {
                b.extend(8u32.to_le_bytes());
                s(&mut b, x);
            }
            V::U32(x) => {
                b.extend(4u32.to_le_bytes());
                b.extend(x.to_le_bytes());
            }
        }
    }
    let mut offset = 0u64;
    for (name, dims, ty, n_bytes) in tensors {
        s(&mut b, name);
        b.extend((dims.len() as u32).to_le_bytes());
        for d in *dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(ty.to_le_bytes());
        b.extend(offset.to_le_bytes());
        offset += (*n_bytes as u64).div_ceil(32) * 32;
    }
    while b.len() % 32 != 0 {
        b.push(0);
    }
    b.resize(b.len() + offset as usize, 0);
    b
}

#[test]
fn missing_file() {
    let p = tmp("does-not-exist.gguf");
    let err = load_err(&p);
    assert!(matches!(err, EngineError::Open { .. }), "{err:?}");
    assert_names(&err, &p, &["fetch-models"]);
}

#[test]
fn a_directory() {
    let p = std::env::temp_dir();
    let err = load_err(&p);
    assert_names(&err, &p, &["directory"]);
}

#[test]
fn not_a_gguf() {
    let p = tmp("notes.gguf");
    std::fs::write(&p, "these are my notes, not a model").expect("write");
    let err = load_err(&p);
    assert!(matches!(err, EngineError::BadGguf { .. }), "{err:?}");
    assert_names(&err, &p, &["magic"]);
}

#[test]
fn empty_file() {
    let p = tmp("empty.gguf");
    std::fs::write(&p, b"").expect("write");
    assert_names(&load_err(&p), &p, &["truncated"]);
}

#[test]
fn real_model_truncated_in_the_header() {
    let real = std::fs::read(common::model_path("smollm2-135m.gguf")).expect("read");
    let p = tmp("smollm-header-cut.gguf");
    std::fs::write(&p, &real[..100_000]).expect("write");
    assert_names(&load_err(&p), &p, &["truncated"]);
}

#[test]
fn real_model_truncated_in_the_tensor_data() {
    let real = std::fs::read(common::model_path("smollm2-135m.gguf")).expect("read");
    let p = tmp("smollm-data-cut.gguf");
    std::fs::write(&p, &real[..real.len() / 2]).expect("write");
    let err = load_err(&p);
    assert_names(&err, &p, &["truncated", "tensor"]);
}

#[test]
fn unsupported_architecture() {
    let p = tmp("alien.gguf");
    let bytes = gguf(
        &[("general.architecture", V::Str("alienformer"))],
        &[("token_embd.weight", &[8, 4], 0, 8 * 4 * 4)],
    );
    std::fs::write(&p, bytes).expect("write");
    let err = load_err(&p);
    assert!(matches!(err, EngineError::Load { .. }), "{err:?}");
    assert_names(&err, &p, &["alienformer"]);
}

#[test]
fn known_architecture_with_missing_hyperparameters() {
    let p = tmp("hollow-llama.gguf");
    let bytes = gguf(
        &[
            ("general.architecture", V::Str("llama")),
            ("general.alignment", V::U32(32)),
        ],
        &[("token_embd.weight", &[8, 4], 0, 8 * 4 * 4)],
    );
    std::fs::write(&p, bytes).expect("write");
    let err = load_err(&p);
    assert!(matches!(err, EngineError::Load { .. }), "{err:?}");
    assert_names(&err, &p, &[]);
}

#[test]
fn no_architecture_key() {
    let p = tmp("anonymous.gguf");
    std::fs::write(&p, gguf(&[], &[("t", &[4], 0, 16)])).expect("write");
    assert_names(&load_err(&p), &p, &["general.architecture"]);
}

#[test]
fn unknown_tensor_type() {
    let p = tmp("weird-type.gguf");
    let bytes = gguf(
        &[("general.architecture", V::Str("llama"))],
        &[("token_embd.weight", &[32], 200, 64)],
    );
    std::fs::write(&p, bytes).expect("write");
    assert_names(&load_err(&p), &p, &["token_embd.weight", "200"]);
}

#[test]
fn row_not_a_multiple_of_the_block_size() {
    let p = tmp("odd-row.gguf");
    // q4_0 (type 2) packs 32 values per block; 33 cannot be stored.
    let bytes = gguf(
        &[("general.architecture", V::Str("llama"))],
        &[("token_embd.weight", &[33], 2, 64)],
    );
    std::fs::write(&p, bytes).expect("write");
    assert_names(&load_err(&p), &p, &["33", "block size"]);
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    let p = tmp("huge-count.gguf");
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend(u64::MAX.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    std::fs::write(&p, b).expect("write");
    assert_names(&load_err(&p), &p, &["corrupt"]);
}
