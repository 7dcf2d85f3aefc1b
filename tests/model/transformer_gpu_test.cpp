// The decoder on a CUDA device against the CPU, tiny random models of every architecture with the
// same weights on both (init_random draws them on the CPU): logits, cached decoding with finished
// rows dropped and rows duplicated (on CUDA the cache rows move by a gather; the CPU's decode
// kernels and their row map are CPU-only), the packed padded batch's gradients, and bf16 on the
// GPU against fp32 on the CPU; decoding steps replayed as CUDA graphs. Skips without CUDA.
#include <gtest/gtest.h>

#include "emlab/decode_graph.h"
#include "emlab/model.h"
#include "test_util.h"
#include "tiny_models.h"

using namespace emlab;

namespace {

std::shared_ptr<CausalLM> tiny_on(const std::string& kind, const std::string& device,
                                  const std::string& dtype = "float32", uint64_t seed = 0) {
  LoadOptions lo;
  lo.device = device;
  lo.dtype = dtype;
  return CausalLM::init_random(ModelConfig::from_json(test::tiny_config(kind), kind), seed, lo);
}

torch::Tensor random_ids(int64_t B, int64_t T, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(3, 96, {B, T}, torch::kLong);
}

// max |a - b| in float64 on the CPU.
double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64)).abs().max().item<double>();
}

const torch::Device kCuda("cuda");

class GpuArchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuArchTest, LogitsEqualTheCpus) {
  EMLAB_REQUIRE_CUDA();
  auto cpu = tiny_on(GetParam(), "cpu"), gpu = tiny_on(GetParam(), "cuda");
  ASSERT_TRUE(gpu->device().is_cuda());
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(3, 11, 1);
  torch::Tensor ref = cpu->forward(ids);
  torch::Tensor got = gpu->forward(ids.to(kCuda));
  ASSERT_TRUE(got.is_cuda());
  EXPECT_LT(max_diff(got, ref), 1e-4);
  // Left padding (packed on both devices) and the last position only (generation's prefill).
  torch::Tensor mask = torch::ones({3, 11}, torch::kLong);
  mask[1].narrow(0, 0, 4).fill_(0);
  mask[2].narrow(0, 0, 9).fill_(0);
  ForwardArgs a;
  a.attention_mask = mask;
  a.position_ids = (mask.cumsum(1) - 1).clamp_min(0);
  ForwardArgs g = a;
  g.attention_mask = mask.to(kCuda);
  g.position_ids = a.position_ids.to(kCuda);
  EXPECT_LT(max_diff(gpu->forward(ids.to(kCuda), g), cpu->forward(ids, a)), 1e-4);
  a.last_logits_only = g.last_logits_only = true;
  EXPECT_LT(max_diff(gpu->forward(ids.to(kCuda), g), cpu->forward(ids, a)), 1e-4);
}

TEST_P(GpuArchTest, CachedDecodingWithRowSelectionEqualsTheCpu) {
  EMLAB_REQUIRE_CUDA();
  auto cpu = tiny_on(GetParam(), "cpu"), gpu = tiny_on(GetParam(), "cuda");
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(5, 10, 2);
  for (int64_t capacity : {0, 16}) {  // 0: the cache grows after the first selection
    KVCache cc, gc;
    cc.capacity = gc.capacity = capacity;
    ForwardArgs ca, ga;
    ca.cache = &cc;
    ga.cache = &gc;
    EXPECT_LT(max_diff(gpu->forward(ids.narrow(1, 0, 6).to(kCuda), ga), cpu->forward(ids.narrow(1, 0, 6), ca)), 1e-4);
    torch::Tensor orig = torch::arange(5, torch::kLong);
    const std::vector<std::vector<int64_t>> plan = {{1, 3, 4}, {2, 2, 0}, {}, {1}};
    for (int64_t t = 6; t < 10; ++t) {
      const auto& rows = plan[t - 6];
      if (!rows.empty()) {
        torch::Tensor sel = torch::tensor(rows, torch::kLong);
        cc.select_rows(sel);
        gc.select_rows(sel.to(kCuda));
        orig = orig.index_select(0, sel);
      }
      torch::Tensor step = ids.index_select(0, orig).narrow(1, t, 1);
      EXPECT_LT(max_diff(gpu->forward(step.to(kCuda), ga), cpu->forward(step, ca)), 1e-4)
          << "capacity " << capacity << " position " << t;
    }
    EXPECT_EQ(gc.length, 10);
  }
}

TEST_P(GpuArchTest, PackedBatchGradientsEqualTheCpus) {
  EMLAB_REQUIRE_CUDA();
  auto cpu = tiny_on(GetParam(), "cpu", "float32", 3), gpu = tiny_on(GetParam(), "cuda", "float32", 3);
  torch::Tensor ids = random_ids(3, 9, 4);
  torch::Tensor mask = torch::ones({3, 9}, torch::kLong);
  mask[0].narrow(0, 6, 3).fill_(0);  // right padding
  mask[2].narrow(0, 0, 2).fill_(0);  // left padding
  torch::manual_seed(5);
  torch::Tensor w = torch::randn({3, 9, 96});  // a loss that weighs every logit differently
  auto grads = [&](CausalLM& m) {
    for (auto& [name, t] : m.parameters()) t.requires_grad_(true);
    const torch::Device d = m.device();
    ForwardArgs a;
    a.attention_mask = mask.to(d);
    a.position_ids = (mask.cumsum(1) - 1).clamp_min(0).to(d);
    torch::Tensor loss = (m.forward(ids.to(d), a) * w.to(d)).sum();
    loss.backward();
    std::map<std::string, torch::Tensor> g;
    for (auto& [name, t] : m.parameters()) g[name] = t.grad().defined() ? t.grad().cpu() : torch::zeros(t.sizes());
    return g;
  };
  auto gc = grads(*cpu), gg = grads(*gpu);
  ASSERT_EQ(gc.size(), gg.size());
  for (const auto& [name, g] : gc) {
    const double scale = g.abs().max().item<double>();
    EXPECT_LT(max_diff(gg.at(name), g), 1e-4 * std::max(1.0, scale)) << name;
  }
}

