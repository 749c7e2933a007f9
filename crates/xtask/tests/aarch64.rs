//! The runtime on aarch64 Linux (#24), under qemu: `liboutpost_ffi`
//! cross-compiled (rustup's aarch64-unknown-linux-gnu, Debian's
//! gcc-aarch64-linux-gnu; llama.cpp for the armv8-a baseline) into
//! `target/cross` (its own target folder, so it never waits on this build's
//! lock), `examples/c/chat.c` cross-compiled against it and run with
//! `qemu-aarch64` on the real SmolLM2: the same greedy chat answer as the
//! x86_64 build, NEON among the features llama.cpp reports, the same
//! cancel and guard results. Stripped library sizes and the example's peak
//! RSS on both are printed (never asserted). `scripts/ensure-cross.sh`
//! installs the toolchain; without it this test fails, it never skips.

use std::path::Path;
use std::process::Command;

const TARGET: &str = "aarch64-unknown-linux-gnu";

mod common;
use common::root;

fn run(c: &mut Command) -> String {
    common::run_ok(c, "scripts/ensure-cross.sh")
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
}

fn compile(cc: &str, lib_dir: &Path, exe: &Path) {
    run(Command::new(cc)
        .arg(root().join("examples/c/chat.c"))
        .arg("-I")
        .arg(root().join("crates/ffi/include"))
        .arg("-L")
        .arg(lib_dir)
        .args(["-loutpost_ffi", "-lpthread", "-Wall", "-Werror", "-o"])
        .arg(exe)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display())));
}

fn stripped_mib(strip: &str, lib: &Path, tmp: &Path) -> f64 {
    let out = tmp.join(format!("stripped-{strip}.so"));
    run(Command::new(strip).arg("-o").arg(&out).arg(lib));
    std::fs::metadata(&out).expect("stripped").len() as f64 / f64::from(1 << 20)
}

#[test]
fn the_c_example_runs_on_aarch64_under_qemu_with_the_same_greedy_answer() {
    let model = root().join("models/smollm2-135m.gguf");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        model.display()
    );
    let cross = root().join("target/cross");
    let mut build = Command::new(env!("CARGO"));
    build
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            TARGET,
            "-p",
            "outpost-ffi",
        ])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &cross)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run(&mut build);
    let arm_lib_dir = cross.join(TARGET).join("release");
    let x86_lib_dir = root().join("target/release");
    assert!(
        x86_lib_dir.join("liboutpost_ffi.so").is_file(),
        "build the x86_64 library first: cargo build --release -p outpost-ffi"
    );
    let tmp = std::env::temp_dir().join(format!("outpost-aarch64-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let (arm_exe, x86_exe) = (tmp.join("chat-aarch64"), tmp.join("chat-x86_64"));
    compile("aarch64-linux-gnu-gcc", &arm_lib_dir, &arm_exe);
    compile("cc", &x86_lib_dir, &x86_exe);
    // ELF e_machine (bytes 18-19, little endian): 183 is AArch64.
    let head = std::fs::read(&arm_exe).expect("the aarch64 example");
    assert_eq!(
        (&head[..4], u16::from_le_bytes([head[18], head[19]])),
        (&b"\x7fELF"[..], 183),
        "not an AArch64 ELF executable"
    );

    let arm = run(Command::new("qemu-aarch64")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&arm_exe)
        .arg(&model));
    let x86 = run(Command::new(&x86_exe).arg(&model));
    let build: serde_json::Value = serde_json::from_str(line(&arm, "build: ")).expect("build json");
    let features: Vec<&str> = build["cpu_features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(
        features.contains(&"NEON"),
        "aarch64 build features: {build}"
    );
    eprintln!("aarch64 llama.cpp system info: {}", build["system_info"]);
    assert_eq!(
        line(&arm, "stream: "),
        line(&x86, "stream: "),
        "the greedy answer differs between aarch64 and x86_64"
    );
    assert!(line(&arm, "cancelled: ").starts_with("rc=1 "), "{arm}");
    assert_eq!(line(&arm, "redacted: "), line(&x86, "redacted: "));
    assert_eq!(line(&arm, "restored: "), line(&x86, "restored: "));
    eprintln!(
        "stripped liboutpost_ffi.so: aarch64 {:.1} MiB, x86_64 {:.1} MiB; C example peak RSS on SmolLM2: aarch64 (qemu) {} MiB, x86_64 {} MiB",
        stripped_mib("aarch64-linux-gnu-strip", &arm_lib_dir.join("liboutpost_ffi.so"), &tmp),
        stripped_mib("strip", &x86_lib_dir.join("liboutpost_ffi.so"), &tmp),
        line(&arm, "peak_rss_kib ").parse::<u64>().unwrap_or(0) / 1024,
        line(&x86, "peak_rss_kib ").parse::<u64>().unwrap_or(0) / 1024,
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
