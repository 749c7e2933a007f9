#!/usr/bin/env bash
# Finds the libclang that bindgen (through clang-sys, which llama-cpp-sys-2's
# build uses) would load, and prints its path; exits 1 when there is none, so
# that libclang-dev must be installed. It searches where clang-sys searches:
# only $LIBCLANG_PATH (a file or a folder) when that is set; otherwise
# `llvm-config --prefix`'s lib folders, $LD_LIBRARY_PATH, and the system
# folders /usr/local/llvm*/lib*, /usr/local/lib*[/*[/*]], /usr/lib*[/*[/*]].
# Names that count: libclang.so, libclang-N.so, libclang.so.N, libclang-N.so.M.
# libclang-cpp.so.N is a different library (the C++ API) and never counts:
# Debian ships it with clang's other packages, without libclang.so.
#
#   scripts/find-libclang.sh               # this machine
#   scripts/find-libclang.sh --root DIR    # a file tree under DIR instead of /
#                                          # (for tests; skips llvm-config)
set -euo pipefail
root=""
if [[ "${1:-}" == "--root" ]]; then
  root="${2:?--root needs a folder}"
  root="${root%/}"
fi
shopt -s nullglob

# Prints the libclang files in folder $1, one a line.
in_dir() {
  local d="$1" f name
  [[ -d "$d" ]] || return 0
  for f in "$d"/libclang.so "$d"/libclang-*.so "$d"/libclang.so.* "$d"/libclang-*.so.*; do
    name="${f##*/}"
    [[ "$name" == *-cpp.* ]] && continue
    [[ -e "$f" ]] && echo "$f"
  done
  return 0
}

found=()
if [[ -n "${LIBCLANG_PATH:-}" ]]; then
  p="$LIBCLANG_PATH"
  if [[ -f "$p" ]]; then
    name="${p##*/}"
    while read -r f; do [[ "${f##*/}" == "$name" ]] && found+=("$f"); done < <(in_dir "$(dirname "$p")")
  else
    while read -r f; do found+=("$f"); done < <(in_dir "$p")
  fi
else
  dirs=()
  if [[ -z "$root" ]] && command -v llvm-config >/dev/null 2>&1; then
    prefix="$(llvm-config --prefix 2>/dev/null || true)"
    [[ -n "$prefix" ]] && dirs+=("$prefix/bin" "$prefix/lib" "$prefix/lib64")
  fi
  if [[ -n "${LD_LIBRARY_PATH:-}" ]]; then
    IFS=: read -r -a ld <<<"$LD_LIBRARY_PATH"
    dirs+=("${ld[@]}")
  fi
  # Quoted, so that they are expanded only under $root, not first against /.
  for pattern in '/usr/local/llvm*/lib*' '/usr/local/lib*/*/*' '/usr/local/lib*/*' '/usr/local/lib*' \
                 '/usr/lib*/*/*' '/usr/lib*/*' '/usr/lib*'; do
    for d in $root$pattern; do dirs+=("$d"); done
  done
  for d in "${dirs[@]}"; do
    while read -r f; do found+=("$f"); done < <(in_dir "$d")
  done
fi

if [[ ${#found[@]} -eq 0 ]]; then
  echo "find-libclang: no libclang that bindgen can load (libclang.so, libclang-N.so[.M]); install libclang-dev${LIBCLANG_PATH:+, or point LIBCLANG_PATH at a folder that has one (now: $LIBCLANG_PATH)}" >&2
  exit 1
fi
echo "${found[0]}"
