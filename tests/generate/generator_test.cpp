// Batched generation: greedy decoding equals a reference loop that recomputes everything, batching
// and padding change nothing, seeds reproduce, stops and limits work.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "emlab/error.h"
#include "emlab/generator.h"
#include "emlab/hooks.h"
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

// Samples sharing their prompt's keys and values (the default, where the CPU kernels read the
// cache) are exactly those of copied rows: tokens, log-probabilities and top tokens, with rows
// ending early (EOS) and prompts of different lengths in one chunk.
TEST(Generator, SharedPromptsGiveExactlyTheSamplesOfCopiedRows) {
  for (const std::string kind : {"llama", "qwen2"}) {
    auto model = tiny(kind, 4);
    test::FakeTokenizer tok(96);
    SampleOptions o = quiet();
    o.max_new_tokens = 14;
    o.seed = 9;
    o.batch_size = 7;  // chunks cut through a prompt's samples
    o.eos_ids = {3, 4, 5, 6, 7, 8};  // rows end early
    o.logprobs = true;
    o.top_logprobs = 3;
    auto shared = generate(*model, tok, kPrompts, 5, o);
    o.share_prompts = false;
    auto copied = generate(*model, tok, kPrompts, 5, o);
    int early = 0;
    for (size_t p = 0; p < kPrompts.size(); ++p)
      for (int s = 0; s < 5; ++s) {
        const Completion &a = shared[p][s], &b = copied[p][s];
        EXPECT_EQ(a.step_tokens, b.step_tokens) << kind << " prompt " << p << " sample " << s;
        EXPECT_EQ(a.logprobs, b.logprobs) << kind << " prompt " << p << " sample " << s;
        ASSERT_EQ(a.top_logprobs.size(), b.top_logprobs.size());
        for (size_t t = 0; t < a.top_logprobs.size(); ++t)
          for (size_t k = 0; k < a.top_logprobs[t].size(); ++k) {
            EXPECT_EQ(a.top_logprobs[t][k].id, b.top_logprobs[t][k].id);
            EXPECT_EQ(a.top_logprobs[t][k].logprob, b.top_logprobs[t][k].logprob);
          }
        early += a.finish_reason == "stop";
      }
    EXPECT_GT(early, 0) << "some rows end before the others";
  }
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

// Greedy picks (temperature 0) are torch's argmax of the float32 logits: the first of equal
// largest values, a NaN counting as the largest, -inf rows; float32 and bf16 logits, widths around
// the 16-wide steps, one row and many.
TEST(Sampler, GreedyIsTorchsArgmaxOnFloat32AndBf16) {
  torch::manual_seed(11);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  SampleOptions o;
  o.temperature = 0.0;
  for (int64_t V : {1, 15, 16, 17, 33, 5003}) {
    for (int64_t B : {1, 9}) {
      torch::Tensor logits = torch::randn({B, V}) * 4.0;
      if (B > 1 && V > 3) {
        logits[1].fill_(-inf);     // every value -inf: the first
        logits[2][V - 1] = 100.0;  // the largest in the last lane of the tail
        logits[3][V / 2] = 50.0;   // equal largest: the first
        logits[3][V - 2] = 50.0;
        logits[4][V / 3] = nan;  // NaNs (and an inf before them): the first NaN
        logits[4][V - 1] = nan;
        logits[4][0] = inf;
        logits[5].fill_(2.0);      // all equal: the first
        logits[6][V - 1] = inf;    // an inf last
        logits[7].narrow(0, 0, V / 2).fill_(-0.0);  // zeros of both signs the largest: the first
        logits[7].narrow(0, V / 2, V - V / 2).fill_(0.0);
        logits[7][0] = -1.0;
      }
      for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
        const torch::Tensor x = logits.to(dt);
        const torch::Tensor want = x.to(torch::kFloat32).argmax(-1);
        const torch::Tensor got = sample_tokens(x, o, torch::Tensor());
        EXPECT_TRUE(torch::equal(got, want)) << "V " << V << " B " << B << " " << dt << ": " << got << " vs " << want;
      }
    }
  }
}

