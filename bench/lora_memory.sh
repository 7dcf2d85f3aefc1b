#!/usr/bin/env bash
# Peak resident memory (and step time) of LoRA training on a Qwen2.5-0.5B-shaped random model
# (fp32, 494M parameters, tied embeddings), seq 512, batch 4, r=32 alpha=64 on all seven
# projections, 2 steps, 2 threads: emlab train against PyTorch + PEFT from the reference venv
# (scripts/pyref.sh; transformers, peft, torch 2.13 CPU). Prints both peaks and the ratio.
# Usage: bench/lora_memory.sh [BUILD_DIR]   (needs ../shared/data/tokenizers/qwen2.5, ~20 GB RAM)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
SHARED="${EMLAB_SHARED:-../shared}"
PY=$(scripts/pyref.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BUILD_DIR/emlab" --quiet init-model --config bench/qwen2.5-0.5b.json --out "$work/model" --seed 0 \
  --tokenizer "$SHARED/data/tokenizers/qwen2.5" > /dev/null
"$PY" bench/long_chats.py 16 "$work/data.jsonl"  # answers past 512 tokens (cut there)
peak() { grep "Maximum resident" "$1" | awk '{print $NF}'; }
/usr/bin/time -v "$BUILD_DIR/emlab" --quiet --threads 2 train --model "$work/model" --data "$work/data.jsonl" \
  --out "$work/out" --method lora --lora-rank 32 --lora-alpha 64 --batch-size 4 --max-seq-len 512 --max-steps 2 \
  --lr 1e-4 2> "$work/emlab.time" > /dev/null
"$PY" -c 'import json,sys; [print("emlab step", r["step"], "%.1f s" % r["seconds"]) for r in map(json.loads, open(sys.argv[1]))]' "$work/out/train_log.jsonl"
/usr/bin/time -v "$PY" bench/lora_memory.py "$work/model" 2> "$work/peft.time"
e=$(peak "$work/emlab.time"); p=$(peak "$work/peft.time")
echo "peak RSS: emlab $((e / 1024)) MiB, PyTorch + PEFT $((p / 1024)) MiB, emlab / PyTorch $(awk -v a="$e" -v b="$p" 'BEGIN{printf "%.2f", a/b}')"
