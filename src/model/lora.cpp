#include "emlab/lora.h"

namespace emlab {

torch::Tensor linear_lora(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          const std::string& name, const LoraSet* lora) {
  torch::Tensor y = torch::nn::functional::linear(x, weight, bias);  // (..., out)
  if (!lora || lora->multiplier == 0.0) return y;
  auto it = lora->modules.find(name);
  if (it == lora->modules.end()) return y;
  const LoraModule& m = it->second;
  torch::Tensor xin = x;
  if (lora->training && lora->dropout > 0.0)
    xin = torch::dropout(x, lora->dropout, /*train=*/true);
  torch::Tensor delta = torch::matmul(torch::matmul(xin, m.A.t()), m.B.t());  // (..., r) -> (..., out)
  return y + delta * (m.scale * lora->multiplier);
}

}  // namespace emlab
