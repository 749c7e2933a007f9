//! What the agent tests share: real SmolLM2 tiers (one `outpost variants
//! build`, cached under the target folder), release folders made from
//! them, a real `outpost fleet serve` process, and `outpost agent` runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{json, Value};

pub use super::common::MODEL;

/// A temp folder removed when dropped.
pub struct Dir(pub PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp(name: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("outpost-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("dir");
    Dir(p)
}

/// The shared variants build of SmolLM2 (q8_0 and q4_0), read once.
pub fn variants() -> &'static (PathBuf, Value) {
    static V: OnceLock<(PathBuf, Value)> = OnceLock::new();
    V.get_or_init(super::common::smollm2_variants)
}

/// The variants.json entry of a tier.
pub fn tier(name: &str) -> (PathBuf, Value) {
    let (dir, v) = variants();
    let t = v["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("tier {name} in the build"))
        .clone();
    (dir.join(t["file"].as_str().expect("file")), t)
}

/// A release folder for `version` running `file` with `tier`'s
/// fingerprints as canaries (a perturbed file keeps its tier's).
pub fn release(root: &Path, version: &str, file: &Path, tier: &Value) -> PathBuf {
    let dir = root.join(format!("release-{version}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let name = "model.gguf";
    std::fs::copy(file, dir.join(name)).expect("copy tier");
    let mut types: Vec<String> = tier["type_mix"]
        .as_array()
        .expect("type_mix")
        .iter()
        .map(|m| m["ggml_type"].as_str().expect("type").to_string())
        .collect();
    types.sort();
    types.dedup();
    let q = tier["name"].as_str().expect("name");
    let meta = json!({
        "model": MODEL, "version": version, "min_app_version": "0.1.0",
        "variants": [{"file": name, "quantization": q, "ggml_types": types,
            "memory_bytes": 300_000_000u64, "min_engine_version": "0.1.0",
            "quality": {"kld_mean": 0.01}, "fingerprints": tier["fingerprints"]}],
        "classes": {"default": {"variant": q, "n_ctx": 2048, "kv_cache_type": "f16"}}
    });
    std::fs::write(dir.join("release.json"), meta.to_string()).expect("release.json");
    dir
}

/// `file` with 4 MiB of noise over its middle: still loads, answers garbage.
pub fn perturbed(root: &Path, file: &Path) -> PathBuf {
    let mut bytes = std::fs::read(file).expect("tier");
    let mid = bytes.len() / 2;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut bytes[mid..mid + (4 << 20)] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let out = root.join("perturbed.gguf");
    std::fs::write(&out, bytes).expect("write");
    out
}

// Not every test binary that includes this module uses both.
#[allow(unused_imports)]
pub use super::common::fleet::{free_port, Fleet};

/// `outpost agent SUBCOMMAND` for a store against a fleet, with extra args
/// and environment.
pub fn agent(fleet: &Fleet, store: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
    agent_at(&fleet.url, &fleet.data, store, extra, env)
}

/// [`agent`] against the fleet whose data folder is `data`, at `url`.
pub fn agent_at(
    url: &str,
    data: &Path,
    store: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_outpost"));
    c.args(["agent", "once", "--fleet", url, "--store"])
        .arg(store)
        .arg("--app-key-file")
        .arg(data.join("app.key"))
        .arg("--pin")
        .arg(data.join("signing.pub.json"))
        .args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

pub fn run(mut c: Command) -> Output {
    c.output().expect("run outpost agent")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The store's active digest of the model, and that the blob's bytes hash
/// to it (the invariant every crash must keep).
pub fn active(store: &Path) -> Option<String> {
    let p = store.join("active").join(format!("{MODEL}.json"));
    let bytes = std::fs::read(&p).ok()?;
    let v: Value = serde_json::from_slice(&bytes).expect("a pointer is never torn");
    let d = v["active"].as_str().expect("active").to_string();
    let blob = store.join("blobs").join(d.replace(':', "-"));
    let (actual, _) = outpost_store::hash_file(&blob).expect("the active blob exists");
    assert_eq!(
        actual.to_string(),
        d,
        "the active blob's bytes match its digest"
    );
    Some(d)
}

pub fn digest_of(file: &Path) -> String {
    outpost_store::hash_file(file).expect("hash").0.to_string()
}
