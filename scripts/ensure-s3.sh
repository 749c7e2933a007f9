#!/usr/bin/env bash
# Installs what the fleet's S3 tests need, when missing: moto's
# S3-compatible server (PyPI `moto[server]`, run as `python3 -m
# moto.server`). The tests start one per test binary themselves, on a
# loopback port, with a fresh bucket.
set -euo pipefail
if ! python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
  echo "fleet tests: installing moto[server] with pip"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]==5.2.1"
fi
