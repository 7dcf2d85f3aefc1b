// The gated MLP's activation, silu(gate) * up, as one fused CPU operation with its own backward,
// private to src/model.
//
// Through torch ops it is two passes forward (silu, then the product: three tensors kept for
// backward) and four backward (the product's two gradients, silu's, and their sum into the gate's
// gradient path); in bf16 each pass also converts. Here one pass each way over the elements, in
// float32 (bf16 widened on load, rounded once on store), keeping gate and up only.
#pragma once

#include <torch/torch.h>

namespace emlab::model_detail {

// silu(gate) * up for gate and up of the same shape and dtype, with differentiable gate and up.
// Taken on the CPU with AVX-512 for float32 and bfloat16; elsewhere (other devices and dtypes,
// shapes that differ) it returns an undefined tensor and the caller keeps the torch ops. No double
// backward.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

// The same forward on raw memory, one thread (CPU with AVX-512 only): out[i] = silu(gate[i]) up[i]
// for i < n, all float32 or all bf16 (`bf16`).
void swiglu_range(const void* gate, const void* up, void* out, int64_t n, bool bf16);

}  // namespace emlab::model_detail
