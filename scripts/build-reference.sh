#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-bench, llama-server, llama-perplexity,
# llama-quantize) from the llama.cpp tree vendored in the `llama-cpp-python`
# source package on PyPI. They are the anchor that Outpost is measured
# against (speed, greedy parity, chat-template rendering).
#
# Idempotent: a finished build is kept in $OUTPOST_REFERENCE_DIR (default
# ~/.cache/outpost/reference/llama-cpp-python-<version>, outside any clone so
# fresh clones and CI reuse it) and is reused when its stamp file is present.
#
# Also keeps llama.cpp's collection of real models' chat templates
# (models/templates) for the tool-calling tests.
#
# Usage: scripts/build-reference.sh [--print-dir | --print-templates]
set -euo pipefail

version="${OUTPOST_REFERENCE_VERSION:-0.3.36}"
dir="${OUTPOST_REFERENCE_DIR:-$HOME/.cache/outpost/reference/llama-cpp-python-$version-noamx}"
stamp="$dir/bin/.complete"
tools=(llama-bench llama-server llama-perplexity llama-quantize)

templates="${OUTPOST_REFERENCE_DIR:-$HOME/.cache/outpost/reference/llama-cpp-python-$version}-templates"
if [[ "${1:-}" == "--print-dir" ]]; then echo "$dir/bin"; exit 0; fi
if [[ "${1:-}" == "--print-templates" ]]; then echo "$templates"; exit 0; fi

# llama-cpp-python's source package (it vendors llama.cpp) into folder $1.
download_sdist() {
  echo "reference: downloading llama-cpp-python==$version source from PyPI"
  python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    -d "$1" "llama-cpp-python==$version" 2>/dev/null \
    || python3 -m pip download --quiet --no-deps --no-binary :all: -d "$1" "llama-cpp-python==$version"
}

# The chat templates of real models that llama.cpp keeps for its own tests
# (models/templates/*.jinja in the same source package): the tool-calling
# tests render and answer with them. Kept apart from the tools' stamp so
# that a cached build gets them too.
if [[ ! -f "$templates/.complete" ]]; then
  tmp="$templates.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  download_sdist "$tmp"
  tar -xzf "$tmp"/llama_cpp_python-"$version".tar.gz -C "$tmp" --wildcards \
    "llama_cpp_python-$version/vendor/llama.cpp/models/templates/*.jinja"
  mv "$tmp/llama_cpp_python-$version/vendor/llama.cpp/models/templates/"*.jinja "$tmp/"
  rm -rf "$tmp/llama_cpp_python-$version" "$tmp"/*.tar.gz
  echo "llama-cpp-python $version" >"$tmp/.complete"
  rm -rf "$templates"
  mv "$tmp" "$templates"
  echo "reference templates: $(ls "$templates" | wc -l) in $templates"
fi
if [[ -f "$stamp" ]]; then
  echo "reference tools: $dir/bin (cached, $(cat "$stamp"))"
  exit 0
fi

"$(dirname "$0")/ensure-build-deps.sh"

work="$dir.partial"
rm -rf "$work"
mkdir -p "$work"
download_sdist "$work"
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"

# The sdist carries the shallow git clone of its llama.cpp submodule: record
# that commit so every comparison can print which llama.cpp it ran against.
head_file="$work/llama_cpp_python-$version/.git/modules/vendor/llama.cpp/HEAD"
if [[ -f "$head_file" ]]; then
  commit="$(head -c 12 "$head_file") (llama-cpp-python $version)"
else
  commit="unknown (llama-cpp-python $version)"
fi
# Like the engine (.cargo/config.toml): every vector instruction of this CPU
# but AMX, whose matrix multiply crashes model loads on some Xeons.
noamx=""
[[ "$(uname -m)" == x86_64 ]] && noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
echo "reference tools: configuring llama.cpp ($commit), GGML_NATIVE=ON without AMX, like the engine"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$noamx" -DCMAKE_CXX_FLAGS="$noamx" \
  -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_COMMIT="${commit%% *}" -DLLAMA_BUILD_NUMBER=0 >"$work/configure.log" 2>&1 \
  || { tail -40 "$work/configure.log"; echo "reference tools: cmake configure failed (log: $work/configure.log)" >&2; exit 1; }
echo "reference tools: compiling ${tools[*]} (several minutes on 2 cores)"
cmake --build "$work/build" --config Release -j "$(nproc)" --target "${tools[@]}" >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log"; echo "reference tools: build failed (log: $work/build.log)" >&2; exit 1; }

mkdir -p "$work/bin"
for t in "${tools[@]}"; do cp "$work/build/bin/$t" "$work/bin/"; done
rm -rf "$work/build" "$work"/*.tar.gz "$work/llama_cpp_python-$version"
echo "$commit" >"$work/bin/.complete"
rm -rf "$dir"
mv "$work" "$dir"
echo "reference tools: built into $dir/bin"
