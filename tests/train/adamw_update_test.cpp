// AdamW's fused update (src/train/adamw_update.h) against the same update through torch's ops: the
// same bits for parameters, first and second moments over several steps, with and without weight
// decay, over sizes with and without a partial 16-wide step; and the cases it leaves to torch.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/version.h>

#include "model/avx512.h"
#include "train/adamw_update.h"

namespace emlab::train_detail {
namespace {

// On the default build (Debian's libtorch 1.13) the fused pass must be taken; with another libtorch
// it may be refused (its ops round otherwise), and then it must change nothing.
TEST(AdamWUpdate, TakenExactlyWhereItMatchesThisLibtorch) {
  if (!model_detail::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: AdamW keeps torch's ops";
#if TORCH_VERSION_MAJOR == 1
  EXPECT_TRUE(adamw_fused_matches_torch()) << "the fused AdamW pass no longer matches libtorch 1.x's ops";
#endif
  if (adamw_fused_matches_torch()) return;  // the next test compares them
  torch::Tensor p = torch::randn({40}), m = torch::zeros({40}), v = torch::zeros({40}), g = torch::randn({40});
  const torch::Tensor p0 = p.clone();
  EXPECT_FALSE(adamw_update_fused(p, m, v, g, AdamWUpdate{}));
  EXPECT_TRUE(torch::equal(p, p0));
  EXPECT_TRUE(torch::equal(m, torch::zeros({40})));
}

TEST(AdamWUpdate, FusedIsTheTorchOpsBitForBit) {
  if (!model_detail::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: AdamW keeps torch's ops";
  if (!adamw_fused_matches_torch())
    GTEST_SKIP() << "this libtorch's ops round otherwise (torch " << TORCH_VERSION << "): AdamW keeps them";
  torch::manual_seed(4);
  const double lr = 3e-4, wd = 0.01, b1 = 0.9, b2 = 0.999;
  for (int64_t n : {1, 15, 37, 1000, 16384, 40001}) {
    for (bool decay : {false, true}) {
      torch::Tensor p = torch::randn({n}), m = torch::zeros({n}), v = torch::zeros({n});
      torch::Tensor p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
      for (int step = 1; step <= 4; ++step) {
        torch::Tensor g = torch::randn({n}) * (step == 2 ? 1e-6 : 1e-2);  // a step of tiny gradients
        AdamWUpdate u;
        u.decay = decay ? 1.0 - lr * wd : 1.0;
        u.beta1 = b1;
        u.beta2 = b2;
        u.bc2_sqrt = std::sqrt(1.0 - std::pow(b2, step));
        u.eps = 1e-8;
        u.step_size = lr / (1.0 - std::pow(b1, step));
        ASSERT_TRUE(adamw_update_fused(p, m, v, g, u));
        adamw_update_torch(p2, m2, v2, g, u);
        const std::string what = "n=" + std::to_string(n) + (decay ? " decay" : "") + " step " + std::to_string(step);
        EXPECT_TRUE(torch::equal(m, m2)) << what << " m";
        EXPECT_TRUE(torch::equal(v, v2)) << what << " v";
        EXPECT_TRUE(torch::equal(p, p2)) << what << " p max diff " << (p - p2).abs().max().item<double>();
      }
      EXPECT_FALSE(torch::equal(p, torch::randn({n}))) << "the parameters moved";
    }
  }
}

TEST(AdamWUpdate, LeavesOtherTensorsToTorch) {
  torch::Tensor p = torch::randn({8}), m = torch::zeros({8}), v = torch::zeros({8}), g = torch::randn({8});
  AdamWUpdate u;
  torch::Tensor pd = p.to(torch::kFloat64), md = m.to(torch::kFloat64), vd = v.to(torch::kFloat64);
  EXPECT_FALSE(adamw_update_fused(pd, md, vd, g.to(torch::kFloat64), u));
  torch::Tensor column = torch::randn({8, 2}).select(1, 0);  // not contiguous
  EXPECT_FALSE(adamw_update_fused(column, m, v, g, u));
  EXPECT_FALSE(adamw_update_fused(p, m, v, torch::randn({9}), u));
  torch::Tensor view = torch::randn({16}).narrow(0, 0, 8);  // a contiguous view: taken
  EXPECT_EQ(adamw_update_fused(view, m, v, g, u), adamw_fused_matches_torch());
}

}  // namespace
}  // namespace emlab::train_detail