// bf16 weights and activations on the GPU against fp32 on the CPU: the relative error of the logits
// is that of bf16's 8-bit mantissa through two layers (a wrong kernel is off by ~100%).
TEST_P(GpuArchTest, Bfloat16StaysCloseToFloat32) {
  EMLAB_REQUIRE_CUDA();
  auto cpu = tiny_on(GetParam(), "cpu"), gpu = tiny_on(GetParam(), "cuda", "bfloat16");
  ASSERT_EQ(gpu->dtype(), torch::kBFloat16);
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(2, 12, 6);
  torch::Tensor ref = cpu->forward(ids).to(torch::kFloat64);
  torch::Tensor got = gpu->forward(ids.to(kCuda)).to(torch::kCPU, torch::kFloat64);
  const double rel = ((got - ref).norm() / ref.norm()).item<double>();
  EXPECT_LT(rel, 0.03);
  // Cached decoding in bf16 follows the same logits as recomputation (within bf16's rounding).
  KVCache cache;
  ForwardArgs a;
  a.cache = &cache;
  gpu->forward(ids.narrow(1, 0, 8).to(kCuda), a);
  torch::Tensor full = gpu->forward(ids.to(kCuda)).to(torch::kCPU, torch::kFloat64);
  for (int64_t t = 8; t < 12; ++t) {
    torch::Tensor step = gpu->forward(ids.narrow(1, t, 1).to(kCuda), a).to(torch::kCPU, torch::kFloat64).squeeze(1);
    const double r = ((step - full.select(1, t)).norm() / full.select(1, t).norm()).item<double>();
    EXPECT_LT(r, 0.03) << "position " << t;
  }
}

// Decoding steps replayed as a CUDA graph equal plain forward steps; the graph is recorded once,
// and again after rows leave the batch (the cache's storage changes).
TEST_P(GpuArchTest, DecodeGraphStepsEqualForward) {
  EMLAB_REQUIRE_CUDA();
  ASSERT_TRUE(DecodeGraph::available(*tiny_on(GetParam(), "cuda")));
  for (const std::string dtype : {"float32", "bfloat16"}) {
    auto gpu = tiny_on(GetParam(), "cuda", dtype);
    torch::NoGradGuard ng;
    const int64_t P = 5, cap = 14;
    torch::Tensor ids = random_ids(4, cap, 7).to(kCuda);
    torch::Tensor mask = torch::ones({4, cap}, torch::kLong).to(kCuda);
    mask[2].narrow(0, 0, 3).zero_();  // a left-padded prompt
    torch::Tensor pos = (mask.cumsum(1) - 1).clamp_min(0);
    KVCache plain, graphed;
    plain.capacity = graphed.capacity = cap;
    for (KVCache* c : {&plain, &graphed}) {
      ForwardArgs a;
      a.cache = c;
      a.attention_mask = mask.narrow(1, 0, P);
      a.position_ids = pos.narrow(1, 0, P);
      a.last_logits_only = true;
      gpu->forward(ids.narrow(1, 0, P), a);
    }
    DecodeGraph graph(*gpu);
    torch::Tensor rows = torch::arange(4, torch::kLong);
    for (int64_t t = P; t < cap; ++t) {
      if (t == 9) {  // rows 0 and 2 leave
        torch::Tensor keep = torch::tensor(std::vector<int64_t>{1, 3}, torch::kLong);
        plain.select_rows(keep.to(kCuda));
        graphed.select_rows(keep.to(kCuda));
        rows = rows.index_select(0, keep);
      }
      const torch::Tensor r = rows.to(kCuda);
      ForwardArgs a;
      a.cache = &plain;
      a.attention_mask = mask.index_select(0, r).narrow(1, 0, t + 1);
      a.position_ids = pos.index_select(0, r).narrow(1, t, 1);
      a.last_logits_only = true;
      torch::Tensor step = ids.index_select(0, r).narrow(1, t, 1);
      torch::Tensor want = gpu->forward(step, a);
      torch::Tensor got = graph.step(step, a.position_ids, a.attention_mask, graphed);
      const double tol = dtype == "float32" ? 1e-4 : 0.03 * want.abs().max().item<double>();
      EXPECT_LT(max_diff(got, want), tol) << dtype << " position " << t;
      EXPECT_EQ(graphed.length, t + 1);
    }
    EXPECT_EQ(graph.captures(), 2) << dtype;  // at the first step and after the rows left
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, GpuArchTest,
                         ::testing::Values("llama", "llama3", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text"));

}  // namespace
