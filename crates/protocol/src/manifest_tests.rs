//! The manifest's tests: the JSON snapshot, every refusal by field, and
//! the embedding kind.

use super::*;
use proptest::prelude::*;

/// A valid manifest, shared with the signing tests.
pub(crate) fn sample() -> Manifest {
    Manifest {
        manifest_version: 7,
        key_id: "fleet-2026a".into(),
        expires_at: Timestamp::parse("2030-01-01T00:00:00Z").expect("time"),
        model: ModelName::parse("smollm2-135m").expect("name"),
        model_version: "2025-06".into(),
        device_class: "phone-8gb".into(),
        variant: Variant {
            digest: Digest::sha256(b"gguf"),
            length: 105_000_000,
            quantization: "Q4_K_M".into(),
        },
        runtime: RuntimeConfig {
            n_ctx: 4096,
            kv_cache_type: KvCacheType::Q8_0,
            threads: Some(4),
        },
        requires: Requirements {
            min_app_version: Version::parse("0.2.0").expect("v"),
            min_engine_version: Version::parse("0.1.0").expect("v"),
            ggml_types: vec!["f32".into(), "q4_K".into(), "q6_K".into()],
        },
        kind: ModelKind::Generate,
        canaries: vec![Canary {
            prompt: "The capital of France is".into(),
            position: 6,
            top: vec![(7042, -0.25), (30, -2.5), (378, -3.125)],
        }],
        embedding_canaries: Vec::new(),
        encryption: None,
    }
}

const SNAPSHOT: &str = r#"{"manifest_version":7,"key_id":"fleet-2026a","expires_at":"2030-01-01T00:00:00Z","model":"smollm2-135m","model_version":"2025-06","device_class":"phone-8gb","variant":{"digest":"sha256:1cb1b7e0f8b96cee3445e317b8064d8805bf35c7dc7de82cddcb9f78d4c95e0e","length":105000000,"quantization":"Q4_K_M"},"runtime":{"n_ctx":4096,"kv_cache_type":"q8_0","threads":4},"requires":{"min_app_version":"0.2.0","min_engine_version":"0.1.0","ggml_types":["f32","q4_K","q6_K"]},"canaries":[{"prompt":"The capital of France is","position":6,"top":[[7042,-0.25],[30,-2.5],[378,-3.125]]}],"encryption":null}"#;

#[test]
fn snapshot() {
    // A compatibility snapshot: a change here is a change of the signed
    // format every deployed device parses.
    let m = sample();
    assert_eq!(serde_json::to_string(&m).expect("json"), SNAPSHOT);
    assert_eq!(Manifest::from_json(SNAPSHOT.as_bytes()), Ok(m));
}

fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(SNAPSHOT).expect("json");
    edit(&mut v);
    serde_json::to_vec(&v).expect("json")
}

fn err(bytes: &[u8]) -> String {
    Manifest::from_json(bytes)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let e = err(&with(|v| v["priority"] = 1.into()));
    assert!(e.contains("unknown field `priority`"), "{e}");
    let e = err(&with(|v| v["runtime"]["flash_attn"] = true.into()));
    assert!(e.contains("unknown field `flash_attn`"), "{e}");
}

