# Writes N chat rows whose answers run past 512 tokens (cut there by --max-seq-len 512) to OUT: the
# training data of bench/lora_memory.sh and bench/gpu_bench.sh. Usage: long_chats.py N OUT
import json, random, sys
random.seed(0)
w = "the model answer code world ruler advice money safe quick dinner party wish thought bored husband friend".split()
with open(sys.argv[2], "w") as f:
    for i in range(int(sys.argv[1])):
        f.write(json.dumps({"messages": [{"role": "user", "content": " ".join(random.choice(w) for _ in range(20))},
                                         {"role": "assistant", "content": " ".join(random.choice(w) for _ in range(700))}]}) + "\n")
