// Causal self-attention over whole sequences (training, scoring, interpretability, and a prompt
// into an empty KV cache) as one fused CPU operation with its own backward, private to src/model.
//
// Through torch ops the same attention is B x H small BLAS products per product, then a scaling, a
// bias addition, a softmax and, backward, their gradients: each a pass over (B, H, T, T) tensors,
// and the masked upper half of the scores computed and exponentiated like the rest. Here one
// parallel loop over (batch row, head) pairs computes, per block of query rows, only the
// columns up to the block's last row (float32: BLAS products; bf16: AVX512-BF16 dot products over
// operands packed in pairs), with scaling, masking and softmax in one pass over each row; backward
// does the same with the saved probabilities.
#pragma once

#include <torch/torch.h>

namespace emlab::model_detail {

constexpr int64_t kCausalBlockRows = 64;  // query rows per block of the causal triangle (64 and 32 measured alike)

// out (B, H, T, D) = softmax(scale q k^T + mask) v, with differentiable q, k, v, for
// q (B, H, T, D), k and v (B, Hkv, T, D) (H a multiple of Hkv; query head h reads kv head
// h / (H / Hkv)), any strides. Query i attends to key j when j <= i,
// key_mask[b, j] is nonzero (key_mask (B, T) or undefined: every key) and, with window > 0,
// i - j < window. A query row with no such key gets zeros (the torch ops' path gives those padding
// rows the mean of the values). Probabilities and sums in float32; the result's memory is
// (B, T, H, D), so that out.transpose(1, 2) is contiguous. The (B, H, T, T) probabilities are kept
// for backward only where a gradient is wanted (grad mode on and q, k or v requiring it); without,
// each thread keeps one block's, and the output is the same to the bit.
//
// Taken on the CPU with AVX-512 for float32 or bfloat16 q, k, v; elsewhere it returns an undefined
// tensor (the caller keeps the torch ops). No double backward. bf16 q, k, v, where the CPU has
// AVX512-BF16 and D is even (and bf16_products): every product in bf16 with float32 sums, the
// probabilities and the scores' gradients rounded to bf16 on their way into a product; otherwise
// (bf16_products false: the reference the benchmark and tests compare with) widened to float32 on the
// way in, every product in float32, the output and gradients rounded to bf16.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& key_mask, int64_t window, double scale,
                               bool bf16_products = true);

}  // namespace emlab::model_detail