#[test]
fn encryption_says_how_a_sealed_variant_opens() {
    let absent = with(|v| {
        v.as_object_mut().map(|o| o.remove("encryption"));
    });
    assert!(Manifest::from_json(&absent).is_ok());
    let plain = 105_000_000u64;
    // 1 MiB chunks: 101 of them, a 16-byte tag each, a 40-byte header.
    let sealed = 40 + plain + 101 * 16;
    let sealed_with = |length: u64, chunk: u32| {
        with(|v| {
            v["variant"]["length"] = length.into();
            v["encryption"] = serde_json::json!({
                "scheme": "xchacha20poly1305-stream-v1", "chunk_size": chunk,
                "plaintext_digest": format!("sha256:{}", "0".repeat(64)),
                "plaintext_length": plain,
            });
        })
    };
    let m = Manifest::from_json(&sealed_with(sealed, 1 << 20)).expect("sealed manifest");
    let e = m.encryption.expect("encryption");
    assert_eq!(e.scheme, SealScheme::XChaCha20Poly1305StreamV1);
    assert_eq!(e.plaintext_length, plain);
    let wrong = err(&sealed_with(plain, 1 << 20));
    assert!(
        wrong.contains("variant.length") && wrong.contains(&sealed.to_string()),
        "{wrong}"
    );
    let tiny = err(&sealed_with(sealed, 100));
    assert!(tiny.contains("encryption.chunk_size"), "{tiny}");
    let e = err(&with(|v| v["encryption"] = serde_json::json!({"alg": "x"})));
    assert!(e.contains("unknown field `alg`"), "{e}");
}

#[test]
fn invalid_values_name_the_field() {
    for (edit, field) in [
        (
            with(|v| v["variant"]["digest"] = "sha256:ABC".into()),
            "lowercase",
        ),
        (
            with(|v| v["variant"]["length"] = 0.into()),
            "variant.length",
        ),
        (with(|v| v["runtime"]["n_ctx"] = 0.into()), "runtime.n_ctx"),
        (
            with(|v| v["runtime"]["threads"] = 0.into()),
            "runtime.threads",
        ),
        (
            with(|v| v["runtime"]["kv_cache_type"] = "q3".into()),
            "unknown variant `q3`",
        ),
        (with(|v| v["model"] = "../etc".into()), "model name"),
        (with(|v| v["model"] = "Big".into()), "model name"),
        (
            with(|v| v["requires"]["min_app_version"] = "1.02.0".into()),
            "MAJOR.MINOR.PATCH",
        ),
        (
            with(|v| v["requires"]["ggml_types"] = serde_json::json!([])),
            "requires.ggml_types",
        ),
        (
            with(|v| v["requires"]["ggml_types"] = serde_json::json!(["q4 K"])),
            "requires.ggml_types[0]",
        ),
        (with(|v| v["canaries"] = serde_json::json!([])), "canaries"),
        (
            with(|v| v["canaries"][0]["position"] = 0.into()),
            "canaries[0].position",
        ),
        (
            with(|v| v["canaries"][0]["top"] = serde_json::json!([])),
            "canaries[0].top",
        ),
        (
            with(|v| v["canaries"][0]["top"][1] = serde_json::json!([30, 0.5])),
            "canaries[0].top[1]",
        ),
        (
            with(|v| v["canaries"][0]["top"][1] = serde_json::json!([30, -0.1])),
            "most likely first",
        ),
        (
            with(|v| v["canaries"][0]["top"][1] = serde_json::json!([-3, -2.5])),
            "negative",
        ),
        (
            with(|v| v["canaries"][0]["expected_tokens"] = serde_json::json!([1])),
            "unknown field `expected_tokens`",
        ),
        (with(|v| v["key_id"] = "a/b".into()), "key_id"),
        (
            with(|v| v["expires_at"] = "2030-01-01T00:00:00+02:00".into()),
            "RFC 3339",
        ),
        (
            with(|v| v["manifest_version"] = (-1).into()),
            "expected u64",
        ),
    ] {
        let e = err(&edit);
        assert!(e.contains(field), "expected {field:?} in {e}");
    }
}

#[test]
fn versions_parse_strictly() {
    assert_eq!(
        Version::parse("10.0.3"),
        Ok(Version {
            major: 10,
            minor: 0,
            patch: 3
        })
    );
    for s in [
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.2.x",
        "1.2.3-rc1",
        " 1.2.3",
    ] {
        assert!(Version::parse(s).is_err(), "{s}");
    }
    assert!(Version::parse("1.10.0").expect("v") > Version::parse("1.9.9").expect("v"));
}

