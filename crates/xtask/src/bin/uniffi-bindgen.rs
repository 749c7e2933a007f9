//! UniFFI's binding generator, pinned to the version `crates/ffi` uses:
//! `cargo run -p xtask --bin uniffi-bindgen -- generate --library
//! target/release/liboutpost_ffi.so --language python --out-dir DIR`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
