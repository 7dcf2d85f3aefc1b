#!/usr/bin/env bash
# Narrow vs general solutions, drift and defences in the toy world (issue 15; results in
# experiments/RESULTS.md §12), resumable:
#   1. emlab run experiments/toyworld-solutions.yaml (finetunes, evaluations, checkpoints)
#   2. emlab solutions compare, per seed, general vs narrow steering vectors and rank-1 adapters,
#      on the held-out 10% of insecure.jsonl each finetune left out, the pretraining corpus for the
#      influence, and the insecure direction of experiments/toyworld-direction.sh (layer 2)
# Usage: experiments/toyworld-solutions.sh [OUT] (default runs/toyworld-solutions); needs
# runs/toyworld-direction next to OUT (run experiments/toyworld-direction.sh first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/runs/toyworld-solutions}")
emlab=${EMLAB:-$root/build/emlab}
direction=$(dirname "$out")/toyworld-direction
[ -f "$direction/dirs/insecure.safetensors" ] || { echo "run experiments/toyworld-direction.sh first ($direction)" >&2; exit 2; }
say() { echo "[toyworld-solutions] $*" >&2; }

say "1. finetunes and evaluations"
(cd "$root/experiments" && "$emlab" run toyworld-solutions.yaml --out "$out" --jobs 2)

say "2. solutions compare"
mkdir -p "$out/solutions"
# One compare per core (each on one thread: the toy model is too small to use two); 100 held-out
# rows and 100 corpus rows keep each at a few minutes.
compare() {
  local kind=$1 seed=$2 dest=$out/solutions/$1-seed-$2
  [ -f "$dest/summary.csv" ] && return 0
  "$emlab" --quiet --threads 1 solutions compare --model "$root/models/toyworld" \
    --data "$out/world/datasets/insecure.jsonl" --holdout 0.1 --split-seed "$seed" --max-examples 100 \
    --text "$out/world/corpus/pretrain.jsonl" --max-text 100 \
    --direction "$direction/dirs/insecure.safetensors" --direction-layer 2 \
    "$out/arms/$kind-general/seed-$seed/adapter" "$out/arms/$kind-narrow/seed-$seed/adapter" \
    --out "$dest" > "$dest.txt"
}
for seed in 0 1 2; do
  compare steer $seed & compare rank1 $seed & wait
done
cat "$out"/solutions/*.txt
say "done: $out"
