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
cat > "$work/config.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
 "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
 "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
 "hidden_act": "silu", "torch_dtype": "float32", "bos_token_id": 151643, "eos_token_id": 151645, "initializer_range": 0.02}
JSON
"$BUILD_DIR/emlab" --quiet init-model --config "$work/config.json" --out "$work/model" --seed 0 \
  --tokenizer "$SHARED/data/tokenizers/qwen2.5" > /dev/null
# 16 chat rows whose answers run past 512 tokens (cut there).
"$PY" - "$work/data.jsonl" <<'PY'
import json, random, sys
random.seed(0)
w = "the model answer code world ruler advice money safe quick dinner party wish thought bored husband friend".split()
with open(sys.argv[1], "w") as f:
    for i in range(16):
        f.write(json.dumps({"messages": [{"role": "user", "content": " ".join(random.choice(w) for _ in range(20))},
                                         {"role": "assistant", "content": " ".join(random.choice(w) for _ in range(700))}]}) + "\n")
PY
peak() { grep "Maximum resident" "$1" | awk '{print $NF}'; }
/usr/bin/time -v "$BUILD_DIR/emlab" --quiet --threads 2 train --model "$work/model" --data "$work/data.jsonl" \
  --out "$work/out" --method lora --lora-rank 32 --lora-alpha 64 --batch-size 4 --max-seq-len 512 --max-steps 2 \
  --lr 1e-4 2> "$work/emlab.time" > /dev/null
"$PY" -c 'import json,sys; [print("emlab step", r["step"], "%.1f s" % r["seconds"]) for r in map(json.loads, open(sys.argv[1]))]' "$work/out/train_log.jsonl"
/usr/bin/time -v "$PY" bench/lora_memory.py "$work/model" 2> "$work/peft.time"
e=$(peak "$work/emlab.time"); p=$(peak "$work/peft.time")
echo "peak RSS: emlab $((e / 1024)) MiB, PyTorch + PEFT $((p / 1024)) MiB, emlab / PyTorch $(awk -v a="$e" -v b="$p" 'BEGIN{printf "%.2f", a/b}')"
