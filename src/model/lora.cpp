#include "emlab/lora.h"

#include "model/matvec.h"

namespace emlab {

torch::Tensor linear_small_rows_aware(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  // Decode at small batch reads every weight once per step for a few rows: bandwidth-bound work
  // that matrix-matrix kernels (which pack the weight first) do poorly. emlab's AVX-512 kernels
  // (model/matvec.h) take up to 64 rows in fp32 and up to 32 in bf16; one row in fp32/fp64 that
  // they leave (no AVX-512, fp64, gradients) goes through a matrix-vector product, which Debian's
  // libtorch 1.13 (OpenBLAS) runs 2-5x faster than linear() (bench/matvec_bench.cpp). Same values
  // to rounding.
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  if (!shape.empty()) shape.back() = weight.size(0);
  if (torch::Tensor y = model_detail::small_rows_linear(x, weight); y.defined()) {  // (R, out)
    if (bias.defined()) y = y + bias;
    return y.reshape(shape);
  }
  // One row in fp32/fp64 (also with gradients): the matrix-vector product (autograd goes through mv).
  const bool fp = x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64;
  if (x.numel() == weight.size(1) && x.dim() >= 1 && x.device().is_cpu() && fp && weight.scalar_type() == x.scalar_type()) {
    torch::Tensor y = torch::mv(weight, x.reshape({weight.size(1)}));  // (out)
    if (bias.defined()) y = y + bias;
    return y.reshape(shape);
  }
  return torch::nn::functional::linear(x, weight, bias);  // (..., out)
}

torch::Tensor linear_lora(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          const std::string& name, const LoraSet* lora) {
  torch::Tensor y = linear_small_rows_aware(x, weight, bias);  // (..., out)
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
