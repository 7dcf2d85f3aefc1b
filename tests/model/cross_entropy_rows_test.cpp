// The fused bf16 softmax cross-entropy (src/model/cross_entropy_rows.h) against the same loss and
// gradient in float64 through torch's ops: vocabularies around the 16-wide steps, targets in the
// first, middle and last lanes, logits from -60 to 60; the cases it leaves to torch; and
// sft_loss_sum's loss and gradients of a bf16 model against the torch path's.
#include <gtest/gtest.h>

#include "emlab/batch.h"
#include "emlab/hf_config.h"
#include "emlab/model.h"
#include "model/avx512.h"
#include "model/cross_entropy_rows.h"

namespace emlab::model_detail {
namespace {

TEST(CrossEntropyRows, EqualsSoftmaxMinusOneHotInFloat64) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the loss keeps torch's ops";
  torch::manual_seed(0);
  for (int64_t V : {1, 5, 16, 17, 2048, 2051}) {
    const int64_t n = 37;
    torch::Tensor x = (torch::randn({n, V}) * 20).clamp(-60, 60).to(torch::kBFloat16);
    torch::Tensor t = torch::randint(0, V, {n}, torch::kInt64);
    t[0] = 0;
    t[1] = V - 1;
    t[2] = V / 2;
    torch::Tensor g;
    torch::Tensor loss = cross_entropy_rows_bf16(x, t, &g);
    ASSERT_TRUE(loss.defined()) << V;
    ASSERT_EQ(g.scalar_type(), torch::kBFloat16);
    ASSERT_EQ(g.sizes(), x.sizes());
    // float64 reference; each gradient entry within one bf16 rounding (2^-8 relative) plus the
    // float32 arithmetic's error (absolute: at the target p - 1 cancels where p is near 1, as in
    // torch's float32 path).
    torch::Tensor lp = torch::log_softmax(x.to(torch::kFloat64), 1);
    const double want = -lp.gather(1, t.unsqueeze(1)).sum().item<double>();
    EXPECT_NEAR(loss.item<double>(), want, 1e-5 * std::max(1.0, std::abs(want))) << V;
    torch::Tensor ref = lp.exp().scatter_add(1, t.unsqueeze(1), torch::full({n, 1}, -1.0, torch::kFloat64));
    torch::Tensor err = (g.to(torch::kFloat64) - ref).abs();
    torch::Tensor bound = ref.abs() * (1.0 / 256) + 5e-7;
    EXPECT_TRUE(err.le(bound).all().item<bool>()) << V << ": max error " << (err - bound).max().item<double>();
    // The target's entry is p - 1 (negative unless p rounds to 1), the others p >= 0.
    torch::Tensor at_target = g.to(torch::kFloat64).gather(1, t.unsqueeze(1));
    EXPECT_TRUE(at_target.le(0).all().item<bool>()) << V;
  }
}

TEST(CrossEntropyRows, LeavesOtherInputsToTorch) {
  torch::Tensor g;
  torch::Tensor t = torch::zeros({3}, torch::kInt64);
  EXPECT_FALSE(cross_entropy_rows_bf16(torch::randn({3, 8}), t, &g).defined());  // float32
  EXPECT_FALSE(cross_entropy_rows_bf16(torch::randn({8, 3}).to(torch::kBFloat16).t(), t, &g).defined());
  EXPECT_FALSE(cross_entropy_rows_bf16(torch::randn({3, 8}).to(torch::kBFloat16), t + 8, &g).defined());
  EXPECT_FALSE(g.defined());
}

// Through sft_loss_sum (the head's chunks): a bf16 model's loss and its head's gradient, against
// float64 cross-entropy through autograd on the same bf16 hidden states and head weight. The head
// is untied, so its gradient is the cross-entropy's alone.
TEST(CrossEntropyRows, SftLossSumOfABf16ModelMatchesFloat64) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  ModelConfig c = ModelConfig::from_json({{"model_type", "llama"},
                                          {"vocab_size", 300},
                                          {"hidden_size", 32},
                                          {"intermediate_size", 64},
                                          {"num_hidden_layers", 1},
                                          {"num_attention_heads", 2},
                                          {"num_key_value_heads", 2},
                                          {"max_position_embeddings", 64},
                                          {"tie_word_embeddings", false}},
                                         "test");
  LoadOptions lo;
  lo.dtype = "bfloat16";
  auto model = CausalLM::init_random(c, 3, lo);
  torch::manual_seed(1);
  Batch b;
  b.ids = torch::randint(3, 300, {2, 20}, torch::kInt64);
  b.mask = torch::ones({2, 20});
  b.real = torch::ones({2, 20});
  b.tokens = 40;
  b.targets = 38;
  torch::Tensor w = model->parameters().at("lm_head.weight");
  w.requires_grad_(true);
  torch::Tensor loss = sft_loss_sum(*model, b, {});
  loss.backward();
  const torch::Tensor gw = w.grad().to(torch::kFloat64);
  w.requires_grad_(false);

  torch::NoGradGuard ng;
  ForwardArgs a;
  a.hidden_only = true;
  torch::Tensor h = model->forward(b.ids, a).narrow(1, 0, 19).reshape({-1, 32}).to(torch::kFloat64);
  torch::Tensor tgt = b.ids.narrow(1, 1, 19).reshape({-1});
  torch::Tensor w64 = w.detach().to(torch::kFloat64);
  torch::Tensor lp = torch::log_softmax(torch::matmul(h, w64.t()), 1);  // (38, V)
  const double want = -lp.gather(1, tgt.unsqueeze(1)).sum().item<double>();
  // The bf16 logits are rounded products: the loss within their rounding.
  EXPECT_NEAR(loss.item<double>(), want, 2e-3 * want);
  torch::Tensor G = lp.exp().scatter_add(1, tgt.unsqueeze(1), torch::full({38, 1}, -1.0, torch::kFloat64));
  torch::Tensor want_gw = torch::matmul(G.t(), h);  // (V, C)
  const double rel = ((gw - want_gw).norm() / want_gw.norm()).item<double>();
  EXPECT_LT(rel, 2e-2) << "the head's gradient is not (softmax - onehot)^T h";
}

}  // namespace
}  // namespace emlab::model_detail
