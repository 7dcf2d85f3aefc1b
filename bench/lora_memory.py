# The PyTorch + PEFT side of bench/lora_memory.sh: LoRA r=32 alpha=64 on all seven projections of
# the model in argv[1] (fp32), AdamW, batch 4 x 512 random tokens, 2 steps, 2 threads.
import sys, time, torch
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model
torch.set_num_threads(2)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, 151936, (4, 512))
for step in range(2):
    t = time.time()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step(); opt.zero_grad()
    print(f"step {step+1} loss {out.loss.item():.3f} {time.time()-t:.1f} s", flush=True)
