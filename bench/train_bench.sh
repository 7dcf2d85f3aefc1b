#!/usr/bin/env bash
# Training throughput of emlab (bench/train_bench.cpp, the real trainer) against the same step in
# Python PyTorch (bench/train_bench.py, Debian python3-torch: the same libtorch), at 1 and 2
# threads, full finetuning and LoRA; prints emlab/PyTorch ratios. The two-thread runs are made twice:
# the batch as one micro-batch, and as ACCUM (default 2) micro-batches of BATCH/ACCUM rows (gradient
# accumulation: emlab runs them side by side, PyTorch one after the other).
# Usage: [ROUNDS=R] bench/train_bench.sh [BUILD_DIR]   (build with -DEMLAB_BUILD_BENCH=ON; target train_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
BIN="$BUILD_DIR/bench/train_bench"
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "missing $BIN: cmake -DEMLAB_BUILD_BENCH=ON, then build target train_bench" >&2; exit 1; }
$PY -c "import torch" 2>/dev/null || { echo "missing python3-torch: EMLAB_WITH_PYTORCH=1 scripts/setup.sh" >&2; exit 1; }
ARGS="--batch ${BATCH:-8} --seq ${SEQ:-128} --steps ${STEPS:-6}"
results=$(mktemp)
# ROUNDS > 1 runs every row again, round after round (emlab then PyTorch within seconds of each other),
# and prints each round's ratios: this machine's speed moves between runs, and within one.
for ((round = 1; round <= ${ROUNDS:-1}; ++round)); do
  for run in "1 1" "2 1" "2 ${ACCUM:-2}"; do
    read -r t a <<< "$run"
    echo "== round $round: $t thread(s), $a micro-batch(es) a step"
    tag="s/^RESULT /RESULT round=$round /"
    OMP_NUM_THREADS=$t "$BIN" --threads "$t" --accum "$a" $ARGS | sed "$tag" | tee -a "$results"
    OMP_NUM_THREADS=$t $PY bench/train_bench.py --threads "$t" --accum "$a" $ARGS | sed "$tag" | tee -a "$results"
  done
done
echo "== emlab / PyTorch (training tokens/s; > 1 means emlab is faster)"
# %peak: the weights' products per token (train_bench's count) x tokens/s against the 1024^3 fp32 matmul
# measured in emlab's run. "at peak": the ratio emlab would reach if its step ran at that matmul rate
# throughout (peak / PyTorch's rate), the most any implementation of the same products can reach.
printf "%-6s %7s %6s %5s %14s %14s %7s %12s %14s %8s\n" method threads accum round "emlab tok/s" "pytorch tok/s" ratio \
  "emlab %peak" "pytorch %peak" "at peak"
awk '/^RESULT/ {
  for (i = 2; i <= NF; ++i) { split($i, kv, "="); f[kv[1]] = kv[2] }
  key = f["method"] " " f["threads"] " " f["accum"] " " f["round"]
  tps[f["impl"] " " key] = f["tokens_per_s"]; keys[key] = 1
  if (f["impl"] == "emlab") frac[key] = f["gflops"] / f["peak_gflops"]
} END {
  for (k in keys) { split(k, p, " ");
    pt = frac[k] * tps["pytorch " k] / tps["emlab " k]
    printf "%-6s %7s %6s %5s %14.0f %14.0f %7.2f %11.1f%% %13.1f%% %8.2f\n", p[1], p[2], p[3], p[4], tps["emlab " k],
           tps["pytorch " k], tps["emlab " k] / tps["pytorch " k], 100 * frac[k], 100 * pt, 1 / pt }
}' "$results" | sort -k1,1 -k2,2n -k3,3n -k4,4n
rm -f "$results"
