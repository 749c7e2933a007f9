//! The reference scored against itself, on the real SmolLM2 model: KL
//! divergence 0, same top token everywhere, perplexity ratio 1; and a
//! requantized tier is measurably different.

use std::path::PathBuf;

use outpost_engine::{LoadOptions, Model};

fn models() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for f in ["smollm2-135m.gguf", "eval/lee-background.txt"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run scripts/fetch-models.sh (this test never skips)",
            dir.join(f).display()
        );
    }
    dir
}

#[test]
fn the_reference_against_itself_has_zero_kld_and_a_tier_does_not() {
    let dir = models();
    let src = dir.join("smollm2-135m.gguf");
    let text = std::fs::read_to_string(dir.join("eval/lee-background.txt")).expect("text");
    let reference = Model::load(&src, &LoadOptions::default()).expect("load");
    let again = Model::load(&src, &LoadOptions::default()).expect("load again");
    let tmp = std::env::temp_dir().join(format!("outpost-q4_0-{}.gguf", std::process::id()));
    outpost_engine::quantize(&src, &tmp, "q4_0", 2).expect("quantize");
    let tier = Model::load(&tmp, &LoadOptions::default()).expect("load tier");
    let tokens = reference.tokenize(&text, true);
    let (r, q) = outpost_variants::quality::evaluate(
        &reference,
        &[&again, &tier],
        &tokens,
        256,
        2,
        Some(2),
        |_, _| {},
    )
    .expect("evaluate");
    let _ = std::fs::remove_file(&tmp);
    assert_eq!(
        r.scored_tokens,
        2 * 127,
        "llama-perplexity's count: chunks × (n_ctx/2 − 1)"
    );
    assert!(r.ppl > 1.0 && r.ppl.is_finite(), "{}", r.ppl);
    let same = &q[0];
    assert!(same.kld_mean.abs() < 1e-9, "self KLD {}", same.kld_mean);
    assert!(same.kld_max.abs() < 1e-9, "self KLD max {}", same.kld_max);
    assert_eq!(same.same_top_pct, 100.0);
    assert!((same.ppl_ratio - 1.0).abs() < 1e-12, "{}", same.ppl_ratio);
    assert!(same.rms_dp_pct.abs() < 1e-9);
    let q4 = &q[1];
    assert!(q4.kld_mean > 0.01, "q4_0 from Q4_1 should differ: {q4:?}");
    assert!(
        q4.same_top_pct < 100.0 && q4.kld_max >= q4.kld_p99 && q4.kld_p99 >= 0.0,
        "{q4:?}"
    );
}

#[test]
fn too_short_a_text_says_how_much_is_needed() {
    let dir = models();
    let reference =
        Model::load(&dir.join("smollm2-135m.gguf"), &LoadOptions::default()).expect("load");
    let tokens = reference.tokenize("Only a few words.", true);
    let e =
        outpost_variants::quality::evaluate(&reference, &[], &tokens, 512, 4, Some(2), |_, _| {})
            .expect_err("too short");
    let msg = e.to_string();
    assert!(msg.contains("2048") && msg.contains("too short"), "{msg}");
}