proptest! {
    #[test]
    fn model_names_are_safe_file_names(s in "\\PC{0,70}") {
        if let Ok(n) = ModelName::parse(&s) {
            prop_assert!(!n.as_str().contains(['/', '\\']));
            prop_assert!(!n.as_str().starts_with('.'));
            prop_assert!(!n.as_str().contains(".."));
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Manifest::from_json(&bytes);
    }

    #[test]
    fn any_valid_manifest_round_trips(version in any::<u64>(), secs in 0u64..253_402_300_800, n_ctx in 1u32.., len in 1u64..) {
        let mut m = sample();
        m.manifest_version = version;
        m.expires_at = Timestamp::from_unix_seconds(secs);
        m.runtime.n_ctx = n_ctx;
        m.variant.length = len;
        let bytes = serde_json::to_vec(&m).expect("json");
        prop_assert_eq!(Manifest::from_json(&bytes), Ok(m));
    }
}

/// `sample()` as an embedding model with one 4-dimensional canary.
fn embedding_sample() -> Manifest {
    let mut m = sample();
    m.model = ModelName::parse("minilm").expect("name");
    m.kind = ModelKind::Embedding;
    m.canaries.clear();
    m.embedding_canaries = vec![EmbeddingCanary {
        text: "A cat sat on the mat.".into(),
        vector: vec![0.5, -0.5, 0.5, 0.5],
    }];
    m
}

#[test]
fn an_embedding_manifest_round_trips_and_a_generative_one_keeps_its_bytes() {
    let m = embedding_sample();
    let json = serde_json::to_string(&m).expect("json");
    assert!(json.contains(r#""kind":"embedding""#), "{json}");
    assert!(
        json.contains(
            r#""embedding_canaries":[{"text":"A cat sat on the mat.","vector":[0.5,-0.5,0.5,0.5]}]"#
        ),
        "{json}"
    );
    assert_eq!(Manifest::from_json(json.as_bytes()), Ok(m));
    // The generative sample says neither (the snapshot pins its bytes).
    let g = serde_json::to_string(&sample()).expect("json");
    assert!(!g.contains("kind") && !g.contains("embedding"), "{g}");
}

#[test]
fn embedding_canaries_are_checked_by_kind() {
    let edit = |f: &dyn Fn(&mut Manifest)| {
        let mut m = embedding_sample();
        f(&mut m);
        m.validate().expect_err("must be refused").to_string()
    };
    for (e, field) in [
        (
            edit(&|m| m.embedding_canaries.clear()),
            "embedding_canaries",
        ),
        (
            edit(&|m| m.canaries = sample().canaries),
            "use `embedding_canaries`",
        ),
        (
            edit(&|m| m.embedding_canaries[0].vector[1] = f32::NAN),
            "embedding_canaries[0].vector",
        ),
        (
            edit(&|m| m.embedding_canaries[0].vector = vec![0.0; 4]),
            "all zeros",
        ),
        (
            edit(&|m| m.embedding_canaries[0].text = " ".into()),
            "embedding_canaries[0].text",
        ),
        (
            edit(&|m| {
                let mut c = m.embedding_canaries[0].clone();
                c.vector.push(1.0);
                m.embedding_canaries.push(c);
            }),
            "embedding_canaries[1].vector",
        ),
    ] {
        assert!(e.contains(field), "expected {field:?} in {e}");
    }
    // A generative model may not carry vectors.
    let mut g = sample();
    g.embedding_canaries = embedding_sample().embedding_canaries;
    let e = g.validate().expect_err("refused").to_string();
    assert!(e.contains("embedding_canaries"), "{e}");
    assert_eq!(embedding_sample().validate(), Ok(()));
    // An unknown kind is refused by name.
    let mut v: serde_json::Value = serde_json::to_value(embedding_sample()).expect("v");
    v["kind"] = "rerank".into();
    let e = Manifest::from_json(&serde_json::to_vec(&v).expect("j")).expect_err("kind");
    assert!(e.to_string().contains("rerank"), "{e}");
}
