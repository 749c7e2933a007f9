//! The embedding tests' shared set-up: a fresh scratch folder, the
//! fetched all-MiniLM-L6-v2 checkpoint, and its conversion to GGUF.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::{models_dir, outpost, stderr, stdout};

/// A fresh folder for one test (`NAME-PID` under the target's tmp dir).
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The checkpoint folder scripts/fetch-models.sh unpacks.
pub fn checkpoint() -> PathBuf {
    let dir = models_dir().join("all-minilm-l6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/fetch-models.sh (these tests never skip)",
        dir.display()
    );
    dir
}

/// Converts the checkpoint to `dir/minilm.gguf` (served as `minilm`).
pub fn convert_into(dir: &Path) -> PathBuf {
    let out = dir.join("minilm.gguf");
    let o = outpost(&[
        "convert",
        checkpoint().to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "convert: {}", stderr(&o));
    assert!(
        stdout(&o).contains("bert encoder, 101 tensors"),
        "{}",
        stdout(&o)
    );
    out
}
