// LoRA adapters and the one LoRA-aware linear function every projection goes through:
//   y = x W^T (+ b) + multiplier · scale · ((dropout(x) A^T) B^T)
// scale = alpha / r, or alpha / sqrt(r) with rsLoRA. Adapters are keyed by the Hugging Face module
// name ("model.layers.0.self_attn.q_proj"), so PEFT files map onto them by name.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace emlab {

struct LoraModule {
  torch::Tensor A;      // (r, in)  lora_A.weight
  torch::Tensor B;      // (out, r) lora_B.weight
  double scale = 1.0;   // alpha / r or alpha / sqrt(r)
};

struct LoraSet {
  std::map<std::string, LoraModule> modules;  // module name -> adapter
  double multiplier = 1.0;                    // scales every adapter (efficiency studies: s in [0, 2])
  double dropout = 0.0;                       // dropout on the adapter input while training
  bool training = false;                      // dropout active
};

// The LoRA-aware linear. weight: (out, in); bias: (out) or undefined; lora may be null or lack
// `name`; x: (..., in) -> (..., out).
// linear(x, weight, bias); on the CPU, when x holds a few rows (decode at small batch), through
// products that read each weight from memory once: emlab's AVX-512 kernels without gradients (up
// to 64 rows in fp32, up to 32 in bf16: src/model/matvec.h), and for one row in fp32/fp64 that they
// leave a matrix-vector product.
torch::Tensor linear_small_rows_aware(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {});
torch::Tensor linear_lora(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          const std::string& name, const LoraSet* lora);

}  // namespace emlab
