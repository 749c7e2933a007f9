#!/usr/bin/env bash
# Installs what compiling and running the generated Kotlin binding needs,
# when missing: a Java runtime and JNA (Debian's default-jre-headless and
# libjna-java), and the Kotlin compiler 2.4.20 from the npm registry's
# kotlin-compiler package (the JetBrains distribution: kotlinc-jvm, the
# standard library and kotlinx-coroutines-core-jvm), checked against its
# published sha512 and cached in ~/.cache/outpost/kotlinc-2.4.20. Prints
# nothing on success; the Kotlin test (crates/xtask/tests/kotlin_binding.rs)
# finds it there. Needs root (or sudo) for apt.
set -euo pipefail
missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
[[ -f /usr/share/java/jna.jar ]] || missing+=(libjna-java)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "kotlin: installing ${missing[*]} with apt-get"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
version=2.4.20
dest="${HOME}/.cache/outpost/kotlinc-${version}"
[[ -x "$dest/bin/kotlinc" ]] && exit 0
echo "kotlin: fetching kotlin-compiler ${version} from registry.npmjs.org"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$version" "$work/k.tgz" <<'PY'
import base64, hashlib, sys, urllib.request
version, out = sys.argv[1], sys.argv[2]
# The registry's published integrity of kotlin-compiler@2.4.20.
want = "IF5IVM7LpPhA/ntHQQpaVt1yxpaaQovtEVYLyqWMuaLr0XelLPPm7/sM6HLhtcRjjjoSsK7I7lP2kzYJkMy73w=="
url = f"https://registry.npmjs.org/kotlin-compiler/-/kotlin-compiler-{version}.tgz"
data = urllib.request.urlopen(url, timeout=300).read()
got = base64.b64encode(hashlib.sha512(data).digest()).decode()
if got != want:
    sys.exit(f"kotlin-compiler-{version}.tgz: sha512 {got}, expected {want}")
open(out, "wb").write(data)
PY
mkdir -p "$work/x"
tar xzf "$work/k.tgz" -C "$work/x"
chmod +x "$work"/x/package/bin/*
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp" && mv "$work/x/package" "$dest.tmp" && mv "$dest.tmp" "$dest"
