//! Publishing from `embedding-variants.json`: an embedding model maps onto
//! a release of `kind: embedding` (the smallest tier within cosine 0.99 as
//! the default class, each tier's vectors as its canaries), its manifest
//! carries vector canaries and no log-prob ones, and a file missing its
//! vectors or another folder's listing are refused by name.

mod common;

use common::*;
use outpost_fleet::meta::{
    from_embedding_variants, load_dir, Minimums, EMBEDDING_BUFFER_BYTES, EMBEDDING_VARIANTS_FILE,
    VARIANTS_FILE,
};
use outpost_protocol::manifest::{KvCacheType, ModelKind};
use outpost_protocol::variants::*;
use outpost_protocol::Digest;

fn tier(name: &str, data: &[u8], cosine_min: f64) -> EmbeddingTier {
    EmbeddingTier {
        name: name.into(),
        file: format!("minilm.{name}.gguf"),
        digest: Digest::sha256(data).to_string(),
        size: data.len() as u64,
        bpw: 8.5,
        type_mix: vec![
            TypeShare {
                ggml_type: name.into(),
                tensors: 36,
                bytes: 1000,
            },
            TypeShare {
                ggml_type: "f32".into(),
                tensors: 65,
                bytes: 100,
            },
        ],
        cosine_mean: (cosine_min + 1.0) / 2.0,
        cosine_p01: cosine_min,
        cosine_min,
        embeddings_per_s: 100.0,
        load_ms: 5.0,
        fingerprints: vec![EmbeddingFingerprint {
            text: format!("a sentence for {name}"),
            vector: vec![0.6, 0.8, 0.0],
        }],
    }
}

fn file(tiers: Vec<EmbeddingTier>) -> EmbeddingVariantsFile {
    EmbeddingVariantsFile {
        format_version: FORMAT_VERSION,
        kind: "embedding".into(),
        model: "minilm".into(),
        source: SourceInfo {
            file: "minilm.gguf".into(),
            digest: Digest::sha256(b"src").to_string(),
            size: 90_000_000,
            quantization: "F32".into(),
            bpw: 32.0,
            already_quantized: false,
            n_params: 22_000_000,
            architecture: "bert".into(),
            n_ctx_train: 512,
            n_vocab: 30522,
        },
        eval: EmbeddingEval {
            text: "lee".into(),
            text_digest: Digest::sha256(b"t").to_string(),
            sentences: 200,
            tokens: 5000,
            source_embeddings_per_s: 100.0,
        },
        host: HostInfo {
            cpu: "test".into(),
            threads: 2,
            llama_cpp: "b0000".into(),
        },
        tiers,
    }
}

fn mins(version: &str) -> Minimums {
    Minimums {
        version: Some(version.into()),
        ..Minimums::default()
    }
}

#[test]
fn tiers_map_onto_an_embedding_release_with_vector_canaries() {
    let (f16, q8, q4) = (gguf("f16", 4000), gguf("q8", 3000), gguf("q4", 2000));
    let f = file(vec![
        tier("f16", &f16, 1.0),
        tier("q8_0", &q8, 0.9991),
        tier("q4_0", &q4, 0.95),
    ]);
    let m = from_embedding_variants(&f, &mins("1.0.0")).expect("maps");
    assert_eq!(m.kind, ModelKind::Embedding);
    let (name, class) = m.class_config("any-class").expect("default");
    // q4_0 is smaller but its worst sentence is below 0.99.
    assert_eq!(
        (
            name,
            class.variant.as_str(),
            class.n_ctx,
            class.kv_cache_type
        ),
        ("default", "q8_0", 512, KvCacheType::F16)
    );
    let v = m.variant("q8_0").expect("q8_0");
    assert_eq!(v.quality["cosine_min"], 0.9991);
    assert!(v.fingerprints.is_empty());
    assert_eq!(v.embedding_fingerprints, f.tiers[1].fingerprints);
    assert_eq!(v.memory_bytes, 3000 + EMBEDDING_BUFFER_BYTES);
    let man = m
        .manifest_for(
            "any-class",
            1,
            "k1",
            outpost_protocol::Timestamp::from_unix_seconds(9),
        )
        .expect("manifest");
    man.validate().expect("valid manifest");
    assert_eq!(man.kind, ModelKind::Embedding);
    assert!(man.canaries.is_empty());
    assert_eq!(man.embedding_canaries, f.tiers[1].fingerprints);
    // The manifest says its kind on the wire.
    let json = serde_json::to_value(&man).expect("json");
    assert_eq!(json["kind"], "embedding");

    // No tier within 0.99: the one with the best worst sentence.
    let f2 = file(vec![tier("q5_0", &q8, 0.98), tier("q4_0", &q4, 0.95)]);
    let m = from_embedding_variants(&f2, &mins("1.0.0")).expect("maps");
    assert_eq!(m.class_config("x").expect("default").1.variant, "q5_0");

    let mut old = f.clone();
    old.tiers[0].fingerprints.clear();
    let e = from_embedding_variants(&old, &mins("1.0.0"))
        .expect_err("no vectors")
        .to_string();
    assert!(
        e.contains("tiers[0].fingerprints") && e.contains("rebuild"),
        "{e}"
    );
    let e = from_embedding_variants(&f, &Minimums::default())
        .expect_err("no version")
        .to_string();
    assert!(e.contains("--version"), "{e}");
}

#[test]
fn a_folder_is_read_by_its_listing_and_two_listings_are_refused() {
    let dir = TempDir::new("embedding-dir");
    let q8 = gguf("q8", 3000);
    std::fs::write(dir.0.join("minilm.q8_0.gguf"), &q8).expect("write");
    let f = file(vec![tier("q8_0", &q8, 0.999)]);
    std::fs::write(
        dir.0.join(EMBEDDING_VARIANTS_FILE),
        serde_json::to_vec(&f).expect("json"),
    )
    .expect("write");
    let r = load_dir(&dir.0, &mins("1.0.0")).expect("loads");
    assert_eq!(r.meta.kind, ModelKind::Embedding);
    assert_eq!(
        r.files,
        [(Digest::sha256(&q8), dir.0.join("minilm.q8_0.gguf"))]
    );

    std::fs::write(dir.0.join(VARIANTS_FILE), b"{}").expect("write");
    let e = load_dir(&dir.0, &mins("1.0.0"))
        .expect_err("two listings")
        .to_string();
    assert!(
        e.contains(VARIANTS_FILE) && e.contains(EMBEDDING_VARIANTS_FILE),
        "{e}"
    );
}
