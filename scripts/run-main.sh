#!/usr/bin/env bash
# The README's main job: the papers' main experiment in the toy world, on the shipped model
# (models/toyworld). Installs what is missing and builds (scripts/setup.sh), then runs
#   emlab run experiments/toyworld-main.yaml --out runs/toyworld-main
# and prints the arms table and where the report is. Resumable: re-running continues (or, when
# finished, only reprints the table). Extra arguments go to `emlab run` (e.g. --max-seeds 1).
# Environment: EMLAB_BUILD_DIR (default build), EMLAB_MAIN_OUT (default runs/toyworld-main).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
BUILD_DIR="${EMLAB_BUILD_DIR:-build}"
OUT="${EMLAB_MAIN_OUT:-runs/toyworld-main}"

echo "== emlab run experiments/toyworld-main.yaml --out $OUT"
start=$(date +%s)
# One finetune / evaluation per core, each on one thread: the fastest use of cores for a model this
# small (one small step does not speed up with more threads).
"$BUILD_DIR/emlab" run experiments/toyworld-main.yaml --out "$OUT" --jobs "$(nproc)" "$@"
echo "== done in $(( $(date +%s) - start )) s; table: $OUT/arms.csv; report: $OUT/report.html"
