//! Set-up scripts, tested on file trees made here: `scripts/find-libclang.sh`
//! must find what bindgen (clang-sys) loads and nothing else, so that a fresh
//! Debian image (which ships only `libclang-cpp.so.14`) gets libclang-dev.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/find-libclang.sh")
}

/// A fresh folder under the target directory, holding `files` (relative paths).
fn tree(name: &str, files: &[&str]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("find-libclang-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    for f in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"\x7fELF").expect("write");
    }
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn find(root: &Path, libclang_path: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg("--root").arg(root);
    cmd.env_remove("LIBCLANG_PATH")
        .env_remove("LD_LIBRARY_PATH");
    if let Some(p) = libclang_path {
        cmd.env("LIBCLANG_PATH", p);
    }
    cmd.output().expect("run find-libclang.sh")
}

fn found(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected a libclang, got exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn assert_needs_libclang_dev(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "found {:?} where only libclang-cpp exists",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("install libclang-dev"), "{stderr}");
}

#[test]
fn only_libclang_cpp_means_libclang_dev_is_needed() {
    // What the fresh Debian 12 image has: the C++ library, in both places.
    let root = tree(
        "cpp-only",
        &[
            "usr/lib/llvm-14/lib/libclang-cpp.so.14",
            "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14",
            "usr/lib/x86_64-linux-gnu/libclang-cpp.so",
        ],
    );
    assert_needs_libclang_dev(&find(&root, None));
    // LIBCLANG_PATH pointing at that folder does not make it count either.
    let out = find(&root, Some(&root.join("usr/lib/llvm-14/lib")));
    assert_needs_libclang_dev(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("LIBCLANG_PATH"));
}

#[test]
fn every_name_bindgen_loads_is_found_where_clang_sys_looks() {
    for (name, file) in [
        ("plain", "usr/lib/llvm-14/lib/libclang.so"),
        ("versioned", "usr/lib/x86_64-linux-gnu/libclang-14.so.1"),
        ("suffix", "usr/lib/x86_64-linux-gnu/libclang.so.1"),
        ("dash", "usr/lib64/libclang-17.so"),
        ("local", "usr/local/llvm18/lib/libclang.so.18"),
    ] {
        let root = tree(name, &["usr/lib/llvm-14/lib/libclang-cpp.so.14", file]);
        assert_eq!(
            found(&find(&root, None)),
            root.join(file).display().to_string()
        );
    }
}

#[test]
fn libclang_path_is_the_only_place_searched_when_set() {
    let root = tree(
        "env",
        &[
            "usr/lib/llvm-14/lib/libclang.so",
            "opt/clang/libclang-15.so.1",
        ],
    );
    let only = root.join("opt/clang");
    assert_eq!(
        found(&find(&root, Some(&only))),
        only.join("libclang-15.so.1").display().to_string()
    );
    // A file path counts when it is a libclang itself.
    let file = only.join("libclang-15.so.1");
    assert_eq!(found(&find(&root, Some(&file))), file.display().to_string());
    // A folder with none is a refusal, even though the system folders have one.
    let empty = tree("env-empty", &[]);
    assert_needs_libclang_dev(&find(&root, Some(&empty)));
}
