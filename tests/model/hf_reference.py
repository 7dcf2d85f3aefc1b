"""Reference logits from Hugging Face `transformers` and `peft` for tests/model/hf_reference_test.cpp.

Usage: hf_reference.py WORK_DIR

Reads WORK_DIR/request.json:
  {"parts": ["logits", "peft", "emlab"],          # what to compute (the tests that run ask for theirs)
   "emlab": [{"name", "model", "adapter": dir or ""}]}   # models (and adapters) written by emlab

and writes WORK_DIR/expected.json plus one safetensors file per case (all float32 logits):

logits: one tiny random model per architecture emlab loads, configured with AutoConfig.for_model
  (nothing is downloaded), every norm weight and bias randomised (random init leaves them at 1/0,
  which hides mistakes), saved with save_pretrained (safetensors) into WORK_DIR/<case>/model.
  Tensors: input_ids / attention_mask (B, T) left-padded prompts of different lengths;
  prefill_logits (B, T, V) of the prompt with use_cache; step_logits (N, B, V) of greedy decoding
  one token at a time through the cache (attention_mask grown by one, position_ids = next
  position, as emlab's generator feeds them); tokens (B, N + 1) the greedy tokens (checked here
  against model.generate); full_ids / full_mask / full_logits (B, T + N, V) the prompt and the
  continuation in one call without the cache. "min_gap": the smallest top-1 minus top-2 logit of
  a greedy choice (a near tie could flip under a 1e-5 difference).
peft: LoRA adapters written by peft (init_lora_weights=False, lora_B redrawn, so they change the
  output) on some of those bases: several target sets, rsLoRA, layers_to_transform, a
  rank_pattern/alpha_pattern whose file order matters. Tensors: logits (B, T, V) of the PeftModel,
  merged_logits after merge_and_unload.
emlab: every model emlab saved is loaded with AutoModelForCausalLM.from_pretrained (no missing,
  unexpected or resized tensors allowed), and its adapter with PeftModel.from_pretrained; tensors:
  logits (B, T, V) on the batch of input_ids / attention_mask written with them.

One process for the whole suite: importing torch and transformers costs seconds.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

torch.set_num_threads(1)

TINY = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
            initializer_range=0.2, rms_norm_eps=1e-6, max_position_embeddings=64, bos_token_id=1,
            eos_token_id=2, pad_token_id=0)

# Each case exercises what its architecture has beyond the plain Llama block.
CASES = {
    # attention_bias (q, k, v, o) and mlp_bias; head_dim given explicitly, not hidden / heads.
    "llama": ("llama", dict(num_hidden_layers=2, attention_bias=True, mlp_bias=True, head_dim=16)),
    # Llama 3.1 frequency scaling with a short original context, tied embeddings.
    "llama3": ("llama", dict(num_hidden_layers=2, tie_word_embeddings=True,
                             rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                             rope_theta=500000.0)),
    # q/k/v biases; use_sliding_window with max_window_layers = 1: layers 1 and 2 slide (window 4).
    "qwen2": ("qwen2", dict(num_hidden_layers=3, use_sliding_window=True, sliding_window=4, max_window_layers=1,
                            tie_word_embeddings=True)),
    # q_norm / k_norm, head_dim 16 != 32 / 4, attention_bias.
    "qwen3": ("qwen3", dict(num_hidden_layers=2, head_dim=16, attention_bias=True)),
    # Sliding window 5, smaller than the longest prompt.
    "mistral": ("mistral", dict(num_hidden_layers=2, sliding_window=5)),
    # Softcapping small enough to bend the scores and logits; query_pre_attn_scalar != head_dim;
    # sliding (window 4) / full / sliding layers.
    "gemma2": ("gemma2", dict(num_hidden_layers=3, head_dim=16, sliding_window=4, query_pre_attn_scalar=24,
                              attn_logit_softcapping=2.0, final_logit_softcapping=3.0)),
    # q/k norms, local RoPE base 100 vs global 1e6 with linear scaling, explicit layer_types; its
    # attn_logit_softcapping is set but Gemma 3 ignores it (as emlab must); final softcapping 5.
    "gemma3_text": ("gemma3_text", dict(num_hidden_layers=4, head_dim=16, sliding_window=4,
                                        query_pre_attn_scalar=32, rope_theta=1e6, rope_local_base_freq=100.0,
                                        rope_scaling={"rope_type": "linear", "factor": 8.0},
                                        layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                     "sliding_attention"],
                                        attn_logit_softcapping=2.0, final_logit_softcapping=5.0)),
}

PROMPT_LENGTHS = [13, 6, 1]  # batch rows, left-padded to the longest
DECODE_STEPS = 6


def batch(seed, lengths=PROMPT_LENGTHS):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, T - n:] = torch.randint(3, 96, (n,), generator=g)
        mask[i, T - n:] = 1
    return ids, mask


def positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


def randomise(model, seed):
    """Norm weights and biases away from their initial 1 (Gemma: 0) / 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                p.add_(0.3 * torch.randn(p.shape, generator=g))


