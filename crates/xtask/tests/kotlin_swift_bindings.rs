//! The Kotlin and Swift bindings (#24), generated from
//! `crates/ffi/src/api.rs` by this package's `outpost-bindgen`. Kotlin is
//! compiled with kotlinc 2.4.20 together with the Flow layer
//! (`crates/ffi/kotlin/OutpostFlow.kt`) and its test program
//! (`BindingTest.kt`), then run on the JVM through JNA against the real
//! SmolLM2: flows equal the blocking calls, cancelling a collector stops the
//! model, the guard redacts and restores. `scripts/ensure-kotlin.sh`
//! installs the toolchain; without it this test fails, it never skips.
//! Swift is generated only: no Swift toolchain exists for Debian 12, so the
//! AsyncSequence layer (`crates/ffi/swift/OutpostStream.swift`) is checked
//! against the generated declarations it calls, not compiled.

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{built, root, run_ok};

const KOTLINC: &str = "kotlinc-2.4.20";

fn kotlin_home() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).expect("HOME");
    home.join(".cache/outpost").join(KOTLINC)
}

fn generate(language: &str, out: &std::path::Path) {
    let lib = built(
        root().join("target/release/liboutpost_ffi.so"),
        "cargo build --release -p outpost-ffi",
    );
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_outpost-bindgen"))
            .current_dir(root())
            .args(["generate", "--library"])
            .arg(&lib)
            .args(["--language", language, "--no-format", "--out-dir"])
            .arg(out),
        "cargo build --release -p xtask",
    );
}

#[test]
fn kotlin_flows_stream_cancel_and_guard_on_the_real_model() {
    let model = built(
        root().join("models/smollm2-135m.gguf"),
        "run scripts/fetch-models.sh (this test never skips)",
    );
    let home = kotlin_home();
    let kotlinc = built(home.join("bin/kotlinc"), "run scripts/ensure-kotlin.sh");
    let jna = built(
        PathBuf::from("/usr/share/java/jna.jar"),
        "run scripts/ensure-kotlin.sh (Debian's libjna-java)",
    );
    let dir = std::env::temp_dir().join(format!("outpost-kotlin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    generate("kotlin", &dir.join("gen"));
    let lib_dir = home.join("lib");
    let classpath = format!(
        "{}:{}",
        jna.display(),
        lib_dir.join("kotlinx-coroutines-core-jvm.jar").display()
    );
    let jar = dir.join("test.jar");
    let sources = root().join("crates/ffi/kotlin");
    run_ok(
        Command::new(&kotlinc)
            .arg(dir.join("gen/uniffi/outpost/outpost.kt"))
            .arg(sources.join("OutpostFlow.kt"))
            .arg(sources.join("BindingTest.kt"))
            .args(["-nowarn", "-cp", &classpath, "-d"])
            .arg(&jar),
        "scripts/ensure-kotlin.sh",
    );
    let out = run_ok(
        Command::new("java")
            .arg(format!(
                "-Djna.library.path={}",
                root().join("target/release").display()
            ))
            .arg("-cp")
            .arg(format!(
                "{}:{classpath}:{}",
                jar.display(),
                lib_dir.join("kotlin-stdlib.jar").display()
            ))
            .arg("BindingTestKt")
            .arg(&model),
        "scripts/ensure-kotlin.sh",
    );
    eprintln!("{out}");
    assert!(out.contains("ok: kotlin"), "{out}");
    assert!(out.contains("redacted: Email <EMAIL_ADDRESS_1>"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn swift_is_generated_with_every_declaration_its_stream_layer_calls() {
    let dir = std::env::temp_dir().join(format!("outpost-swift-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    generate("swift", &dir);
    let swift = std::fs::read_to_string(dir.join("outpost.swift")).expect("outpost.swift");
    let layer = std::fs::read_to_string(root().join("crates/ffi/swift/OutpostStream.swift"))
        .expect("OutpostStream.swift");
    // What OutpostStream.swift calls, as the generated code declares it.
    for (declared, called) in [
        ("protocol PieceSink", "PieceSink"),
        ("func piece(text: String)  -> Bool", "func piece(text: String) -> Bool"),
        (
            "func generate(prompt: String, options: GenerateOptions, cancel: CancelFlag? = nil, sink: PieceSink? = nil)",
            "self.generate(prompt: prompt, options: options, cancel: cancel, sink: sink)",
        ),
        (
            "func chat(messages: [ChatMessage], options: GenerateOptions, cancel: CancelFlag? = nil, sink: PieceSink? = nil)",
            "self.chat(messages: messages, options: options, cancel: cancel, sink: sink)",
        ),
        ("public convenience init() {", "CancelFlag()"),
        ("open func cancel()", "cancel.cancel()"),
        ("maxTokens: UInt32 = UInt32(0)", "GenerateOptions()"),
    ] {
        assert!(swift.contains(declared), "the generated Swift lacks `{declared}`");
        assert!(layer.contains(called), "OutpostStream.swift no longer calls `{called}`");
    }
    for api in ["LocalModel", "PiiGuard", "DeviceAgent", "RoutePolicy"] {
        assert!(swift.contains(&format!("class {api}")), "swift lacks {api}");
    }
    let swiftc = Command::new("swiftc").arg("--version").output().is_ok();
    eprintln!(
        "swift: generated and checked against OutpostStream.swift; {}",
        if swiftc {
            "swiftc exists here but this test does not compile with it"
        } else {
            "not compiled: no Swift toolchain on this machine"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}
