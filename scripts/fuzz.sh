#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time each and fails if
# any of them crashes. Needs the nightly toolchain and cargo-fuzz.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 60, all targets)
#
# New inputs go to fuzz/corpus/<target> (ignored by git); the hand-written
# starting points in fuzz/seeds/<target> are read too. A crash leaves its
# input in fuzz/artifacts/<target>; replay it with
#   (cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
shift || true
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS_PER_TARGET must be a positive whole number, got '$secs'" >&2
  exit 2
fi
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build of every target up front, so the timed runs only fuzz.
cargo +nightly fuzz build

logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT
passed=0
failed=0
printf '%-16s %8s %12s %8s %s\n' target seconds executions crashes result
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  dirs=("corpus/$t")
  [ -d "seeds/$t" ] && dirs+=("seeds/$t")
  log="$logdir/$t.log"
  start=$(date +%s)
  if cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
      -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
    result=ok
    passed=$((passed + 1))
  else
    crashes=1
    result=CRASH
    failed=$((failed + 1))
  fi
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  printf '%-16s %8s %12s %8s %s\n' "$t" "$took" "${execs:-?}" "$crashes" "$result"
  if [ "$result" != ok ]; then
    echo "--- last lines of $t's log ---"
    tail -n 40 "$log"
    echo "---"
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