// The sampler's top-k/top-p without a full sort picks exactly what the textbook version picks:
// sort the whole vocabulary, keep the first k (renormalised), drop every candidate with mass >= p
// before it, draw by inverse CDF with the same uniforms.
torch::Tensor full_sort_sample(const torch::Tensor& logits, double top_p, int64_t top_k, const torch::Tensor& u) {
  torch::Tensor x = logits.to(torch::kFloat64);
  auto [sx, order] = x.sort(-1, /*descending=*/true);
  if (top_k > 0) sx = sx.narrow(-1, 0, top_k), order = order.narrow(-1, 0, top_k);
  torch::Tensor p = torch::softmax(sx, -1);
  torch::Tensor keep = (p.cumsum(-1) - p) < top_p;
  keep.narrow(-1, 0, 1).fill_(true);
  p = p * keep;
  torch::Tensor cdf = p.cumsum(-1);
  torch::Tensor target = u.to(torch::kFloat64).unsqueeze(-1) * cdf.narrow(-1, cdf.size(-1) - 1, 1);
  torch::Tensor pick = torch::searchsorted(cdf, target, false, true).clamp_max(cdf.size(-1) - 1);
  return order.gather(-1, pick).squeeze(-1);
}

TEST(Sampler, TopPAndTopKWithoutFullSortMatchTheFullSort) {
  torch::manual_seed(3);
  const int64_t B = 64, V = 5000;
  // Peaked rows (nucleus inside the first 64 candidates) and flat rows (several rounds, up to V).
  torch::Tensor peaked = torch::randn({B, V}) * 4.0;
  torch::Tensor flat = torch::randn({B, V}) * 0.1;
  torch::Tensor mixed = torch::cat({peaked.narrow(0, 0, B / 2), flat.narrow(0, 0, B / 2)});
  torch::Tensor u = torch::rand({B}, torch::kFloat64);
  int64_t differ = 0, compared = 0;
  for (const torch::Tensor& logits : {peaked, flat, mixed}) {
    for (double p : {0.0, 0.3, 0.9, 0.95, 0.999}) {
      SampleOptions o;
      o.top_p = p;
      differ += sample_tokens(logits, o, u).ne(full_sort_sample(logits, p, 0, u)).sum().item<int64_t>();
      o.top_k = 40;
      differ += sample_tokens(logits, o, u).ne(full_sort_sample(logits, p, 40, u)).sum().item<int64_t>();
      compared += 2 * B;
    }
    SampleOptions o;
    o.top_k = 1000;
    differ += sample_tokens(logits, o, u).ne(full_sort_sample(logits, 1.0, 1000, u)).sum().item<int64_t>();
    compared += B;
  }
  // float32 (sampler) against float64 (reference): a draw may land within rounding of a boundary.
  EXPECT_LE(differ, compared / 500) << differ << " of " << compared << " draws differ";
  // The flat rows need more than the first round: their 0.9-nucleus spans thousands of tokens.
  SampleOptions o;
  o.top_p = 0.9;
  torch::Tensor t = sample_tokens(flat, o, u);
  EXPECT_TRUE(torch::equal(t, full_sort_sample(flat, 0.9, 0, u)));
}

