//! `include/outpost.h` is what cbindgen makes of the crate now: a change
//! to the C ABI that is not in the committed header fails here. Run with
//! `OUTPOST_BLESS=1` to write the header anew (then commit it).

use std::path::PathBuf;

#[test]
fn the_committed_header_matches_the_code() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads the crate");
    let mut made = Vec::new();
    bindings.write(&mut made);
    let made = String::from_utf8(made).expect("utf-8");
    let path = dir.join("include/outpost.h");
    if std::env::var_os("OUTPOST_BLESS").is_some() {
        std::fs::write(&path, &made).expect("write the header");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == made,
        "{} differs from what the code declares; regenerate it with OUTPOST_BLESS=1 cargo test --release -p outpost-ffi --test header and commit it",
        path.display()
    );
    for f in [
        "outpost_abi_version",
        "outpost_last_error",
        "outpost_model_open",
        "outpost_chat",
        "outpost_cancel_trigger",
        "outpost_guard_redact",
        "outpost_redaction_restore",
    ] {
        assert!(made.contains(f), "{f} is missing from the header");
    }
}
