#!/usr/bin/env bash
# Installs what the aarch64 Linux build and its test need, when missing:
# Debian's cross gcc/g++ (gcc-aarch64-linux-gnu, which brings the arm64
# libc and libgomp), qemu-user (qemu-aarch64 runs the result), and the
# rustup target. Needs root (or sudo) for apt.
set -euo pipefail
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "cross build: installing ${missing[*]} with apt-get"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  echo "cross build: adding the rustup target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi
