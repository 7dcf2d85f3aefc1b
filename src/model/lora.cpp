#include "emlab/lora.h"

namespace emlab {

torch::Tensor linear_one_row_aware(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  // One row (decode at batch 1): a matrix-vector product. Debian's libtorch 1.13 (OpenBLAS) runs
  // it 2-5x faster than the matrix-matrix product linear() uses (bench/matvec_bench.cpp); with
  // MKL the two are equal. Same values to rounding; autograd goes through mv as through linear.
  // CPU and fp32/fp64 only (bf16 mv is not a fast path in every libtorch).
  const bool fp = x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64;
  if (x.numel() == weight.size(1) && x.dim() >= 1 && x.device().is_cpu() && fp && weight.scalar_type() == x.scalar_type()) {
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = weight.size(0);
    torch::Tensor y = torch::mv(weight, x.reshape({weight.size(1)}));  // (out)
    if (bias.defined()) y = y + bias;
    return y.reshape(shape);
  }
  return torch::nn::functional::linear(x, weight, bias);  // (..., out)
}

torch::Tensor linear_lora(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          const std::string& name, const LoraSet* lora) {
  torch::Tensor y = linear_one_row_aware(x, weight, bias);  // (..., out)
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
