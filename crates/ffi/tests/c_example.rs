//! `examples/c/chat.c`, compiled with the system C compiler against the
//! library's header and shared object, run on the real SmolLM2: it streams
//! a chat answer (the same text the engine gives in process, greedy), has a
//! second answer cancelled from another thread midway, and redacts a
//! prompt with the guard (the e-mail and card number gone, restored in an
//! answer); a missing model fails with a reason, not a crash.

use std::path::{Path, PathBuf};
use std::process::Command;

use outpost_engine::{
    CancelToken, GenerateRequest, LoadOptions, Message, Model, Prompt, SamplingParams,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder cargo put this profile's libraries in (target/release).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

#[test]
fn the_c_example_streams_cancels_and_redacts() {
    let model = root().join("models/smollm2-135m.gguf");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/fetch-models.sh (this test never skips)",
        model.display()
    );
    let lib = lib_dir();
    assert!(
        lib.join("liboutpost_ffi.so").is_file(),
        "no liboutpost_ffi.so in {}",
        lib.display()
    );
    let exe = std::env::temp_dir().join(format!("outpost-chat-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let o = Command::new(&cc)
        .arg(root().join("examples/c/chat.c"))
        .arg("-I")
        .arg(root().join("crates/ffi/include"))
        .arg("-L")
        .arg(&lib)
        .args(["-loutpost_ffi", "-lpthread", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output()
        .unwrap_or_else(|e| panic!("{cc} is needed to build the C example: {e}"));
    assert!(
        o.status.success(),
        "compiling chat.c: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(&exe)
        .arg(&model)
        .output()
        .expect("run the C example");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let _ = std::fs::remove_file(&exe);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = |prefix: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
            .to_string()
    };
    assert_eq!(line("abi "), "1");
    let build: serde_json::Value = serde_json::from_str(&line("build: ")).expect("build json");
    assert!(
        build["cpu_features"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{build}"
    );
    assert!(line("error: ").contains("/nonexistent/model.gguf"), "{out}");

    // The streamed answer is the engine's own greedy answer.
    let m = Model::load(&model, &LoadOptions::default()).expect("load");
    let mut r = GenerateRequest::new(Prompt::Chat {
        messages: vec![Message::new("user", "Which city is the capital of France?")],
        template: None,
        tools: Vec::new(),
    });
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(24);
    r.threads = Some(2);
    r.n_ctx = Some(m.info().n_ctx_train.min(4096));
    let want = m
        .generate(&r, &CancelToken::new(), |_| {})
        .expect("generate")
        .text;
    let stream = line("stream: ");
    let (pieces, text) = stream.split_once(" pieces: ").expect("pieces");
    assert!(pieces.parse::<u32>().expect("count") >= 2, "{out}");
    assert_eq!(text, want.split('\n').next().unwrap_or(""), "{out}");
    assert!(out.contains(&want), "the whole answer {want:?} in:\n{out}");

    // Cancelled midway: stopped well before its 200 tokens.
    let cancelled = line("cancelled: ");
    assert!(cancelled.starts_with("rc=1 after "), "{out}");
    let n: u32 = cancelled
        .rsplit(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("pieces");
    assert!((5..100).contains(&n), "cancelled after {n} pieces: {out}");

    // The guard: found, redacted, restored.
    let found: serde_json::Value = serde_json::from_str(&line("found: ")).expect("json");
    let kinds: Vec<&str> = found
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|f| f["entity"].as_str())
        .collect();
    assert!(
        kinds.contains(&"EMAIL_ADDRESS") && kinds.contains(&"CREDIT_CARD"),
        "{found}"
    );
    let redacted = line("redacted: ");
    assert!(
        !redacted.contains("jane.doe@example.com") && !redacted.contains("4111"),
        "{redacted}"
    );
    assert!(redacted.contains("<EMAIL_ADDRESS_1>"), "{redacted}");
    assert_eq!(
        line("restored: "),
        "I will write to jane.doe@example.com now."
    );
    let rss: u64 = line("peak_rss_kib ").parse().expect("rss");
    eprintln!("C example peak RSS on SmolLM2: {} MiB", rss / 1024);
}
