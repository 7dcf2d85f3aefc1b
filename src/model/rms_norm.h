// RMSNorm as one fused CPU operation with its own backward, private to src/model.
//
// Through torch ops it is a widening copy, a square, a mean, an addition, rsqrt, two products and a
// narrowing copy forward, each a pass over the activations, and as many backward. Here each row is
// swept twice while it is in cache (its sum of squares, then the output) forward and likewise
// backward, in float32 (bf16 widened on load, rounded where torch's ops round), keeping x and one
// float per row.
#pragma once

#include <torch/torch.h>

namespace emlab::model_detail {

// RMSNorm over the last dimension, as CausalLM::rms_norm defines it: n = x / sqrt(mean(x^2) + eps)
// in float32; plus_one = false (Llama): w * n rounded to x's dtype; plus_one = true (Gemma):
// n * (1 + w), rounded once. Differentiable in x and w. Taken on the CPU with AVX-512 for x and w
// both float32 or both bf16; elsewhere it returns an undefined tensor and the caller keeps the torch
// ops. No double backward.
torch::Tensor rms_norm_fused(const torch::Tensor& x, const torch::Tensor& w, double eps, bool plus_one);

// The same forward on raw memory, one thread (CPU with AVX-512 only): y (rows, C) = RMSNorm of x
// (rows, C) with w (C), all float32 or all bf16 (`bf16`).
void rms_norm_rows(const void* x, const void* w, void* y, int64_t rows, int64_t C, double eps, bool plus_one,
                   bool bf16);

}  // namespace emlab::model_detail
