// The fused RMSNorm (src/model/rms_norm.h): output and the gradients of x and w against the same
// norm written with torch ops in float64 and differentiated by autograd, Llama's (w times the
// rounded norm) and Gemma's (times 1 + w), in float32 and bf16, over widths around the 16-wide steps
// and row counts beyond one block; bf16 rounded where torch's ops round; and the cases it leaves
// to torch.
#include <gtest/gtest.h>

#include "model/avx512.h"
#include "model/rms_norm.h"

namespace emlab::model_detail {
namespace {

constexpr double kEps = 1e-5;

// The norm as CausalLM::rms_norm writes it with torch ops, in `type` (float64: the reference).
torch::Tensor torch_norm(const torch::Tensor& x, const torch::Tensor& w, bool plus_one, torch::ScalarType type) {
  torch::Tensor xf = x.to(type);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + kEps);
  if (plus_one) return (xf * (1 + w.to(type))).to(x.scalar_type());
  return w * xf.to(x.scalar_type());
}

double max_rel(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got.to(torch::kFloat64) - want.to(torch::kFloat64)).abs().max() / want.abs().max().to(torch::kFloat64))
      .item<double>();
}

TEST(RmsNorm, EqualsTheTorchOpsAndTheirGradients) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the model keeps torch's ops";
  torch::manual_seed(0);
  for (bool plus_one : {false, true}) {
    for (int64_t C : {5, 16, 33, 128}) {
      for (const std::vector<int64_t>& lead : std::vector<std::vector<int64_t>>{{1, 1}, {3, 7}, {2, 100}}) {
        for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
          std::vector<int64_t> shape = lead;
          shape.push_back(C);
          // Rows of different scales (the norm must remove them); weights around 1 (Llama) or 0 (Gemma).
          torch::Tensor x = (torch::randn(shape) * torch::rand(lead).unsqueeze(-1) * 10).to(dtype).requires_grad_(true);
          torch::Tensor w = ((plus_one ? 0.0 : 1.0) + 0.3 * torch::randn({C})).to(dtype).requires_grad_(true);
          torch::Tensor dy = torch::randn(shape).to(dtype);
          torch::Tensor y = rms_norm_fused(x, w, kEps, plus_one);
          ASSERT_TRUE(y.defined());
          EXPECT_EQ(y.scalar_type(), dtype);
          (y * dy).sum().backward();
          torch::Tensor x64 = x.detach().to(torch::kFloat64).requires_grad_(true);
          torch::Tensor w64 = w.detach().to(torch::kFloat64).requires_grad_(true);
          torch::Tensor want = torch_norm(x64, w64, plus_one, torch::kFloat64);
          (want * dy.to(torch::kFloat64)).sum().backward();
          const std::string what = std::string(plus_one ? "gemma" : "llama") + " C " + std::to_string(C) + " rows " +
                                   std::to_string(x.numel() / C) + (dtype == torch::kFloat32 ? " f32" : " bf16");
          const double tol = dtype == torch::kFloat32 ? 2e-6 : 2e-2;
          EXPECT_LT(max_rel(y, want), tol) << what;
          EXPECT_LT(max_rel(x.grad(), x64.grad()), tol) << what;
          EXPECT_LT(max_rel(w.grad(), w64.grad()), tol) << what;
          if (dtype == torch::kBFloat16) {  // rounded as torch's bf16 ops round: equal nearly everywhere
            const torch::Tensor ref = torch_norm(x.detach(), w.detach(), plus_one, torch::kFloat32);
            EXPECT_GT(y.eq(ref).to(torch::kFloat64).mean().item<double>(), 0.97) << what;
          }
        }
      }
    }
  }
}

TEST(RmsNorm, TheWeightGradientDoesNotDependOnTheThreads) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the model keeps torch's ops";
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({700, 64});
  torch::Tensor dy = torch::randn({700, 64});
  auto grad_w = [&](int threads) {
    const int before = torch::get_num_threads();
    torch::set_num_threads(threads);
    torch::Tensor w = torch::ones({64}).requires_grad_(true);
    (rms_norm_fused(x, w, kEps, false) * dy).sum().backward();
    torch::set_num_threads(before);
    return w.grad();
  };
  EXPECT_TRUE(torch::equal(grad_w(1), grad_w(2)));
}

TEST(RmsNorm, LeavesOtherCasesToTorch) {
  torch::Tensor x = torch::randn({2, 8});
  EXPECT_FALSE(rms_norm_fused(x.to(torch::kFloat64), torch::ones({8}, torch::kFloat64), kEps, false).defined());
  EXPECT_FALSE(rms_norm_fused(x, torch::ones({8}, torch::kBFloat16), kEps, false).defined());  // mixed dtypes
  EXPECT_FALSE(rms_norm_fused(x, torch::ones({7}), kEps, false).defined());                     // wrong width
}

}  // namespace
}  // namespace emlab::model_detail
