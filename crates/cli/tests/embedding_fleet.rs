//! An embedding model is a release like any other (`kind: embedding`), end
//! to end as real processes on the real all-MiniLM-L6-v2: `outpost
//! variants build` → `outpost fleet publish` of `embedding-variants.json`
//! → `outpost agent once` installs the default tier and its vector canary
//! passes → `outpost serve --store` answers `/v1/embeddings` → the agent
//! ships the spool and the fleet's cohort counts the embedding requests.
//! A release whose file disagrees with its canary vectors (the q4_0 file
//! under q8_0's vectors) fails the canary on the device and is reverted.

mod common;
#[path = "agent_support/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};

use common::minilm::{convert_into, scratch};
use common::server::{http, start_models};
use common::stderr;
use fixture::{agent, digest_of, free_port, run, text, Fleet};
use serde_json::{json, Value};

/// The name `variants build` gives the converted checkpoint.
const EMBED_MODEL: &str = "minilm";

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "failed: {}", text(o));
    text(o)
}

/// The digest the store's active pointer of the model names.
fn active(store: &Path) -> Option<String> {
    let bytes = std::fs::read(store.join("active").join(format!("{EMBED_MODEL}.json"))).ok()?;
    let v: Value = serde_json::from_slice(&bytes).expect("a pointer is never torn");
    v["active"].as_str().map(str::to_string)
}

fn n(c: &Value, field: &str) -> u64 {
    c[field].as_u64().unwrap_or(0)
}

/// The tiers q8_0 and q4_0 of the converted checkpoint.
fn build(dir: &Path) -> (PathBuf, Value) {
    let gguf = convert_into(dir);
    let out = dir.join("tiers");
    let o = common::outpost(&[
        "variants",
        "build",
        gguf.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--tiers",
        "q8_0,q4_0",
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "variants build: {}", stderr(&o));
    let v: Value = serde_json::from_slice(
        &std::fs::read(out.join("embedding-variants.json")).expect("embedding-variants.json"),
    )
    .expect("json");
    (out, v)
}

fn tier<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("tier {name}"))
}

/// A `release.json` folder of kind embedding running the tier `file_of`
/// (in `tiers`) under the canary vectors of `vectors_of`.
fn mismatched_release(
    root: &Path,
    version: &str,
    tiers: &Path,
    file_of: &Value,
    vectors_of: &Value,
) -> PathBuf {
    let dir = root.join(format!("release-{version}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = tiers.join(file_of["file"].as_str().expect("file"));
    std::fs::copy(file, dir.join("model.gguf")).expect("copy tier");
    let mut types: Vec<&str> = file_of["type_mix"]
        .as_array()
        .expect("type_mix")
        .iter()
        .filter_map(|m| m["ggml_type"].as_str())
        .collect();
    types.sort();
    types.dedup();
    let q = file_of["name"].as_str().expect("name");
    let meta = json!({
        "model": EMBED_MODEL, "kind": "embedding", "version": version, "min_app_version": "0.1.0",
        "variants": [{"file": "model.gguf", "quantization": q, "ggml_types": types,
            "memory_bytes": 200_000_000u64, "min_engine_version": "0.1.0",
            "quality": {"cosine_min": file_of["cosine_min"]},
            "embedding_fingerprints": vectors_of["fingerprints"]}],
        "classes": {"default": {"variant": q, "n_ctx": 512, "kv_cache_type": "f16"}}
    });
    std::fs::write(dir.join("release.json"), meta.to_string()).expect("release.json");
    dir
}

#[test]
fn an_embedding_release_installs_passes_its_vector_canary_serves_and_is_counted() {
    let root = fixture::temp("embedding-fleet");
    let dir = scratch("embedding-fleet");
    let (tiers, built) = build(&dir);
    assert_eq!(built["model"], EMBED_MODEL);
    let fps = tier(&built, "q8_0")["fingerprints"]
        .as_array()
        .expect("fingerprints");
    assert_eq!(fps.len(), 3, "each tier records its vectors: {fps:?}");
    assert_eq!(fps[0]["vector"].as_array().map(Vec::len), Some(384));

    let fleet = Fleet::start(&root.0.join("fleet"), free_port(), &[]);
    let p = fleet.admin(&[
        "publish",
        tiers.to_str().expect("utf-8"),
        "--version",
        "1.0.0",
    ]);
    assert_eq!(p["meta"]["kind"], "embedding", "{p}");
    // The default class runs the smallest tier within cosine 0.99: q8_0
    // (q4_0's worst sentence is ~0.95).
    assert_eq!(p["meta"]["classes"]["default"]["variant"], "q8_0", "{p}");
    fleet.admin(&[
        "release",
        &format!("{EMBED_MODEL}@1.0.0"),
        "--channel",
        "stable",
    ]);

    let store = root.0.join("device");
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(out.contains("installed 1.0.0"), "{out}");
    let q8 = tiers.join(tier(&built, "q8_0")["file"].as_str().expect("file"));
    assert_eq!(active(&store), Some(digest_of(&q8)));

    let server = start_models(&[], &["--store", store.to_str().expect("utf8")]);
    for i in 0..3 {
        let (status, body) = http(
            server.port,
            "POST",
            "/v1/embeddings",
            &json!({"model": EMBED_MODEL, "input": [format!("request {i}"), "a second input"]})
                .to_string(),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            v["data"][0]["embedding"].as_array().map(Vec::len),
            Some(384)
        );
    }
    // A refused input is the client's fault, not the model's: not counted.
    let (status, _) = http(
        server.port,
        "POST",
        "/v1/embeddings",
        &json!({"model": EMBED_MODEL, "input": "x ".repeat(600)}).to_string(),
        None,
    );
    assert_eq!(status, 400);
    drop(server);

    ok(&run(agent(&fleet, &store, &[], &[])));
    let c = fleet.cohort("1.0.0");
    assert_eq!(c["model"], EMBED_MODEL, "{c}");
    assert_eq!(
        (n(&c, "embeddings"), n(&c, "embedding_inputs")),
        (3, 6),
        "{c}"
    );
    assert!(n(&c, "embedding_tokens") >= 6, "{c}");
    assert_eq!((n(&c, "inferences"), n(&c, "errors")), (0, 0), "{c}");
    assert_eq!((n(&c, "canary_runs"), n(&c, "canary_fails")), (1, 0), "{c}");
    assert!(c["latency_ms_p50"].as_f64().is_some(), "{c}");
    let status = fleet.admin(&["status"]);
    let line = status["telemetry"]
        .as_array()
        .and_then(|t| t.iter().find(|r| r["model"] == EMBED_MODEL))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(line["embeddings"], 3, "{status}");

    // The q4_0 file under q8_0's vectors: its canary fails on the device.
    let bad = mismatched_release(
        &root.0,
        "1.1.0",
        &tiers,
        tier(&built, "q4_0"),
        tier(&built, "q8_0"),
    );
    fleet.publish(&bad);
    fleet.admin(&[
        "release",
        &format!("{EMBED_MODEL}@1.1.0"),
        "--channel",
        "stable",
    ]);
    let out = ok(&run(agent(&fleet, &store, &[], &[])));
    assert!(
        out.contains("1.1.0 failed its canary")
            && out.contains("worst cosine")
            && out.contains("reverted"),
        "{out}"
    );
    assert_eq!(active(&store), Some(digest_of(&q8)), "1.0.0 is back");
    let c = fleet.cohort("1.1.0");
    assert_eq!(
        (
            n(&c, "canary_runs"),
            n(&c, "canary_fails"),
            n(&c, "install_failures")
        ),
        (1, 1, 1),
        "{c}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
