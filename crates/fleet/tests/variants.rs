//! Publishing from `variants.json`: a `VariantsFile` built in memory is
//! mapped onto a release (class → tier, blocked classes, default, canaries
//! carried), published, and devices of each class check in; a folder whose
//! tier file does not match `variants.json` is refused, naming the file.

mod common;

use common::*;
use outpost_fleet::meta::{from_variants, load_dir, load_variants_dir, Minimums, VARIANTS_FILE};
use outpost_protocol::manifest::{Canary, KvCacheType, Manifest};
use outpost_protocol::variants::*;
use outpost_protocol::{Digest, SignedManifest};

const GIB: u64 = 1 << 30;

fn tier(name: &str, data: &[u8], kld: f64, fp_token: i32) -> Tier {
    Tier {
        name: name.into(),
        file: format!("tiny.{name}.gguf"),
        digest: Digest::sha256(data).to_string(),
        size: data.len() as u64,
        bpw: 8.5,
        type_mix: vec![
            TypeShare {
                ggml_type: name.into(),
                tensors: 30,
                bytes: 1000,
            },
            TypeShare {
                ggml_type: "f32".into(),
                tensors: 60,
                bytes: 100,
            },
        ],
        no_quality_gain: false,
        quality: Quality {
            ppl: 20.0,
            ppl_ratio: 1.0 + kld,
            kld_mean: kld,
            kld_p99: kld * 10.0,
            kld_max: kld * 50.0,
            same_top_pct: 95.0,
            rms_dp_pct: 2.0,
        },
        cost: Cost {
            load_ms: 10.0,
            pp512_tps: 1000.0,
            tg128_tps: 100.0,
            peak_rss_bytes: 300_000_000,
        },
        fingerprints: vec![
            Fingerprint {
                prompt: "The capital of France is".into(),
                position: 4,
                top: vec![(fp_token, -0.5), (11, -1.25), (12, -3.0)],
            },
            Fingerprint {
                prompt: "The capital of France is".into(),
                position: 6,
                top: vec![(13, -0.125)],
            },
        ],
    }
}

fn class(name: &str, budget: u64, kld: f64) -> DeviceClass {
    DeviceClass {
        name: name.into(),
        ram_budget_bytes: budget,
        relative_bandwidth: 1.0,
        kld_ceiling: kld,
    }
}

fn rec(class: &str, tier: Option<&str>, n_ctx: u32, kv: &str, mem: u64) -> Recommendation {
    Recommendation {
        device_class: class.into(),
        tier: tier.map(Into::into),
        n_ctx,
        kv_cache_type: kv.into(),
        memory_bytes: mem,
        predicted_tg_tps: 50.0,
        reason: if tier.is_some() {
            "best quality within the ceiling that fits".into()
        } else {
            "no tier fits in 10 MiB".into()
        },
    }
}

/// Two tiers over `q8` and `q4`; watch-1GB fits nothing.
fn file(q8: &[u8], q4: &[u8]) -> VariantsFile {
    VariantsFile {
        format_version: FORMAT_VERSION,
        model: "tinymodel".into(),
        source: SourceInfo {
            file: "tinymodel.gguf".into(),
            digest: Digest::sha256(b"src").to_string(),
            size: 1000,
            quantization: "F16".into(),
            bpw: 16.0,
            already_quantized: false,
            n_params: 1000,
            architecture: "llama".into(),
            n_ctx_train: 8192,
            n_vocab: 49152,
        },
        eval: EvalInfo {
            text: "wiki".into(),
            text_digest: Digest::sha256(b"t").to_string(),
            n_ctx: 512,
            chunks: 1,
            scored_tokens: 255,
            reference_ppl: 20.0,
        },
        host: HostInfo {
            cpu: "test".into(),
            threads: 2,
            llama_cpp: "b0000".into(),
        },
        tiers: vec![tier("q8_0", q8, 0.001, 10), tier("q4_0", q4, 0.04, 20)],
        merged: vec![],
        device_classes: vec![
            class("watch-1GB", GIB / 100, 0.2),
            class("phone-4GB", GIB, 0.1),
            class("laptop-16GB", 6 * GIB, 0.05),
        ],
        recommendations: vec![
            rec("watch-1GB", None, 512, "f16", 0),
            rec("phone-4GB", Some("q4_0"), 2048, "q8_0", 200_000_000),
            rec("laptop-16GB", Some("q8_0"), 8192, "f16", 900_000_000),
        ],
    }
}

fn mins(version: &str) -> Minimums {
    Minimums {
        version: Some(version.into()),
        ..Minimums::default()
    }
}

