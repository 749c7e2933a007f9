#!/usr/bin/env bash
# Where a scheduler step's time goes: `perf record` of `outpost bench
# --parallel N --draft-max 0` (greedy decode, no drafting) on each model at
# 4 and 16 sequences, with the samples grouped by what they are: llama.cpp's
# compute, its OpenMP barriers, copies (logits out), sampling, the
# scheduler's own Rust code, allocation, other threads. Needs `perf`
# (Debian: linux-perf) and a release build (cargo build --release).
# Usage: scripts/profile-step.sh [MODEL ...]   (default: both models)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "profile-step: needs perf (apt-get install linux-perf)" >&2; exit 1; }
bin=target/release/outpost
[ -x "$bin" ] || { echo "profile-step: build first: cargo build --release" >&2; exit 1; }
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(smollm2-135m gemma3-270m)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for m in "${models[@]}"; do
  for n in 4 16; do
    perf record -q -F 999 -o "$out/p.data" "$bin" bench "$m" -p 0 -g 0 --parallel "$n" \
      --draft-max 0 -t 2 --parallel-tokens 256 --json >"$out/bench.json" 2>/dev/null
    perf report -i "$out/p.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null \
      | grep -E '^ +[0-9]' >"$out/report.txt" || true
    python3 - "$m" "$n" "$out/report.txt" "$out/bench.json" <<'PY'
import collections, json, re, sys
model, n, report, bench = sys.argv[1:]
def kind(comm, dso, sym):
    if comm != "outpost-schedul":
        return "other threads"
    if "libgomp" in dso:
        return "OpenMP barriers"
    if "Sequence::step" in sym or "argmax" in sym:
        return "sampling"
    if "mem" in sym and ("move" in sym or "cpy" in sym or "set" in sym):
        return "copies"
    if "malloc" in sym or "free" in sym:
        return "malloc/free"
    if "outpost" in sym or sym.startswith(("core::", "alloc::", "std::sync", "std::thread")):
        return "scheduler (Rust)"
    if "kernel" in dso:
        return "kernel"
    return "llama.cpp compute"
share = collections.Counter()
for line in open(report):
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(\S+)\s+\[.\]\s+(.*)", line)
    if m:
        share[kind(m[2], m[3], m[4])] += float(m[1])
tps = json.load(open(bench))["parallel"][0]["aggregate_ts"]
print(f"{model} x{n} ({tps:.1f} t/s): " + ", ".join(f"{k} {v:.1f} %" for k, v in share.most_common()))
PY
  done
done
