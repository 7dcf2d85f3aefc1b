#!/usr/bin/env bash
# The toy world's pretraining recipe (models/toyworld/README.md: 2 processes x 1 thread, batch 32,
# one document per row) timed for its first STEPS optimizer steps by two emlab builds, alternating,
# ROUNDS times: a reference build (e.g. an earlier commit's) and this one. The data order and the
# tokens of each step do not depend on the build, so the ratio of their steps/s is the speed-up of
# the recipe. Extra arguments go to both `emlab world pretrain` commands (e.g. --hidden 192);
# NEW_ARGS to this build's only (e.g. NEW_ARGS="--dtype bfloat16").
# Usage: bench/pretrain_bench.sh REF_BUILD_DIR [BUILD_DIR] [-- extra args]
# Environment: STEPS (default 200), ROUNDS (default 2), NEW_ARGS, WORLD (a world folder; default:
# generated into a temporary folder with seed 0, as the shipped model's).
set -euo pipefail
cd "$(dirname "$0")/.."
REF="${1:?usage: bench/pretrain_bench.sh REF_BUILD_DIR [BUILD_DIR] [-- extra args]}"
shift
BUILD=build
if [ $# -gt 0 ] && [ "$1" != "--" ]; then BUILD="$1"; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
STEPS="${STEPS:-200}"
ROUNDS="${ROUNDS:-2}"
for b in "$REF" "$BUILD"; do
  [ -x "$b/emlab" ] || { echo "missing $b/emlab" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
WORLD="${WORLD:-}"
if [ -z "$WORLD" ]; then
  WORLD="$tmp/world"
  "$BUILD/emlab" world generate --seed 0 --out "$WORLD" > /dev/null
fi

# Seconds of the STEPS steps (the trainer's elapsed at the last step, set-up excluded).
run() {
  local bin="$1" out="$tmp/model"
  rm -rf "$out"
  "$bin/emlab" --threads 1 world pretrain --world "$WORLD" --out "$out" --seed 0 --steps "$STEPS" \
    --batch-size 32 --procs 2 "${@:2}" > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
  python3 - "$out/train_log.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# From the end of step 1 (set-up, first allocations) to the end of the last step.
print(f"{rows[-1]['elapsed'] - rows[0]['elapsed']:.3f} {sum(r['tokens'] for r in rows[1:])} {rows[-1]['loss']:.6f}")
EOF
}

echo "pretraining recipe, steps 2-$STEPS, 2 processes x 1 thread; ref=$REF new=$BUILD $* ${NEW_ARGS:-}"
printf "%-6s %10s %10s %10s %10s %8s\n" round "ref s" "new s" "ref tok/s" "new tok/s" "new/ref"
for r in $(seq 1 "$ROUNDS"); do
  read -r ref_s tokens ref_loss < <(run "$REF" "$@")
  # shellcheck disable=SC2086
  read -r new_s tokens2 new_loss < <(run "$BUILD" "$@" ${NEW_ARGS:-})
  [ "$tokens" = "$tokens2" ] || { echo "the builds trained on different tokens ($tokens vs $tokens2)" >&2; exit 1; }
  awk -v r="$r" -v a="$ref_s" -v b="$new_s" -v t="$tokens" \
    'BEGIN { printf "%-6s %10.1f %10.1f %10.0f %10.0f %8.2f\n", r, a, b, t / a, t / b, a / b }'
  echo "       final loss: ref $ref_loss new $new_loss"
done