def make_model(case, seed):
    model_type, extra = CASES[case]
    config = AutoConfig.for_model(model_type, **TINY, **extra)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    randomise(model, seed + 1)
    return model


def forward(model, ids, mask, **kw):
    return model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), **kw)


def logits_case(work, case, seed):
    model = make_model(case, seed)
    d = os.path.join(work, case)
    model.save_pretrained(os.path.join(d, "model"), safe_serialization=True)
    ids, mask = batch(seed + 2)
    B, T = ids.shape
    with torch.no_grad():
        out = forward(model, ids, mask, use_cache=True)
        prefill = out.logits
        cache = out.past_key_values
        steps, gaps = [], []
        nxt = prefill[:, -1].argmax(-1)
        tokens = [nxt]
        gaps.append(prefill[:, -1].topk(2).values.diff(dim=-1).abs().min())
        step_mask = mask.clone()
        next_pos = mask.sum(-1)
        for _ in range(DECODE_STEPS):
            step_mask = torch.cat([step_mask, torch.ones(B, 1, dtype=torch.long)], 1)
            out = model(input_ids=nxt[:, None], attention_mask=step_mask, position_ids=next_pos[:, None],
                        past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1]
            steps.append(logits)
            gaps.append(logits.topk(2).values.diff(dim=-1).abs().min())
            nxt = logits.argmax(-1)
            tokens.append(nxt)
            next_pos = next_pos + 1
        tokens = torch.stack(tokens, 1)  # (B, N + 1)
        # transformers' own greedy search agrees with the loop above.
        model.generation_config.eos_token_id = None
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=DECODE_STEPS + 1, do_sample=False,
                             pad_token_id=0)
        if not torch.equal(gen[:, T:], tokens):
            raise SystemExit(f"{case}: model.generate {gen[:, T:].tolist()} != step loop {tokens.tolist()}")
        full_ids = torch.cat([ids, tokens[:, :DECODE_STEPS]], 1)
        full_mask = torch.cat([mask, torch.ones(B, DECODE_STEPS, dtype=torch.long)], 1)
        full = forward(model, full_ids, full_mask).logits
    tensors = {"input_ids": ids, "attention_mask": mask, "prefill_logits": prefill,
               "step_logits": torch.stack(steps), "tokens": tokens, "full_ids": full_ids, "full_mask": full_mask,
               "full_logits": full}
    path = os.path.join(d, "reference.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)
    return {"model": os.path.join(d, "model"), "tensors": path, "min_gap": float(min(gaps)),
            "max_abs_logit": float(full.abs().max())}


# name -> (base case, LoraConfig arguments)
PEFT_CASES = {
    "lora_qv": ("qwen2", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])),
    "rslora_all_linear": ("gemma3_text", dict(r=8, lora_alpha=16, use_rslora=True, target_modules="all-linear")),
    "layers_to_transform": ("llama", dict(r=2, lora_alpha=4, target_modules=["o_proj", "gate_proj", "down_proj"],
                                          layers_to_transform=[1])),
    # peft writes the patterns sorted and, loading, takes the first that matches: layer 0's q_proj
    # gets 5 (not "q_proj"'s 3), layer 0's down_proj alpha 32 (not its specific 5).
    "patterns": ("mistral", dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "up_proj", "down_proj"],
                                 rank_pattern={"layers.1.mlp.up_proj": 6, "model.layers.0.self_attn.q_proj": 5,
                                               "q_proj": 3},
                                 alpha_pattern={"down_proj": 32, "model.layers.0.mlp.down_proj": 5})),
    "gemma2_rslora_mlp": ("gemma2", dict(r=2, lora_alpha=16, use_rslora=True,
                                         target_modules=["gate_proj", "up_proj", "down_proj", "k_proj"])),
}


