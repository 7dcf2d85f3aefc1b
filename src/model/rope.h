// Rotary position embedding, x cos + rotate_half(x) sin, as one fused CPU operation with its own
// backward, private to src/model.
//
// Through torch ops it is six passes forward (two products, the half rotation's slices, negation
// and concatenation, the sum) and as many backward, per layer for queries and keys. Here one pass
// each way. The arithmetic is torch's, operation for operation (each product rounded, then the
// sum; in bf16 each result rounded to bf16 as torch's bf16 ops round it), so the results are
// bit-identical to the torch expression.
#pragma once

#include <torch/torch.h>

namespace emlab::model_detail {

// x * cos + rotate_half(x) * sin for x (..., H, D) and cos/sin (..., 1, D) of x's leading shape and
// dtype (rotate_half: (x1, x2) -> (-x2, x1) over the last dim), differentiable in x (cos and sin
// get no gradient). Taken on the CPU with AVX-512 for float32 and bfloat16 with even D; elsewhere
// (other devices, dtypes or shapes, or cos/sin wanting a gradient) it returns an undefined tensor
// and the caller keeps the torch ops. No double backward.
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// The same forward for one position on raw memory, one thread (CPU with AVX-512 only, even D):
// out (H, D) from x (H, D) and cos/sin (D), all float32 or all bf16 (`bf16`).
void rope_heads(const void* x, const void* cos, const void* sin, void* out, int64_t H, int64_t D, bool bf16);

}  // namespace emlab::model_detail
