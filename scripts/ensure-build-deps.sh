#!/usr/bin/env bash
# Installs what compiling llama.cpp needs on Debian (cmake; libclang-dev for
# bindgen in llama-cpp-sys-2), and curl for the demo's HTTP calls, when
# missing. Needs root (or sudo).
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# What bindgen loads, found where it looks (libclang-cpp.so does not count).
"$(dirname "$0")/find-libclang.sh" >/dev/null 2>&1 || missing+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "build deps: installing ${missing[*]} with apt-get"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
# Say so now, not as a bindgen panic minutes into the build.
"$(dirname "$0")/find-libclang.sh" >/dev/null