def peft_case(work, name, base_dirs, seed):
    from peft import LoraConfig, PeftModel, get_peft_model

    base_case, kw = PEFT_CASES[name]
    base = AutoModelForCausalLM.from_pretrained(base_dirs[base_case], dtype=torch.float32).eval()
    torch.manual_seed(seed)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **kw)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_B" in pname:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    d = os.path.join(work, "peft", name)
    model.save_pretrained(d, safe_serialization=True)
    ids, mask = batch(seed + 2)
    with torch.no_grad():
        logits = forward(model, ids, mask).logits
        # What the files mean to peft: the same adapter loaded back.
        fresh = AutoModelForCausalLM.from_pretrained(base_dirs[base_case], dtype=torch.float32)
        reloaded = forward(PeftModel.from_pretrained(fresh, d).eval(), ids, mask).logits
        if not torch.allclose(reloaded, logits, atol=1e-6, rtol=0, equal_nan=True):
            raise SystemExit(f"{name}: peft's saved adapter gives other logits than the one it saved")
        merged = model.merge_and_unload()
        merged_logits = forward(merged, ids, mask).logits
    path = os.path.join(d, "reference.safetensors")
    save_file({"input_ids": ids, "attention_mask": mask, "logits": logits.contiguous(),
               "merged_logits": merged_logits.contiguous()}, path)
    return {"base": base_dirs[base_case], "adapter": d, "tensors": path}


def emlab_case(work, item, seed):
    model, info = AutoModelForCausalLM.from_pretrained(item["model"], dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"{item['model']}: transformers reports {problems}")
    model.eval()
    if item.get("adapter"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, item["adapter"]).eval()
    ids, mask = batch(seed)
    with torch.no_grad():
        logits = forward(model, ids, mask).logits
    path = os.path.join(work, "emlab-" + item["name"] + ".safetensors")
    save_file({"input_ids": ids, "attention_mask": mask, "logits": logits.contiguous()}, path)
    return {"tensors": path, "config_class": type(model.config).__name__}


def main():
    work = sys.argv[1]
    with open(os.path.join(work, "request.json")) as f:
        request = json.load(f)
    parts = set(request.get("parts", []))
    import transformers

    out = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    if "logits" in parts or "peft" in parts:
        out["logits"] = {case: logits_case(work, case, 100 + 10 * i) for i, case in enumerate(CASES)}
    if "peft" in parts:
        import peft

        out["versions"]["peft"] = peft.__version__
        bases = {case: c["model"] for case, c in out["logits"].items()}
        out["peft"] = {name: peft_case(work, name, bases, 500 + 10 * i) for i, name in enumerate(PEFT_CASES)}
    if "emlab" in parts:
        out["emlab"] = {item["name"]: emlab_case(work, item, 900 + i) for i, item in enumerate(request["emlab"])}
    with open(os.path.join(work, "expected.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
