// Batched generation on a CUDA device against the CPU: the sampler's uniforms are drawn on the CPU,
// so the same seed gives the same tokens on both (fp32), greedy and sampled, with top-k/top-p, and
// the same log-probabilities; bf16 on the GPU decodes within the vocabulary and the length limit.
// Skips without CUDA.
#include <gtest/gtest.h>

#include <set>

#include "emlab/generator.h"
#include "fake_tokenizer.h"
#include "test_util.h"
#include "tiny_models.h"

using namespace emlab;

namespace {

std::shared_ptr<CausalLM> tiny_on(const std::string& kind, const std::string& device, const std::string& dtype = "float32") {
  LoadOptions lo;
  lo.device = device;
  lo.dtype = dtype;
  return CausalLM::init_random(ModelConfig::from_json(test::tiny_config(kind), kind), 7, lo);
}

const std::vector<std::vector<int32_t>> kPrompts = {{5, 17, 33, 8, 60, 12, 7}, {40, 41}, {9, 90, 3, 77}};

class GpuGenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuGenTest, TokensAndLogprobsEqualTheCpus) {
  EMLAB_REQUIRE_CUDA();
  auto cpu = tiny_on(GetParam(), "cpu"), gpu = tiny_on(GetParam(), "cuda");
  test::FakeTokenizer tok(96);
  SampleOptions o;
  o.progress = false;
  o.max_new_tokens = 12;
  o.logprobs = true;
  o.top_logprobs = 3;
  o.seed = 5;
  o.batch_size = 4;  // 3 prompts x 3 samples in batches of 4: rows leave and join
  int compared = 0;
  for (double temperature : {0.0, 1.0}) {
    for (auto [top_k, top_p] : std::vector<std::pair<int64_t, double>>{{0, 1.0}, {20, 0.9}}) {
      o.temperature = temperature;
      o.top_k = top_k;
      o.top_p = top_p;
      auto c = generate(*cpu, tok, kPrompts, 3, o);
      auto g = generate(*gpu, tok, kPrompts, 3, o);
      for (size_t p = 0; p < kPrompts.size(); ++p)
        for (int s = 0; s < 3; ++s) {
          const Completion &a = c[p][s], &b = g[p][s];
          EXPECT_EQ(b.tokens, a.tokens) << "temperature " << temperature << " top_k " << top_k << " prompt " << p;
          ASSERT_EQ(b.logprobs.size(), a.logprobs.size());
          for (size_t i = 0; i < a.logprobs.size(); ++i) EXPECT_NEAR(b.logprobs[i], a.logprobs[i], 1e-4);
          ASSERT_EQ(b.top_logprobs.size(), a.top_logprobs.size());
          for (size_t i = 0; i < a.top_logprobs.size(); ++i) EXPECT_EQ(b.top_logprobs[i][0].id, a.top_logprobs[i][0].id);
          ++compared;
        }
    }
  }
  EXPECT_EQ(compared, 4 * 9);
}

// Rows finishing at different steps (EOS ids the random model often samples): on the GPU finished
// rows ride along in the graph-replayed batch and leave in groups, on the CPU they leave at once;
// every completion (tokens, finish reason) and, with graphs off on the GPU, the same.
TEST_P(GpuGenTest, RowsFinishingEarlyEqualTheCpus) {
  EMLAB_REQUIRE_CUDA();
  auto cpu = tiny_on(GetParam(), "cpu"), gpu = tiny_on(GetParam(), "cuda");
  test::FakeTokenizer tok(96);
  SampleOptions o;
  o.progress = false;
  o.max_new_tokens = 24;
  o.seed = 9;
  o.batch_size = 16;
  o.eos_ids = {3, 11, 19, 27, 35, 43, 51, 59};
  auto c = generate(*cpu, tok, kPrompts, 6, o);
  auto g = generate(*gpu, tok, kPrompts, 6, o);
  o.cuda_graphs = false;
  auto e = generate(*gpu, tok, kPrompts, 6, o);
  std::set<size_t> lengths;
  for (size_t p = 0; p < kPrompts.size(); ++p)
    for (int s = 0; s < 6; ++s) {
      EXPECT_EQ(g[p][s].tokens, c[p][s].tokens) << "prompt " << p << " sample " << s;
      EXPECT_EQ(g[p][s].finish_reason, c[p][s].finish_reason);
      EXPECT_EQ(e[p][s].tokens, c[p][s].tokens);
      lengths.insert(c[p][s].tokens.size());
    }
  EXPECT_GT(lengths.size(), 4u);  // the rows did finish at different steps
}

TEST_P(GpuGenTest, Bfloat16DecodesWithinTheVocabularyAndTheLimit) {
  EMLAB_REQUIRE_CUDA();
  auto gpu = tiny_on(GetParam(), "cuda", "bfloat16");
  test::FakeTokenizer tok(80);  // ids 80..95 are vocabulary padding: never sampled
  SampleOptions o;
  o.progress = false;
  o.max_new_tokens = 20;
  o.min_new_tokens = 20;
  auto g = generate(*gpu, tok, kPrompts, 8, o);
  std::set<int32_t> seen;
  for (const auto& req : g)
    for (const auto& c : req) {
      EXPECT_EQ(c.tokens.size(), 20u);
      EXPECT_EQ(c.finish_reason, "length");
      for (int32_t t : c.tokens) {
        EXPECT_GE(t, 0);
        EXPECT_LT(t, 80);
        seen.insert(t);
      }
    }
  EXPECT_GT(seen.size(), 20u);  // temperature 1 on a random model spreads over the vocabulary
}

INSTANTIATE_TEST_SUITE_P(Architectures, GpuGenTest, ::testing::Values("llama", "qwen2", "gemma2"));

}  // namespace
