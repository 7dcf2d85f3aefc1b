#!/usr/bin/env bash
# On a machine with a GPU and emlab built against a CUDA libtorch: the GPU test suites (emlab on
# CUDA against the CPU), then, on a Qwen2.5-0.5B-shaped random model in bf16 (494M parameters, the
# Qwen2.5 tokenizer), LoRA training tokens/s (r=32 alpha=64 on all seven projections, batch 8 x 512,
# loss on every token) against transformers + PEFT, and sampling tokens/s (temperature 1, 64-token
# prompts, 128 new tokens, batch 1 and 64) against transformers.generate, emlab with its decoding
# steps replayed as CUDA graphs (the default) and without. Prints emlab / HF ratios.
# Usage: bench/gpu_bench.sh [BUILD_DIR]
#   PY      python with torch (CUDA), transformers and peft (default python3)
#   TOK     tokenizer folder (default $EMLAB_SHARED/data/tokenizers/qwen2.5, EMLAB_SHARED=../shared)
#   OUTDIR  where the logs go (default a temporary folder)
set -uo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
PY="${PY:-python3}"
TOK="${TOK:-${EMLAB_SHARED:-../shared}/data/tokenizers/qwen2.5}"
work=$(mktemp -d)
OUTDIR="${OUTDIR:-$work}"
mkdir -p "$OUTDIR"
trap 'rm -rf "$work"' EXIT
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print("GPU:", torch.cuda.get_device_name())' || exit 1
[ -f "$TOK/tokenizer_config.json" ] || { echo "no tokenizer at $TOK (set TOK or EMLAB_SHARED)" >&2; exit 1; }

echo "== GPU test suites"
for t in "$B"/tests/emlab_test_*_gpu; do
  [ -x "$t" ] && { "$t" --gtest_brief=1 2>&1 | tail -n 30 | tee "$OUTDIR/$(basename "$t").log"; }
done

echo "== model"
"$B/emlab" --quiet init-model --config bench/qwen2.5-0.5b.json --out "$work/model" --seed 0 --dtype bfloat16 \
  --tokenizer "$TOK" || exit 1
"$PY" bench/long_chats.py 112 "$work/data.jsonl"  # 8 x 14 rows, each cut to exactly 512 tokens

results="$OUTDIR/results.txt"
: > "$results"
echo "== LoRA training, batch 8 x 512, bf16"
"$B/emlab" --quiet train --model "$work/model" --data "$work/data.jsonl" --out "$work/train" --device cuda \
  --dtype bfloat16 --method lora --lora-rank 32 --lora-alpha 64 --batch-size 8 --max-seq-len 512 --max-steps 13 \
  --lr 1e-4 --train-on-all-tokens --bucket-factor 1 2>&1 | tail -n 5
"$PY" - "$work/train/train_log.jsonl" <<'PY' | tee -a "$results"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows: print(f"emlab step {r['step']} loss {r['loss']:.3f} {r['seconds'] * 1e3:.1f} ms tokens {r['tokens']}")
s = statistics.median(r["seconds"] for r in rows[3:])
print(f"RESULT impl=emlab what=train batch=8 seq=512 step_s={s:.4f} tokens_per_s={8 * 512 / s:.1f}")
PY
"$PY" bench/gpu_bench.py train "$work/model" --batch 8 --seq 512 --steps 13 2>&1 | grep -v Warning | tee -a "$results"

echo "== sampling, temperature 1, 64-token prompts, 128 new tokens, bf16"
"$B/bench/generate_bench" --model "$work/model" --device cuda --dtype bfloat16 --batches 1,64 --prompt 64 --gen 128 \
  2>&1 | tee -a "$results"
"$PY" bench/gpu_bench.py generate "$work/model" --batches 1,64 --prompt 64 --gen 128 2>&1 | grep -v Warning | tee -a "$results"

echo "== emlab / HF (tokens/s; > 1 means emlab is faster)"
awk '/^RESULT/ {
  delete f; for (i = 2; i <= NF; ++i) { split($i, kv, "="); f[kv[1]] = kv[2] }
  key = (f["what"] == "train" ? "LoRA training" : "sampling") " batch " f["batch"]; keys[key] = 1
  tps[f["impl"] "|" key] = f["tokens_per_s"]
} END {
  for (k in keys) if (tps["hf|" k] > 0) {
    printf "%-24s emlab %10.0f  HF %10.0f  ratio %.2f", k, tps["emlab|" k], tps["hf|" k], tps["emlab|" k] / tps["hf|" k]
    if (tps["emlab-eager|" k] > 0)
      printf "   (without CUDA graphs: emlab %.0f, ratio %.2f)", tps["emlab-eager|" k], tps["emlab-eager|" k] / tps["hf|" k]
    printf "\n"
  }
}' "$results" | sort | tee "$OUTDIR/ratios.txt"