// Without top-k/top-p the draw walks each row instead of materialising its cumulative sum: the
// same picks as torch's cumsum and searchsorted on the same probabilities, including uniforms at 0,
// just below 1 and exactly at a stored partial sum, zero-probability tokens and a row of one token.
TEST(Sampler, WholeVocabularyDrawEqualsCumsumAndSearch) {
  torch::manual_seed(5);
  const int64_t B = 40, V = 5003;  // V not a multiple of the walk's blocks
  torch::Tensor logits = torch::randn({B, V}) * 3.0;
  logits.narrow(1, 0, 700).narrow(0, 0, 4).fill_(-std::numeric_limits<float>::infinity());  // zeros up front
  logits[5].fill_(-std::numeric_limits<float>::infinity());
  logits[5][4000] = 1.0;  // one token left
  for (double temperature : {1.0, 0.7}) {
    torch::Tensor probs = torch::softmax(logits / temperature, -1);
    torch::Tensor cdf = probs.cumsum(-1);  // (B, V)
    torch::Tensor u = torch::rand({B}, torch::kFloat64);
    u[0] = 0.0;
    u[1] = std::nextafter(1.0, 0.0);
    // Rows 2..9: u lands exactly on a stored partial sum (searchsorted(right) then takes the next).
    for (int64_t b = 2; b < 10; ++b) {
      const float c = cdf[b][b * 400].item<float>(), last = cdf[b][V - 1].item<float>();
      u[b] = static_cast<double>(c / last);
    }
    torch::Tensor uf = u.to(torch::kFloat32).unsqueeze(1);
    torch::Tensor want =
        torch::searchsorted(cdf, uf * cdf.narrow(1, V - 1, 1), false, true).clamp_max(V - 1).squeeze(1);
    SampleOptions o;
    o.temperature = temperature;
    torch::Tensor got = sample_tokens(logits, o, u);
    EXPECT_TRUE(torch::equal(got, want)) << "temperature " << temperature << ": "
                                         << got.ne(want).sum().item<int64_t>() << " picks differ";
    EXPECT_EQ(got[5].item<int64_t>(), 4000);
    EXPECT_GE(got.narrow(0, 0, 4).min().item<int64_t>(), 700);  // never a zero-probability token
  }
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

namespace {

// Token i is byte i: random sampling produces partial UTF-8 sequences.
class ByteTokenizer : public test::FakeTokenizer {
 public:
  ByteTokenizer() : FakeTokenizer(256) {}
  std::string token_bytes(int32_t id) const override { return std::string(1, static_cast<char>(id)); }
  std::string decode(const std::vector<int32_t>& ids, bool = false) const override {
    std::string s;
    for (int32_t id : ids) s += token_bytes(id);
    return s;
  }
};

// Whether the first `len` bytes of `text` end inside a well-formed multi-byte UTF-8 character of
// `text` (a lead byte whose continuation bytes all follow, but not all within len).
bool splits_a_character(const std::string& text, size_t len) {
  for (size_t back = 1; back <= std::min<size_t>(3, len); ++back) {
    const unsigned char c = static_cast<unsigned char>(text[len - back]);
    if ((c & 0xC0) == 0x80) continue;
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need <= back || len - back + need > text.size()) return false;
    for (size_t i = len - back + 1; i < len - back + need; ++i)
      if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) return false;  // malformed anyway
    return true;
  }
  return false;
}

struct Streamed {
  std::string text;
  int events = 0;
  int finishes = 0;
  std::string finish_reason;
};

TEST(GeneratorStream, StreamedPiecesConcatenateToTheReturnedText) {
  auto model = tiny("qwen2", 3);
  test::FakeTokenizer tok(60);
  SampleOptions o = quiet();
  o.max_new_tokens = 12;
  o.temperature = 1.5;
  o.seed = 7;
  o.batch_size = 5;                 // chunks mix prompts
  o.eos_ids = {3};
  o.stop = {"7>", "<1"};            // stop strings straddle tokens: "<1" is the start of "<12>"
  std::map<std::pair<int64_t, int64_t>, Streamed> got;
  std::vector<GenerateRequest> requests;
  for (const auto& p : kPrompts) requests.push_back({p, 6, nullptr});
  auto result = generate(*model, tok, requests, o, [&](const TokenEvent& e) {
    Streamed& s = got[{e.request, e.sample}];
    EXPECT_EQ(s.finishes, 0) << "event after the sequence finished";
    s.text += e.text;
    s.events += 1;
    if (!e.finish_reason.empty()) s.finishes += 1, s.finish_reason = e.finish_reason;
    return true;
  });
  int stopped_by_string = 0;
  for (size_t r = 0; r < requests.size(); ++r)
    for (int64_t k = 0; k < 6; ++k) {
      const Completion& c = result[r][k];
      const Streamed& s = got[{static_cast<int64_t>(r), k}];
      EXPECT_EQ(s.text, c.text) << r << "/" << k;
      EXPECT_EQ(s.finishes, 1);
      EXPECT_EQ(s.finish_reason, c.finish_reason);
      // One event per step: each new token, plus the EOS step when EOS ended it.
      const bool eos_end = c.finish_reason == "stop" && c.text == tok.decode(c.tokens);
      EXPECT_GE(s.events, static_cast<int>(c.tokens.size()));
      EXPECT_LE(s.events, static_cast<int>(c.tokens.size()) + (eos_end ? 1 : 0));
      stopped_by_string += c.text != tok.decode(c.tokens);
    }
  EXPECT_GT(stopped_by_string, 0) << "no sequence met a stop string: the hold-back was not exercised";
  // Without a callback the completions are the same.
  auto plain = generate(*model, tok, requests, o);
  for (size_t r = 0; r < requests.size(); ++r)
    for (int64_t k = 0; k < 6; ++k) EXPECT_EQ(plain[r][k].tokens, result[r][k].tokens);
}

