//! Resolving MODEL arguments: a path, or the short name of a fetched model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Short names of the models scripts/fetch-models.sh fetches, and their files.
pub const KNOWN: &[(&str, &str)] = &[
    ("smollm2-135m", "smollm2-135m.gguf"),
    ("gemma3-270m", "gemma3-270m.gguf"),
    ("minilm", "minilm-f32.gguf"),
];

/// Short names whose file is made by `outpost convert` from a fetched
/// checkpoint folder, not fetched as a GGUF.
const CONVERTED: &[(&str, &str)] = &[("minilm", "all-minilm-l6-v2")];

/// Where fetched models live: `$OUTPOST_MODELS_DIR`, else the first `models/`
/// folder found from the current directory upwards.
pub fn models_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("OUTPOST_MODELS_DIR") {
        return Some(PathBuf::from(d));
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|a| a.join("models"))
        .find(|p| p.is_dir())
}

/// Turns a MODEL argument into a file path.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.exists() || spec.ends_with(".gguf") || spec.contains('/') {
        return Ok(as_path.to_path_buf());
    }
    let Some((_, file)) = KNOWN.iter().find(|(name, _)| *name == spec) else {
        let names: Vec<_> = KNOWN.iter().map(|k| k.0).collect();
        bail!(
            "unknown model {spec:?}: give a path to a .gguf file or a fetched model's name ({})",
            names.join(", ")
        );
    };
    match models_dir() {
        Some(dir) if dir.join(file).is_file() => Ok(dir.join(file)),
        Some(dir) => {
            if let Some((_, src)) = CONVERTED.iter().find(|c| c.0 == spec) {
                bail!(
                    "model {spec} is not converted yet ({} is missing): run scripts/fetch-models.sh, then outpost convert {} --out {}",
                    dir.join(file).display(),
                    dir.join(src).display(),
                    dir.join(file).display()
                )
            }
            bail!(
                "model {spec} is not fetched yet ({} is missing): run scripts/fetch-models.sh",
                dir.join(file).display()
            )
        }
        None => bail!(
            "model {spec} is not fetched yet (no models/ folder here or above, and OUTPOST_MODELS_DIR is unset): run scripts/fetch-models.sh"
        ),
    }
}
