// Batched generation: greedy decoding equals a reference loop that recomputes everything, batching
// and padding change nothing, seeds reproduce, stops and limits work.
#include <gtest/gtest.h>

#include <functional>

#include "emlab/error.h"
#include "emlab/generator.h"
#include "fake_tokenizer.h"
#include "test_util.h"
#include "tiny_models.h"

using namespace emlab;

namespace {

std::shared_ptr<CausalLM> tiny(const std::string& kind, uint64_t seed = 0) {
  return CausalLM::init_random(ModelConfig::from_json(test::tiny_config(kind), kind), seed);
}

// Greedy continuation by full recomputation at every step (no cache, no batching).
std::vector<int32_t> reference_greedy(const CausalLM& model, std::vector<int32_t> ids, int64_t steps) {
  torch::NoGradGuard ng;
  std::vector<int32_t> out;
  for (int64_t s = 0; s < steps; ++s) {
    torch::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
    int32_t next = static_cast<int32_t>(model.forward(t).select(1, t.size(1) - 1).argmax(-1).item<int64_t>());
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

SampleOptions quiet(SampleOptions o = {}) {
  o.progress = false;
  return o;
}

const std::vector<std::vector<int32_t>> kPrompts = {{5, 17, 33, 8, 60, 12, 7}, {40, 41}, {9, 90, 3, 77}};

class GenArchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GenArchTest, GreedyBatchedEqualsReference) {
  auto model = tiny(GetParam(), 11);
  test::FakeTokenizer tok(96);
  SampleOptions o = quiet();
  o.temperature = 0;
  o.max_new_tokens = 12;
  auto results = generate(*model, tok, kPrompts, /*n=*/2, o);
  ASSERT_EQ(results.size(), kPrompts.size());
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    auto ref = reference_greedy(*model, kPrompts[p], 12);
    for (int s = 0; s < 2; ++s) {
      EXPECT_EQ(results[p][s].tokens, ref) << "prompt " << p << " sample " << s;
      EXPECT_EQ(results[p][s].finish_reason, "length");
      EXPECT_EQ(results[p][s].text, tok.decode(ref));
    }
  }
  // One prompt at a time, batch size 1: identical.
  o.batch_size = 1;
  for (size_t p = 0; p < kPrompts.size(); ++p)
    EXPECT_EQ(generate(*model, tok, {kPrompts[p]}, 1, o)[0][0].tokens, results[p][0].tokens);
}

INSTANTIATE_TEST_SUITE_P(Architectures, GenArchTest, ::testing::Values("llama", "qwen2", "qwen3", "mistral"));

TEST(Generator, SeedReproducesAndDiffers) {
  auto model = tiny("llama", 2);
  test::FakeTokenizer tok(96);
  SampleOptions o = quiet();
  o.max_new_tokens = 10;
  o.seed = 123;
  auto a = generate(*model, tok, kPrompts, 4, o);
  auto b = generate(*model, tok, kPrompts, 4, o);
  o.seed = 124;
  auto c = generate(*model, tok, kPrompts, 4, o);
  int same_as_other_seed = 0;
  for (size_t p = 0; p < kPrompts.size(); ++p)
    for (int s = 0; s < 4; ++s) {
      EXPECT_EQ(a[p][s].tokens, b[p][s].tokens);
      same_as_other_seed += a[p][s].tokens == c[p][s].tokens;
    }
  EXPECT_LT(same_as_other_seed, 3);
  // Samples of one prompt differ from each other (temperature 1 on a random model).
  EXPECT_NE(a[0][0].tokens, a[0][1].tokens);
}

TEST(Generator, StopsOnEosAndStopStrings) {
  auto model = tiny("qwen2", 3);
  test::FakeTokenizer tok(96);
  SampleOptions o = quiet();
  o.temperature = 0;
  o.max_new_tokens = 10;
  auto ref = reference_greedy(*model, kPrompts[0], 10);
  // EOS = the 4th greedy token: the answer is the first 3 tokens, finish "stop".
  o.eos_ids = {ref[3]};
  auto r = generate(*model, tok, {kPrompts[0]}, 1, o)[0][0];
  size_t first = std::find(ref.begin(), ref.end(), ref[3]) - ref.begin();
  EXPECT_EQ(r.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + first));
  EXPECT_EQ(r.finish_reason, "stop");
  // min_new_tokens suppresses that EOS at the start.
  o.min_new_tokens = 6;
  auto forced = generate(*model, tok, {kPrompts[0]}, 1, o)[0][0];
  EXPECT_GE(forced.tokens.size(), 6u);
  // Stop string = text of greedy token 2: the text is cut before it.
  o.eos_ids.clear();
  o.min_new_tokens = 0;
  o.stop = {tok.token_bytes(ref[2])};
  auto s = generate(*model, tok, {kPrompts[0]}, 1, o)[0][0];
  EXPECT_EQ(s.finish_reason, "stop");
  std::string expect = tok.decode(ref);
  expect.resize(expect.find(o.stop[0]));
  EXPECT_EQ(s.text, expect);
}