TEST(GeneratorStream, PartialUtf8IsHeldBackUntilComplete) {
  nlohmann::json cfg = test::tiny_config("llama");
  cfg["vocab_size"] = 256;
  auto model = CausalLM::init_random(ModelConfig::from_json(cfg, "tiny256"), 5);
  ByteTokenizer tok;
  SampleOptions o = quiet();
  o.max_new_tokens = 40;
  o.temperature = 3.0;  // near uniform over 256 bytes: lead bytes of 2-4 byte sequences are common
  std::map<std::pair<int64_t, int64_t>, std::string> text;
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> cuts;  // streamed length after each event
  int held = 0;
  auto result = generate(*model, tok, {{{65, 66}, 8, nullptr}}, o, [&](const TokenEvent& e) {
    std::string& t = text[{e.request, e.sample}];
    t += e.text;
    cuts[{e.request, e.sample}].push_back(t.size());
    const unsigned char c = static_cast<unsigned char>(e.token);
    held += e.finish_reason.empty() && c >= 0xC0 && c < 0xF8 && e.text.empty();
    return true;
  });
  for (int64_t k = 0; k < 8; ++k) {
    const auto key = std::make_pair(int64_t{0}, k);
    EXPECT_EQ(text[key], result[0][k].text);
    for (size_t len : cuts[key]) EXPECT_FALSE(splits_a_character(result[0][k].text, len)) << "sample " << k << " at " << len;
  }
  EXPECT_GT(held, 0) << "no lead byte was sampled: the test did not exercise the hold-back";
}

TEST(GeneratorStream, ACallbackCanCancelOneSequence) {
  auto model = tiny("llama", 2);
  test::FakeTokenizer tok(96);
  SampleOptions o = quiet();
  o.max_new_tokens = 8;
  o.temperature = 0.0;
  std::vector<GenerateRequest> requests = {{kPrompts[0], 2, nullptr}, {kPrompts[1], 1, nullptr}};
  auto full = generate(*model, tok, requests, o);
  int events_of_row = 0;
  auto cut = generate(*model, tok, requests, o, [&](const TokenEvent& e) {
    if (e.request != 0 || e.sample != 1) return true;
    return ++events_of_row < 3;  // stop after the third token
  });
  EXPECT_EQ(cut[0][1].finish_reason, "cancelled");
  EXPECT_EQ(cut[0][1].tokens.size(), 3u);  // cancelled on the third token's event
  EXPECT_EQ(std::vector<int32_t>(full[0][1].tokens.begin(), full[0][1].tokens.begin() + 3), cut[0][1].tokens);
  EXPECT_EQ(cut[0][0].tokens, full[0][0].tokens);
  EXPECT_EQ(cut[1][0].tokens, full[1][0].tokens);
}

// Reference log-softmax over the tokenizer's vocabulary at the last position, full recompute.
torch::Tensor reference_logprobs(const CausalLM& model, const std::vector<int32_t>& ids, int64_t known) {
  torch::NoGradGuard ng;
  torch::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
  torch::Tensor logits = model.forward(t).select(1, t.size(1) - 1).reshape({-1}).narrow(0, 0, known);
  return torch::log_softmax(logits.to(torch::kFloat64), 0);
}

