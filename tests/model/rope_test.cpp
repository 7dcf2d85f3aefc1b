// The fused rotary embedding (src/model/rope.h): its output and its input's gradient are the torch
// expression's, bit for bit (x * cos + rotate_half(x) * sin, differentiated by autograd), in float32
// and bf16, over head widths below, at and beyond the 16-wide steps and sizes beyond one parallel
// task; and the cases it leaves to torch.
#include <gtest/gtest.h>

#include "model/avx512.h"
#include "model/rope.h"

namespace emlab::model_detail {
namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

// cos/sin (N, T, 1, D) of positions like the model's tables (a frequency per pair, duplicated).
std::pair<torch::Tensor, torch::Tensor> tables(int64_t N, int64_t T, int64_t D, torch::ScalarType dt) {
  torch::Tensor pos = torch::randint(0, 4096, {N, T, 1}, torch::kLong).to(torch::kFloat32);
  torch::Tensor inv = 1.0 / torch::pow(10000.0, torch::arange(0, D, 2, torch::kFloat32) / static_cast<double>(D));
  torch::Tensor f = pos * inv;  // (N, T, D/2)
  torch::Tensor emb = torch::cat({f, f}, -1).unsqueeze(2);
  return {emb.cos().to(dt), emb.sin().to(dt)};
}

TEST(Rope, IsTheTorchExpressionBitForBitWithItsGradient) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the model keeps torch's ops";
  torch::manual_seed(3);
  // (N, T, H, D): head widths 2 (one pair), 6, 32 (16 pairs), 40 (a masked tail), 128; a size
  // beyond one parallel task.
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {1, 1, 1, 2}, {2, 3, 2, 6}, {2, 5, 4, 32}, {1, 7, 3, 40}, {1, 9, 2, 128}, {1, 300, 4, 64}}) {
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
      const std::string what = std::string(dt == torch::kFloat32 ? "fp32" : "bf16") + " D=" + std::to_string(shape[3]);
      auto [cos, sin] = tables(shape[0], shape[1], shape[3], dt);
      torch::Tensor x = (torch::randn(shape) * 3).to(dt).requires_grad_(true);
      torch::Tensor w = torch::randn(shape).to(dt);  // the upstream gradient
      torch::Tensor got = rope(x, cos, sin);
      ASSERT_TRUE(got.defined()) << what;
      (got * w).sum().backward();
      torch::Tensor got_grad = x.grad().clone();
      x.mutable_grad() = torch::Tensor();
      torch::Tensor want = x * cos + rotate_half(x) * sin;
      (want * w).sum().backward();
      EXPECT_TRUE(torch::equal(got, want)) << what << " max diff " << (got - want).abs().max().item<double>();
      EXPECT_TRUE(torch::equal(got_grad, x.grad()))
          << what << " gradient max diff " << (got_grad - x.grad()).abs().max().item<double>();
      // A strided input (a view of a wider projection) gives the same.
      torch::Tensor wide = torch::cat({x.detach(), x.detach()}, -2).narrow(-2, 0, shape[2]);
      EXPECT_TRUE(torch::equal(rope(wide, cos, sin), want)) << what << " strided";
    }
  }
}

TEST(Rope, LeavesOtherCasesToTorch) {
  auto [cos, sin] = tables(1, 4, 8, torch::kFloat32);
  torch::Tensor x = torch::randn({1, 4, 2, 8});
  EXPECT_EQ(rope(x, cos, sin).defined(), cpu_has_avx512());
  EXPECT_FALSE(rope(x.to(torch::kFloat64), cos.to(torch::kFloat64), sin.to(torch::kFloat64)).defined());
  EXPECT_FALSE(rope(x, cos.to(torch::kBFloat16), sin).defined());                  // mixed dtypes
  EXPECT_FALSE(rope(x.narrow(-1, 0, 7), cos.narrow(-1, 0, 7), sin.narrow(-1, 0, 7)).defined());  // odd width
  EXPECT_FALSE(rope(x, cos.narrow(1, 0, 1), sin.narrow(1, 0, 1)).defined());      // broadcast positions
  EXPECT_FALSE(rope(x, cos.expand({1, 4, 2, 8}), sin.expand({1, 4, 2, 8})).defined());  // one row per head
  EXPECT_FALSE(rope(x, cos.clone().requires_grad_(true), sin).defined());          // gradients for the tables
}

}  // namespace
}  // namespace emlab::model_detail
