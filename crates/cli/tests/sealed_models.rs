//! Sealed models on the device side (#23), on the real models: a model
//! sealed under a content key, opened into a memfd by the store and
//! loaded by llama.cpp from there, answers with the same greedy tokens as
//! the plain file; the sealed file holds no GGUF magic and no run of the
//! plaintext; load time and load + first token, sealed vs plain, are
//! printed (never asserted).

mod common;

use std::path::Path;
use std::time::Instant;

use outpost_engine::{CancelToken, GenerateRequest, LoadOptions, Model, Prompt, SamplingParams};
use outpost_seal::stream::{seal, DEFAULT_CHUNK};
use outpost_seal::ContentKey;

/// Greedy tokens, and the seconds to the first one.
fn greedy(model: &Model) -> (Vec<i32>, f64) {
    let mut r = GenerateRequest::new(Prompt::Text(
        "The lighthouse keeper opened the bottle and read".into(),
    ));
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(24);
    r.threads = Some(2);
    let t = Instant::now();
    let mut first = None;
    let done = model
        .generate(&r, &CancelToken::new(), |_| {
            first.get_or_insert(t.elapsed().as_secs_f64());
        })
        .expect("generate");
    (done.tokens, first.expect("a first token"))
}

fn check(file: &str) {
    let plain_path = common::model_path(file);
    let plain = std::fs::read(&plain_path).expect("model");
    let dir = std::env::temp_dir().join(format!("outpost-sealed-{}-{file}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let sealed_path = dir.join("model.sealed");
    let key = ContentKey::generate().expect("key");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&sealed_path).expect("create"));
    seal(
        &key,
        plain.len() as u64,
        DEFAULT_CHUNK,
        &mut &plain[..],
        &mut out,
    )
    .expect("seal");
    drop(out);
    no_plaintext_in(&sealed_path, &plain);

    // As installed: the plaintext digest is checked once.
    let digest = outpost_protocol::Digest::sha256(&plain);
    let installed = outpost_store::open_sealed(&sealed_path, &key, Some(&digest)).expect("install");
    assert_eq!(installed.digest(), Some(&digest));
    assert_eq!(installed.len(), plain.len() as u64);
    drop(installed);

    // As loaded for serving: plain vs sealed, each to its first token
    // (a plain load maps the file lazily and pays for its pages during the
    // first decode).
    // Times `load` (which keeps whatever backs the model alive until the
    // model is dropped) to the model, and to its first token: best of two.
    fn timed<T>(load: impl Fn() -> (T, Model)) -> ([f64; 2], Vec<i32>) {
        let mut best = [f64::INFINITY; 2];
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let t = Instant::now();
            let (backing, m) = load();
            let loaded = t.elapsed().as_secs_f64();
            let (got, first) = greedy(&m);
            best = [best[0].min(loaded), best[1].min(loaded + first)];
            tokens = got;
            drop(m);
            drop(backing);
        }
        (best, tokens)
    }
    let (plain_s, want) = timed(|| {
        let m = Model::load(&plain_path, &LoadOptions::default()).expect("plain load");
        ((), m)
    });
    let (sealed_s, got) = timed(|| {
        let mem = std::sync::Arc::new(
            outpost_store::open_sealed_background(&sealed_path, &key).expect("open sealed"),
        );
        let m2 = mem.clone();
        let opts = LoadOptions {
            arrival: Some(outpost_engine::gguf::Arrival::new(move |n| {
                m2.wait_for(n).map_err(|e| e.to_string())
            })),
            ..LoadOptions::default()
        };
        let m = Model::load(&mem.path(), &opts).expect("load from memfd");
        (mem, m)
    });
    assert_eq!(got, want, "{file}: the sealed model answers differently");
    eprintln!(
        "{file}: load {:.0} ms plain, {:.0} ms sealed ({:.2}x); load + first token {:.0} ms plain, {:.0} ms sealed ({:.2}x)",
        plain_s[0] * 1e3,
        sealed_s[0] * 1e3,
        sealed_s[0] / plain_s[0],
        plain_s[1] * 1e3,
        sealed_s[1] * 1e3,
        sealed_s[1] / plain_s[1],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sealed file starts with no GGUF magic and holds no 64-byte run of
/// the plaintext (sampled from every 16th chunk's start and middle).
fn no_plaintext_in(path: &Path, plain: &[u8]) {
    let sealed = std::fs::read(path).expect("sealed");
    assert!(!sealed.starts_with(b"GGUF"));
    assert!(plain.starts_with(b"GGUF"));
    let step = DEFAULT_CHUNK as usize * 16;
    for at in (0..plain.len().saturating_sub(64)).step_by(step) {
        for off in [at, at + DEFAULT_CHUNK as usize / 2] {
            let Some(run) = plain.get(off..off + 64) else {
                continue;
            };
            if run.iter().all(|&b| b == run[0]) {
                continue; // padding: any file could hold it
            }
            assert!(
                memchr::memmem::find(&sealed, run).is_none(),
                "plaintext at {off} found in the sealed file"
            );
        }
    }
}

#[test]
fn sealed_smollm2_loads_from_memory_and_answers_the_same() {
    check("smollm2-135m.gguf");
}

#[test]
fn sealed_gemma3_loads_from_memory_and_answers_the_same() {
    check("gemma3-270m.gguf");
}