#[test]
fn tiers_classes_blocks_and_canaries_map_onto_a_release() {
    let f = file(&gguf("q8", 3000), &gguf("q4", 2000));
    let m = from_variants(&f, &mins("1.0.0")).expect("maps");
    assert_eq!(m.model.as_str(), "tinymodel");
    assert_eq!(m.version, "1.0.0");
    let q8 = m.variant("q8_0").expect("q8_0");
    assert_eq!(q8.digest, Some(Digest::sha256(&gguf("q8", 3000))));
    assert_eq!(q8.length, Some(3000));
    assert_eq!(q8.ggml_types, ["q8_0", "f32"]);
    assert_eq!(q8.memory_bytes, 900_000_000);
    assert_eq!(q8.quality["kld_mean"], 0.001);
    assert_eq!(q8.fingerprints, f.tiers[0].fingerprints);

    let (_, laptop) = m.class_config("laptop-16GB").expect("laptop");
    assert_eq!(
        (laptop.variant.as_str(), laptop.n_ctx, laptop.kv_cache_type),
        ("q8_0", 8192, KvCacheType::F16)
    );
    assert_eq!(laptop.threads, None);
    // The watch is blocked with the pipeline's reason, even though a
    // default exists for unknown classes: the phone's (smallest budget).
    assert!(m.class_config("watch-1GB").is_none());
    assert_eq!(m.blocked["watch-1GB"], "no tier fits in 10 MiB");
    let (name, other) = m.class_config("tv-2GB").expect("default");
    assert_eq!((name, other.variant.as_str()), ("default", "q4_0"));
    assert_eq!(other.kv_cache_type, KvCacheType::Q8_0);

    let man: Manifest = m
        .manifest_for(
            "laptop-16GB",
            1,
            "k1",
            outpost_protocol::Timestamp::from_unix_seconds(9),
        )
        .expect("manifest");
    man.validate().expect("valid manifest");
    let want: Vec<Canary> = f.tiers[0].fingerprints.clone();
    assert_eq!(man.canaries, want);
    assert_eq!(man.runtime.threads, None);

    let e = from_variants(&f, &Minimums::default()).expect_err("no version");
    assert!(e.to_string().contains("--version"), "{e}");
    let mut bad = f.clone();
    bad.recommendations[1].tier = Some("q2_k".into());
    let e = from_variants(&bad, &mins("1.0.0")).expect_err("unknown tier");
    assert!(
        e.to_string().contains("\"q2_k\", which is not among"),
        "{e}"
    );
}

#[tokio::test]
async fn devices_get_their_class_tier_or_are_blocked() {
    let t = open("variants").await;
    let (q8, q4) = (gguf("q8", 3000), gguf("q4", 2000));
    t.fleet
        .local_store()
        .expect("blobs in a folder")
        .put(None, &q8[..])
        .expect("blob");
    t.fleet
        .local_store()
        .expect("blobs in a folder")
        .put(None, &q4[..])
        .expect("blob");
    let m = from_variants(&file(&q8, &q4), &mins("1.0.0")).expect("maps");
    t.fleet.publish("test", m).await.expect("published");
    release_on_stable(&t, "tinymodel", "1.0.0").await;

    let (_, laptop) = register(&t, "stable").await;
    let a = check_in(&t, &laptop, profile("laptop-16GB"), "tinymodel").await;
    let env: SignedManifest = serde_json::from_value(a["manifest"].clone()).expect("signed");
    let man = Manifest::from_json(&env.payload_bytes().expect("payload")).expect("manifest");
    assert_eq!(man.variant.digest, Digest::sha256(&q8));
    assert_eq!(man.variant.quantization, "q8_0");
    assert_eq!(man.canaries[0].top[0], (10, -0.5));

    let (_, watch) = register(&t, "stable").await;
    let a = check_in(&t, &watch, profile("watch-1GB"), "tinymodel").await;
    assert!(a["manifest"].is_null(), "{a}");
    let reason = a["blocked"][0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("no tier fits in 10 MiB"), "{a}");
    let st = admin(&t, "GET", "/admin/v1/status", None).await;
    assert_eq!(st["blocked_devices"], 1);
}

#[test]
fn tier_files_are_checked_against_variants_json() {
    let dir = TempDir::new("variants-dir");
    let (q8, q4) = (gguf("q8", 3000), gguf("q4", 2000));
    let f = file(&q8, &q4);
    std::fs::write(dir.0.join("tiny.q8_0.gguf"), &q8).expect("write");
    std::fs::write(dir.0.join("tiny.q4_0.gguf"), &q4).expect("write");
    std::fs::write(
        dir.0.join(VARIANTS_FILE),
        serde_json::to_vec(&f).expect("json"),
    )
    .expect("write");
    let r = load_dir(&dir.0, &mins("1.0.0")).expect("loads");
    assert_eq!(r.files.len(), 2);
    assert_eq!(
        r.files[1],
        (Digest::sha256(&q4), dir.0.join("tiny.q4_0.gguf"))
    );

    std::fs::write(dir.0.join("tiny.q4_0.gguf"), &q4[..1500]).expect("truncate");
    let e = load_variants_dir(&dir.0, &mins("1.0.0"))
        .expect_err("truncated")
        .to_string();
    assert!(
        e.contains("tiny.q4_0.gguf") && e.contains("1500 bytes"),
        "{e}"
    );
    std::fs::remove_file(dir.0.join("tiny.q4_0.gguf")).expect("rm");
    let e = load_dir(&dir.0, &mins("1.0.0"))
        .expect_err("missing")
        .to_string();
    assert!(
        e.contains("tiny.q4_0.gguf") && e.contains("cannot open"),
        "{e}"
    );
    let e = load_dir(&dir.0, &Minimums::default())
        .expect_err("no version")
        .to_string();
    assert!(e.contains("--version"), "{e}");
}
