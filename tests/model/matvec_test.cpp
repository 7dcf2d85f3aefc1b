// The small-row products (src/model/matvec.h) against float64 products, in the cases they take,
// and the cases they leave to torch.
#include <gtest/gtest.h>

#include "emlab/lora.h"
#include "model/matvec.h"

namespace emlab::model_detail {
namespace {

bool has_avx512() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

TEST(SmallRowsLinear, EqualsFloat64ProductForEveryRowCountAndWidth) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the kernels are never taken";
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  // Widths: a multiple of 64 (all partial sums), of 16 only, and with a scalar tail.
  for (int64_t C : {256, 48, 203}) {
    for (int64_t out : {1, 37, 1000}) {
      torch::Tensor w64 = torch::randn({out, C}, torch::kFloat64);
      for (int64_t R = 1; R <= kSmallRowsMax; ++R) {
        torch::Tensor x64 = torch::randn({R, 1, C}, torch::kFloat64);
        for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
          torch::Tensor w = w64.to(dt), x = x64.to(dt);
          torch::Tensor y = small_rows_linear(x, w);
          const bool taken = dt == torch::kFloat32 ? R >= 2 : R == 1;
          ASSERT_EQ(y.defined(), taken) << "R=" << R << " dtype " << dt;
          if (!taken) continue;
          EXPECT_EQ(y.scalar_type(), dt);
          EXPECT_EQ(y.sizes(), torch::IntArrayRef({R, out}));
          // Reference: the same (rounded) inputs multiplied in float64.
          torch::Tensor ref = torch::matmul(x.to(torch::kFloat64).reshape({R, C}), w.to(torch::kFloat64).t());
          // fp32: accumulation-order rounding only; bf16: the output rounded to 8 significant bits
          // (half an ulp, 2^-9 relative), elementwise.
          const double rel = dt == torch::kFloat32 ? 1e-5 : 1.0 / 256;
          EXPECT_TRUE(((y.to(torch::kFloat64) - ref).abs() <= rel * ref.abs() + 1e-4).all().item<bool>())
              << "C=" << C << " out=" << out << " R=" << R << " max diff "
              << (y.to(torch::kFloat64) - ref).abs().max().item<double>();
          // Through the layer entry point, with a bias and the input's leading shape (the bias
          // is added in the dtype: one more rounding).
          torch::Tensor bias = torch::randn({out}).to(dt);
          torch::Tensor b64 = bias.to(torch::kFloat64);
          torch::Tensor z = linear_small_rows_aware(x, w, bias);
          EXPECT_EQ(z.sizes(), torch::IntArrayRef({R, 1, out}));
          EXPECT_TRUE(((z.to(torch::kFloat64).reshape({R, out}) - ref - b64).abs() <=
                       2 * rel * (ref.abs() + b64.abs()) + 1e-4)
                          .all()
                          .item<bool>());
        }
      }
    }
  }
}

TEST(SmallRowsLinear, LeavesGradientsFloat64AndLargerBatchesToTorch) {
  torch::Tensor w = torch::randn({8, 32}), x = torch::randn({2, 32});
  EXPECT_FALSE(small_rows_linear(x.to(torch::kFloat64), w.to(torch::kFloat64)).defined());
  EXPECT_FALSE(small_rows_linear(torch::randn({kSmallRowsMax + 1, 32}), w).defined());
  EXPECT_FALSE(small_rows_linear(x, w.t().contiguous().t()).defined());  // not row-major
  torch::Tensor wg = w.clone().requires_grad_(true);
  EXPECT_FALSE(small_rows_linear(x, wg).defined());
  // And the gradient still flows through the entry point (linear), equal to x^T g.
  torch::Tensor y = linear_small_rows_aware(x, wg);
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(wg.grad(), torch::ones({2, 8}).t().matmul(x)));
}

}  // namespace
}  // namespace emlab::model_detail