TEST(Generator, PromptLongerThanContextIsAnError) {
  auto model = tiny("llama");
  test::FakeTokenizer tok(96);
  std::vector<int32_t> longp(64, 5);  // context is 64
  EXPECT_THROW(generate(*model, tok, {longp}, 1, quiet()), InputError);
  // A prompt near the end of the context stops at the context, not beyond.
  std::vector<int32_t> nearly(60, 5);
  SampleOptions o = quiet();
  o.max_new_tokens = 50;
  auto r = generate(*model, tok, {nearly}, 1, o)[0][0];
  EXPECT_EQ(r.tokens.size(), 4u);
  EXPECT_EQ(r.finish_reason, "length");
}

TEST(Generator, EachPromptHasItsOwnRoomInTheContext) {
  // Batched with a prompt near the end of the context, a short prompt still gets its full
  // max_new_tokens (as one by one), and the long one stops at the context.
  auto model = tiny("llama", 5);
  test::FakeTokenizer tok(96);
  SampleOptions o = quiet();
  o.temperature = 0;
  o.max_new_tokens = 20;
  const std::vector<int32_t> near_end(55, 7), short_prompt = {40, 41};  // context is 64
  auto both = generate(*model, tok, {near_end, short_prompt}, 2, o);
  EXPECT_EQ(both[0][0].tokens.size(), 9u);
  EXPECT_EQ(both[0][0].finish_reason, "length");
  EXPECT_EQ(both[1][0].tokens, reference_greedy(*model, short_prompt, 20));
  EXPECT_EQ(both[1][1].tokens, both[1][0].tokens);
  EXPECT_EQ(both[0][0].tokens, generate(*model, tok, {near_end}, 1, o)[0][0].tokens);
}

TEST(Generator, SamplingOptionsOutOfRangeAreErrors) {
  auto model = tiny("llama");
  test::FakeTokenizer tok(96);
  for (auto set : std::vector<std::function<void(SampleOptions&)>>{
           [](SampleOptions& o) { o.top_p = -0.1; }, [](SampleOptions& o) { o.top_p = 1.5; },
           [](SampleOptions& o) { o.temperature = -1; }, [](SampleOptions& o) { o.top_k = -2; }}) {
    SampleOptions o = quiet();
    set(o);
    EXPECT_THROW(generate(*model, tok, kPrompts, 1, o), InputError);
  }
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  torch::manual_seed(0);
  torch::Tensor logits = torch::randn({8, 50});
  torch::Tensor u = torch::rand({8}, torch::kFloat64);
  SampleOptions o;
  o.top_k = 1;
  EXPECT_TRUE(torch::equal(sample_tokens(logits, o, u), logits.argmax(-1)));
  o.top_k = 0;
  o.top_p = 1e-6;
  EXPECT_TRUE(torch::equal(sample_tokens(logits, o, u), logits.argmax(-1)));
  o.top_p = 0.0;  // keeps only the first candidate, as the OpenAI API does
  EXPECT_TRUE(torch::equal(sample_tokens(logits, o, u), logits.argmax(-1)));
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  // logits log(0.5, 0.3, 0.2, 0): 20000 uniform draws; top-p 0.75 keeps {0.5, 0.3} renormalised;
  // top-k 2 does the same.
  torch::Tensor logits = torch::log(torch::tensor({0.5, 0.3, 0.2, 0.0})).to(torch::kFloat32).unsqueeze(0).repeat({20000, 1});
  torch::manual_seed(1);
  torch::Tensor u = torch::rand({20000}, torch::kFloat64);
  auto freq = [&](const SampleOptions& o) {
    torch::Tensor t = sample_tokens(logits, o, u);
    return torch::bincount(t, {}, 4).to(torch::kFloat64) / 20000.0;
  };
  SampleOptions o;
  auto f = freq(o);
  EXPECT_NEAR(f[0].item<double>(), 0.5, 0.015);
  EXPECT_NEAR(f[1].item<double>(), 0.3, 0.015);
  EXPECT_NEAR(f[2].item<double>(), 0.2, 0.015);
  EXPECT_EQ(f[3].item<double>(), 0.0);  // probability 0 is never drawn
  o.top_p = 0.75;
  f = freq(o);
  EXPECT_NEAR(f[0].item<double>(), 0.625, 0.015);
  EXPECT_NEAR(f[1].item<double>(), 0.375, 0.015);
  EXPECT_EQ(f[2].item<double>(), 0.0);
  o.top_p = 1.0;
  o.top_k = 2;
  f = freq(o);
  EXPECT_NEAR(f[0].item<double>(), 0.625, 0.015);
  EXPECT_EQ(f[2].item<double>(), 0.0);
  // Temperature 2 flattens: p ~ sqrt(p).
  o.top_k = 0;
  o.temperature = 2.0;
  f = freq(o);
  double z = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.2);
  EXPECT_NEAR(f[0].item<double>(), std::sqrt(0.5) / z, 0.015);
}

}  // namespace

namespace {

TEST(Generator, NeverSamplesBeyondTheTokenizersVocabulary) {
  // The model has 96 rows, the tokenizer 40 tokens: ids 40..95 are padding.
  auto model = CausalLM::init_random(ModelConfig::from_json(test::tiny_config("llama"), "tiny"), 4);
  test::FakeTokenizer tok(40);
  SampleOptions o;
  o.progress = false;
  o.max_new_tokens = 20;
  o.temperature = 2.0;  // flat: without the mask most draws would be >= 40
  auto r = generate(*model, tok, {{5, 6, 7}}, 8, o);
  for (const auto& c : r[0])
    for (int32_t t : c.tokens) EXPECT_LT(t, 40);
}

}  // namespace
