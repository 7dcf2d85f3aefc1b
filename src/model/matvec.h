// Products of a few rows with a weight matrix on the CPU (decode at small batch), private to
// src/model. Decode reads every weight once per step for a handful of rows: bandwidth-bound work
// that matrix-matrix kernels (which pack the weight first) do poorly.
#pragma once

#include <torch/torch.h>

namespace emlab::model_detail {

constexpr int64_t kSmallRowsMax = 4;  // rows of x up to which small_rows_linear may take the product

// y (R, out) = x (R, in) W^T for W (out, in) contiguous on the CPU, no gradient wanted, on a CPU
// with AVX-512 (F, BW, VL), in the cases where it beat libtorch 1.13's products in
// bench/matvec_bench.cpp: float32 with 2 <= R <= 4 rows (2.2-2.8x linear; one fp32 row stays with
// OpenBLAS's mv, faster on most shapes) and bfloat16 with one row (1.1-3.4x oneDNN's; from 4 rows
// oneDNN's bf16 dot-product kernels are faster). Each weight row is read once for all R rows (bf16
// widened to float32 as it is read); dot products accumulate in float32; the result has x's dtype.
// Parallel over output rows on torch's intra-op threads. Returns an undefined tensor in every other
// case (the caller uses torch's product).
torch::Tensor small_rows_linear(const torch::Tensor& x, const torch::Tensor& weight);

}  // namespace emlab::model_detail
