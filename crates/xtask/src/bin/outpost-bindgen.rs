//! UniFFI's binding generator, pinned to the version `crates/ffi` uses:
//! `cargo run --release -p xtask --bin outpost-bindgen -- generate --library
//! target/release/liboutpost_ffi.so --language python|kotlin|swift
//! --out-dir DIR`. Not named `uniffi-bindgen`: maturin would then build it
//! with `cargo run` in the dev profile (llama.cpp a second time);
//! `scripts/build-wheel.sh` hands it to maturin on PATH instead.

fn main() {
    uniffi::uniffi_bindgen_main()
}
