#!/usr/bin/env bash
# Allocator benchmark: the toy-world pretraining step as the shipped recipe runs it (2 processes x
# 1 thread, the first STEPS steps) with the tcmalloc emlab links against the same binary with
# glibc's malloc put back by an LD_PRELOAD shim (bench/glibc_malloc_shim.c), alternating runs;
# prints seconds per step for each and the ratio, and checks that both runs wrote identical weights.
# Usage: bench/malloc_bench.sh [BUILD_DIR] [STEPS] [PROCS]   (targets emlab_cli and glibc_malloc_shim)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
STEPS="${2:-60}"
PROCS="${3:-2}"
BIN="$BUILD_DIR/emlab"
SHIM="$BUILD_DIR/bench/libglibc_malloc_shim.so"
for f in "$BIN" "$SHIM"; do [ -e "$f" ] || { echo "missing $f: build targets emlab_cli and glibc_malloc_shim" >&2; exit 1; }; done
ldd "$BIN" | grep -q tcmalloc || { echo "$BIN is not linked with tcmalloc (EMLAB_TCMALLOC=OFF?)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN" --quiet world generate --seed 0 --out "$work/world" >/dev/null
run() {  # $1 = tag, $2 = LD_PRELOAD value; prints seconds per step (train_log elapsed / steps)
  rm -rf "$work/$1"
  LD_PRELOAD="$2" "$BIN" --quiet world pretrain --world "$work/world" --out "$work/$1" \
    --steps "$STEPS" --procs "$PROCS" >/dev/null
  python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(r[-1]['elapsed']/len(r))" \
    "$work/$1/train_log.jsonl"
}
declare -a tc gl
for i in 1 2; do
  gl+=("$(run glibc "$(realpath "$SHIM")")")
  tc+=("$(run tcmalloc "")")
done
cmp -s "$work/glibc/model.safetensors" "$work/tcmalloc/model.safetensors" && same=yes || same=NO
python3 - "${gl[@]}" "${tc[@]}" "$same" <<'PY'
import sys
v = sys.argv[1:-1]
g, t, same = [float(x) for x in v[:len(v) // 2]], [float(x) for x in v[len(v) // 2:]], sys.argv[-1]
print(f"glibc malloc: {min(g):.3f} s/step (runs {', '.join(f'{x:.3f}' for x in g)})")
print(f"tcmalloc:     {min(t):.3f} s/step (runs {', '.join(f'{x:.3f}' for x in t)})")
print(f"tcmalloc speed-up: {min(g) / min(t):.2f}x (best of each); identical weights: {same}")
PY