TEST(GeneratorLogprobs, TopLogprobsAreTheModelsLogSoftmaxAndGreedyTakesTheMaximum) {
  auto model = tiny("qwen3", 1);
  test::FakeTokenizer tok(40);  // ids 40..95 are vocabulary padding: excluded
  SampleOptions o = quiet();
  o.max_new_tokens = 6;
  o.temperature = 0.0;
  o.logprobs = true;
  o.top_logprobs = 5;
  auto r = generate(*model, tok, {kPrompts[0], kPrompts[2]}, 1, o);
  for (size_t p = 0; p < 2; ++p) {
    const Completion& c = r[p][0];
    ASSERT_EQ(c.logprobs.size(), 6u);
    ASSERT_EQ(c.top_logprobs.size(), 6u);
    std::vector<int32_t> ids = p == 0 ? kPrompts[0] : kPrompts[2];
    for (size_t s = 0; s < 6; ++s) {
      torch::Tensor ref = reference_logprobs(*model, ids, 40);
      auto top = ref.topk(5);
      double mass = 0;
      for (int64_t k = 0; k < 5; ++k) {
        EXPECT_EQ(c.top_logprobs[s][k].id, std::get<1>(top)[k].item<int64_t>()) << "step " << s << " rank " << k;
        EXPECT_NEAR(c.top_logprobs[s][k].logprob, std::get<0>(top)[k].item<double>(), 1e-5);
        mass += std::exp(c.top_logprobs[s][k].logprob);
        if (k > 0) EXPECT_LE(c.top_logprobs[s][k].logprob, c.top_logprobs[s][k - 1].logprob);
      }
      EXPECT_LE(mass, 1.0 + 1e-9);
      // Greedy: the chosen token is the most probable one.
      EXPECT_EQ(c.step_tokens[s], c.top_logprobs[s][0].id);
      EXPECT_DOUBLE_EQ(c.logprobs[s], c.top_logprobs[s][0].logprob);
      EXPECT_NEAR(c.logprobs[s], ref.max().item<double>(), 1e-5);
      ids.push_back(c.step_tokens[s]);
    }
  }
  // Log-probabilities are the model's, before temperature: a hot sampler reports the same first step.
  SampleOptions hot = o;
  hot.temperature = 1.7;
  hot.top_k = 3;
  auto h = generate(*model, tok, {kPrompts[0]}, 3, hot);
  for (const auto& c : h[0]) {
    for (size_t k = 0; k < 5; ++k) EXPECT_NEAR(c.top_logprobs[0][k].logprob, r[0][0].top_logprobs[0][k].logprob, 1e-6);
    // The chosen token's log-probability is its entry of the full distribution.
    torch::Tensor ref = reference_logprobs(*model, kPrompts[0], 40);
    EXPECT_NEAR(c.logprobs[0], ref[c.step_tokens[0]].item<double>(), 1e-5);
  }
  SampleOptions bad = o;
  bad.top_logprobs = 21;
  EXPECT_THROW(generate(*model, tok, {kPrompts[0]}, 1, bad), InputError);
}

TEST(GeneratorHooks, RequestsWithTheirOwnHooksShareABatch) {
  auto model = tiny("llama", 6);
  test::FakeTokenizer tok(96);
  torch::manual_seed(11);
  ResidualHooks steer, other;
  steer.add(HookSite::LayerOutput, 0, torch::randn({32}) * 4.0);
  other.ablate(torch::randn({32}), 1);
  SampleOptions o = quiet();
  o.max_new_tokens = 6;
  o.temperature = 0.0;
  o.batch_size = 16;
  std::vector<GenerateRequest> requests = {
      {kPrompts[0], 2, &steer}, {kPrompts[1], 1, nullptr}, {kPrompts[2], 2, &other}, {kPrompts[1], 1, &steer}};
  auto batched = generate(*model, tok, requests, o);
  int differs = 0;
  for (size_t r = 0; r < requests.size(); ++r) {
    auto alone = generate(*model, tok, {requests[r].prompt}, requests[r].n, o, requests[r].hooks);
    for (int64_t k = 0; k < requests[r].n; ++k) EXPECT_EQ(batched[r][k].tokens, alone[0][k].tokens) << "request " << r;
  }
  // The hooks matter: request 3 is request 1's prompt with steering.
  differs += batched[3][0].tokens != batched[1][0].tokens;
  EXPECT_EQ(differs, 1) << "steering did not change the greedy continuation; pick a larger vector";
}

}  // namespace
