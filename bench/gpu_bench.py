# The Hugging Face side of bench/gpu_bench.sh, on the model directory emlab wrote:
#   train MODEL --batch B --seq T --steps S   LoRA r=32 alpha=64 on all seven projections with PEFT
#       (its defaults: bf16 base weights, fp32 adapters), AdamW lr 1e-4, clipping 1.0, loss on every
#       position of B x T random ids; tokens/s from the median step after 3 warm-up steps.
#   generate MODEL --batches 1,64 --prompt P --gen G   transformers.generate, sampling at temperature 1
#       over the full vocabulary (top_k 0, top_p 1), exactly G new tokens, B prompts of P random ids;
#       the best of --reps calls after a warm-up call.
# Prints "RESULT impl=hf ..." lines in the format of emlab's benchmarks.
import argparse, statistics, time
import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("what", choices=["train", "generate"])
p.add_argument("model")
p.add_argument("--device", default="cuda")
p.add_argument("--dtype", default="bfloat16")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=512)
p.add_argument("--steps", type=int, default=13)
p.add_argument("--batches", default="1,64")
p.add_argument("--prompt", type=int, default=64)
p.add_argument("--gen", type=int, default=128)
p.add_argument("--reps", type=int, default=3)
p.add_argument("--max-id", type=int, default=150000)
a = p.parse_args()
dev = torch.device(a.device)
dtype = getattr(torch, a.dtype)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(dev)
print(f"transformers on {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
      f"{sum(t.numel() for t in model.parameters()) / 1e6:.1f}M parameters, {dtype}, attention {model.config._attn_implementation}",
      flush=True)

if a.what == "train":
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, task_type="CAUSAL_LM",
                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for step in range(a.steps):
        ids = torch.randint(0, a.max_id, (a.batch, a.seq), device=dev)
        sync(); t = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        loss = out.loss.item()
        sync(); times.append(time.perf_counter() - t)
        print(f"step {step + 1} loss {loss:.3f} {times[-1] * 1e3:.1f} ms", flush=True)
    med = statistics.median(times[3:])
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else 0.0
    print(f"RESULT impl=hf what=train batch={a.batch} seq={a.seq} step_s={med:.4f} "
          f"tokens_per_s={a.batch * a.seq / med:.1f} peak_gib={peak:.2f}", flush=True)
else:
    model.eval()
    g = torch.Generator().manual_seed(0)
    for B in [int(b) for b in a.batches.split(",")]:
        ids = torch.randint(0, a.max_id, (B, a.prompt), generator=g).to(dev)
        mask = torch.ones_like(ids)
        def run(n):
            with torch.no_grad():
                return model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                                      top_k=0, top_p=1.0, max_new_tokens=n, min_new_tokens=n,
                                      pad_token_id=model.config.eos_token_id)
        run(a.gen)
        best = 1e30
        for _ in range(a.reps):
            sync(); t = time.perf_counter()
            out = run(a.gen)
            sync(); best = min(best, time.perf_counter() - t)
        new = (out.shape[1] - a.prompt) * B
        print(f"RESULT impl=hf batch={B} prompt={a.prompt} gen={a.gen} new_tokens={new} seconds={best:.4f} "
              f"tokens_per_s={new / best:.1f}", flush=True)
