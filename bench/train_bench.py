#!/usr/bin/python3
"""Reference for bench/train_bench.cpp: the same training step in Python PyTorch (Debian's
python3-torch, the same libtorch underneath): the ~25M-parameter Llama-shaped benchmark model,
token cross-entropy on every position, backward, gradient clipping at 1.0, AdamW (wd 0.01); full
finetuning and LoRA (r=32, alpha=64, rsLoRA, all seven projections, base frozen).
Usage: /usr/bin/python3 bench/train_bench.py [--threads N] [--batch B] [--seq T] [--steps S] [--accum A]
With --accum A the batch of a step is A micro-batches of B/A rows, each forward and backward in
turn (gradient accumulation as a PyTorch user writes it). Prints one "RESULT ..." line per method."""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = dict(vocab=8000, hidden=512, inter=1376, layers=6, heads=8, kv_heads=4, eps=1e-5, theta=10000.0)


class LoraLinear(nn.Module):
    def __init__(self, fin, fout, rank=0, alpha=1.0):
        super().__init__()
        self.base = nn.Linear(fin, fout, bias=False)
        self.rank = rank
        if rank:
            self.A = nn.Parameter(torch.empty(rank, fin))
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
            self.B = nn.Parameter(torch.zeros(fout, rank))
            self.scale = alpha / math.sqrt(rank)

    def forward(self, x):
        y = self.base(x)
        if self.rank:
            y = y + (x @ self.A.t()) @ self.B.t() * self.scale
        return y


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


class Layer(nn.Module):
    def __init__(self, c, rank, alpha):
        super().__init__()
        C, H, Hkv = c["hidden"], c["heads"], c["kv_heads"]
        D = C // H
        self.H, self.Hkv, self.D = H, Hkv, D
        lin = lambda i, o: LoraLinear(i, o, rank, alpha)
        self.q, self.k, self.v, self.o = lin(C, H * D), lin(C, Hkv * D), lin(C, Hkv * D), lin(H * D, C)
        self.gate, self.up, self.down = lin(C, c["inter"]), lin(C, c["inter"]), lin(c["inter"], C)
        self.n1, self.n2 = RMSNorm(C, c["eps"]), RMSNorm(C, c["eps"])

    def forward(self, h, cos, sin, bias):
        B, T, C = h.shape
        x = self.n1(h)
        q = self.q(x).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.k(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        v = self.v(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        G = self.H // self.Hkv
        qg = q.view(B, self.Hkv, G, T, self.D)
        s = (qg @ k.unsqueeze(2).transpose(-1, -2)).float() / math.sqrt(self.D) + bias
        p = torch.softmax(s, -1).to(v.dtype)
        a = (p @ v.unsqueeze(2)).reshape(B, self.H, T, self.D).transpose(1, 2).reshape(B, T, C)
        h = h + self.o(a)
        x = self.n2(h)
        return h + self.down(F.silu(self.gate(x)) * self.up(x))


class Model(nn.Module):
    def __init__(self, c, rank=0, alpha=1.0):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList(Layer(c, rank, alpha) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"], c["eps"])
        self.head = nn.Linear(c["hidden"], c["vocab"], bias=False)
        D = c["hidden"] // c["heads"]
        self.register_buffer("inv_freq", 1.0 / c["theta"] ** (torch.arange(0, D, 2).float() / D))

    def forward(self, ids):
        B, T = ids.shape
        pos = torch.arange(T).float()
        freqs = pos[:, None] * self.inv_freq
        emb = torch.cat([freqs, freqs], -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        bias = torch.zeros(T, T).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -1e30)
        h = self.embed(ids)
        for layer in self.layers:
            h = layer(h, cos, sin, bias)
        return self.head(self.norm(h))


def bench(method, batch, seq, steps, accum):
    torch.manual_seed(0)
    rank, alpha = (32, 64.0) if method == "lora" else (0, 1.0)
    model = Model(CFG, rank, alpha)
    for n, p in model.named_parameters():
        p.requires_grad_(method == "full" or n.endswith(".A") or n.endswith(".B"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    ids = torch.randint(0, CFG["vocab"], (batch, seq))
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        for part in ids.chunk(accum):
            logits = model(part)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, CFG["vocab"]), part[:, 1:].reshape(-1), reduction="sum")
            (loss / (batch * (seq - 1))).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    sec = sorted(times[1:])[len(times[1:]) // 2]
    return batch * seq / sec, sec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--method", default="both")
    ap.add_argument("--accum", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for m in ("full", "lora"):
        if a.method not in ("both", m):
            continue
        tps, sec = bench(m, a.batch, a.seq, a.steps, a.accum)
        print(f"{m:5s} {tps:10.0f} tokens/s  ({sec:.3f} s/step)  PyTorch {torch.__version__}")
        print(f"RESULT impl=pytorch method={m} threads={torch.get_num_threads()} accum={a.accum} tokens_per_s={tps:.1f}")


if __name__ == "__main__":
    main()
