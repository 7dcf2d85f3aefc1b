// The fused gated activation (src/model/swiglu.h): silu(gate) * up and the gradients of gate and up
// against the same expression in float64 differentiated by autograd, in float32 and bf16, over
// sizes around the 16-wide steps and the parallel tasks, large and small gates; and the cases it
// leaves to torch.
#include <gtest/gtest.h>

#include "model/avx512.h"
#include "model/swiglu.h"

namespace emlab::model_detail {
namespace {

// Output, d gate and d up of silu(gate) * up weighted by `w`, in float64 through autograd.
std::vector<torch::Tensor> reference(const torch::Tensor& gate, const torch::Tensor& up, const torch::Tensor& w) {
  torch::Tensor g = gate.to(torch::kFloat64).detach().requires_grad_(true);
  torch::Tensor u = up.to(torch::kFloat64).detach().requires_grad_(true);
  torch::Tensor out = torch::silu(g) * u;
  (out * w.to(torch::kFloat64)).sum().backward();
  return {out.detach(), g.grad(), u.grad()};
}

double max_rel(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got.to(torch::kFloat64) - want).abs().max() / want.abs().max()).item<double>();
}

TEST(Swiglu, EqualsSiluTimesUpAndItsGradients) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the model keeps torch's ops";
  torch::manual_seed(0);
  // Sizes: below one step, around 16, and beyond one parallel task (16384 elements).
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{1, 1, 5}, {2, 3, 16}, {1, 7, 33}, {3, 50, 384}, {1, 1, 40001}}) {
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      // Gates from -30 to 30 (sigmoid saturates at both ends), up and the weights near 1.
      torch::Tensor gate = (torch::randn(shape) * 6).clamp(-30, 30).to(dtype).requires_grad_(true);
      torch::Tensor up = torch::randn(shape).to(dtype).requires_grad_(true);
      torch::Tensor w = torch::randn(shape).to(dtype);
      torch::Tensor out = swiglu(gate, up);
      ASSERT_TRUE(out.defined());
      EXPECT_EQ(out.scalar_type(), dtype);
      EXPECT_EQ(out.sizes(), gate.sizes());
      (out * w).sum().backward();
      const auto want = reference(gate, up, w);
      // float32: a few ulps; bf16: each result rounded once to 8 bits (and w d out rounded too).
      const double tol = dtype == torch::kFloat32 ? 1e-6 : 1e-2;
      const std::string what = "shape " + std::to_string(gate.numel()) + (dtype == torch::kFloat32 ? " f32" : " bf16");
      EXPECT_LT(max_rel(out, want[0]), tol) << what;
      EXPECT_LT(max_rel(gate.grad(), want[1]), tol) << what;
      EXPECT_LT(max_rel(up.grad(), want[2]), tol) << what;
      if (dtype == torch::kFloat32) {  // elementwise too, not only at the largest entries
        torch::Tensor ref = want[1].to(torch::kFloat32);
        EXPECT_TRUE(torch::allclose(gate.grad(), ref, 1e-5, 1e-6)) << what;
      } else {  // rounded to nearest as torch rounds: the float32 result's bf16 nearly everywhere
        const torch::Tensor rounded = want[0].to(torch::kFloat32).to(torch::kBFloat16);
        const double same = out.eq(rounded).to(torch::kFloat64).mean().item<double>();
        EXPECT_GT(same, 0.98) << what;
      }
    }
  }
}

TEST(Swiglu, TakesStridedInputs) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the model keeps torch's ops";
  torch::manual_seed(1);
  torch::Tensor both = torch::randn({4, 10, 64}).requires_grad_(true);
  torch::Tensor gate = both.narrow(2, 0, 32), up = both.narrow(2, 32, 32);  // halves: not contiguous
  torch::Tensor out = swiglu(gate, up);
  ASSERT_TRUE(out.defined());
  out.sum().backward();
  const auto want = reference(gate, up, torch::ones_like(out));
  EXPECT_LT(max_rel(out, want[0]), 1e-6);
  EXPECT_LT(max_rel(both.grad().narrow(2, 0, 32), want[1]), 1e-6);
  EXPECT_LT(max_rel(both.grad().narrow(2, 32, 32), want[2]), 1e-6);
}

TEST(Swiglu, LeavesOtherCasesToTorch) {
  torch::Tensor a = torch::randn({2, 3});
  EXPECT_FALSE(swiglu(a.to(torch::kFloat64), a.to(torch::kFloat64)).defined());  // float64: torch's ops
  EXPECT_FALSE(swiglu(a, a.to(torch::kBFloat16)).defined());                     // mixed dtypes
  EXPECT_FALSE(swiglu(a, torch::randn({3, 2})).defined());                       // shapes differ
}

}  // namespace
}  // namespace emlab::model_detail
