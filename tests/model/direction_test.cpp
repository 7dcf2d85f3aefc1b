// Direction files and the --steer / --ablate specs: file round trip, import numbering, spec
// parsing, and what the hooks do to a forward pass and to cached generation.
#include "emlab/direction.h"

#include <gtest/gtest.h>

#include <cmath>

#include "emlab/error.h"
#include "emlab/generator.h"
#include "emlab/model.h"
#include "emlab/tensor_io.h"
#include "fake_tokenizer.h"
#include "test_util.h"
#include "tiny_models.h"

namespace fs = std::filesystem;

namespace emlab {
namespace {

std::shared_ptr<CausalLM> tiny(const std::string& kind = "llama", uint64_t seed = 2) {
  return CausalLM::init_random(ModelConfig::from_json(test::tiny_config(kind), kind), seed);
}

// A direction for the tiny models (2 layers, hidden 32) with distinct random rows.
Direction random_direction(uint64_t seed, double norm = 3.0) {
  torch::manual_seed(static_cast<int64_t>(seed));
  Direction d;
  d.vectors = torch::randn({2, 32});
  d.vectors = d.vectors / d.vectors.norm(2, {1}, true) * norm;
  return d;
}

std::string save_direction(const Direction& d, const std::string& tag) {
  const std::string path = (test::temp_dir(tag) / "dir.safetensors").string();
  direction_save(path, d);
  return path;
}

TEST(Direction, FileRoundTripAndErrors) {
  Direction d = random_direction(1);
  d.extra["prompt_last"] = d.vectors * 2;
  d.info = {{"positive_examples", 12}, {"best_layer", 1}};
  const std::string path = save_direction(d, "dirfile");
  Direction back = direction_load(path);
  EXPECT_TRUE(torch::equal(back.vectors, d.vectors));
  EXPECT_TRUE(torch::equal(back.extra.at("prompt_last"), d.vectors * 2));
  EXPECT_EQ(back.info["positive_examples"], 12);
  ASSERT_EQ(back.info["norms"].size(), 2u);
  EXPECT_NEAR(back.info["norms"][1].get<double>(), 3.0, 1e-5);
  EXPECT_THROW(back.at(2), InputError);
  // Not a direction file: a plain safetensors file is refused, naming what to do.
  const std::string other = (test::temp_dir("dirother") / "t.safetensors").string();
  tensors_save(other, {{"x", torch::zeros({2, 32})}});
  try {
    direction_load(other);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("direction import"), std::string::npos) << e.what();
  }
}

TEST(Direction, ImportRenumbersHiddenStatesToDecoderLayers) {
  // persona_vectors' rows: 0 = embedding output, l = decoder layer l-1.
  torch::Tensor hs = torch::arange(3 * 4, torch::kFloat32).view({3, 4});
  const std::string path = (test::temp_dir("dirimport") / "pv.safetensors").string();
  tensors_save(path, {{"response_avg_diff", hs}});
  Direction d = direction_import(path, "", LayerNumbering::HiddenStates);
  ASSERT_EQ(d.layers(), 2);
  EXPECT_TRUE(torch::equal(d.at(0), hs[1]));  // off by one: decoder layer 0 is hidden_states[1]
  EXPECT_TRUE(torch::equal(d.at(1), hs[2]));
  Direction same = direction_import(path, "response_avg_diff", LayerNumbering::Decoder);
  EXPECT_TRUE(torch::equal(same.vectors, hs));
  EXPECT_THROW(direction_import(path, "missing", LayerNumbering::Decoder), InputError);
}

TEST(Direction, SpecsParseAndPrintCanonically) {
  SteerSpec s = steer_spec_parse("d.safetensors:layer=3:scale=-1.5:positions=response", false);
  EXPECT_EQ(s.file, "d.safetensors");
  EXPECT_EQ(*s.layer, 3);
  EXPECT_DOUBLE_EQ(s.scale, -1.5);
  EXPECT_EQ(s.positions, HookPositions::Response);
  EXPECT_EQ(steer_spec_parse(steer_spec_string(s), false).scale, -1.5);
  SteerSpec a = steer_spec_parse("d.safetensors:layer=all:from=1", true);
  EXPECT_FALSE(a.layer.has_value());
  EXPECT_EQ(*a.from, 1);
  SteerSpec r = steer_spec_parse("random:seed=4:like=d.safetensors:layer=1:scale=8", false);
  EXPECT_EQ(*r.random_seed, 4u);
  EXPECT_EQ(r.file, "d.safetensors");
  EXPECT_EQ(steer_spec_string(steer_spec_parse(steer_spec_string(r), false)), steer_spec_string(r));
  for (const char* bad : {"", "d:layer=x", "d:scale=", "d:bogus=1", "random:seed=1", "random:like=d", "d:layer=-1",
                          "d:positions=middle"})
    EXPECT_THROW(steer_spec_parse(bad, false), InputError) << bad;
  EXPECT_THROW(steer_spec_parse("d:scale=2", true), InputError);  // ablation has no scale
}

TEST(Direction, ScaleZeroIsBitIdenticalAndAblationLeavesNoProjection) {
  auto model = tiny("qwen2");
  const Direction d = random_direction(2);
  const std::string path = save_direction(d, "dirzero");
  torch::Tensor ids = torch::tensor({{3, 50, 7, 9, 21}}, torch::kInt64);
  torch::Tensor plain = model->forward(ids);
  auto zero = steering_hooks({steer_spec_parse(path + ":layer=1:scale=0", false)}, 2, 32, model->device());
  ForwardArgs a;
  a.hooks = zero.get();
  EXPECT_TRUE(torch::equal(model->forward(ids, a), plain));
  auto steered = steering_hooks({steer_spec_parse(path + ":layer=1:scale=4", false)}, 2, 32, model->device());
  a.hooks = steered.get();
  EXPECT_FALSE(torch::allclose(model->forward(ids, a), plain));

  // After ablation at every layer, no layer output has a component along that layer's vector.
  auto ablated = steering_hooks({steer_spec_parse(path, true)}, 2, 32, model->device());
  std::vector<double> worst(2, 0.0);
  ablated->set_callback([&](HookSite site, int64_t layer, const torch::Tensor& h) {
    if (site == HookSite::LayerOutput) {
      torch::Tensor u = d.vectors[layer] / d.vectors[layer].norm();
      worst[layer] = std::max(worst[layer], torch::matmul(h, u).abs().max().item<double>());
    }
    return h;
  });
  a.hooks = ablated.get();
  model->forward(ids, a);
  for (int l = 0; l < 2; ++l) EXPECT_LT(worst[l], 1e-5) << "layer " << l;
  // Without ablation the projections are far from 0 (the check can fail).
  ResidualHooks watch;
  double seen = 0;
  watch.set_callback([&](HookSite site, int64_t layer, const torch::Tensor& h) {
    if (site == HookSite::LayerOutput) seen = std::max(seen, torch::matmul(h, d.vectors[layer] / 3.0).abs().max().item<double>());
    return h;
  });
  a.hooks = &watch;
  model->forward(ids, a);
  EXPECT_GT(seen, 1e-2);
}

TEST(Direction, RandomControlHasTheDirectionsNormAndIsSeeded) {
  const Direction d = random_direction(3, 5.0);
  const std::string path = save_direction(d, "dirrandom");
  auto capture_added = [&](const std::string& spec) {
    auto h = steering_hooks({steer_spec_parse(spec, false)}, 2, 32, torch::Device(torch::kCPU));
    return h->apply(HookSite::LayerOutput, 1, torch::zeros({1, 1, 32})).reshape({-1});
  };
  torch::Tensor r1 = capture_added("random:seed=1:like=" + path + ":layer=1:scale=1");
  torch::Tensor r1b = capture_added("random:seed=1:like=" + path + ":layer=1:scale=1");
  torch::Tensor r2 = capture_added("random:seed=2:like=" + path + ":layer=1:scale=1");
  EXPECT_NEAR(r1.norm().item<double>(), 5.0, 1e-4);
  EXPECT_TRUE(torch::equal(r1, r1b));
  EXPECT_FALSE(torch::allclose(r1, r2));
  EXPECT_LT(std::abs(torch::dot(r1, d.vectors[1]).item<double>() / 25.0), 0.7);  // not the direction itself
}

TEST(Direction, ShapeMismatchIsNamed) {
  const std::string path = save_direction(random_direction(4), "dirshape");
  EXPECT_THROW(steering_hooks({steer_spec_parse(path + ":layer=0", false)}, 2, 16, torch::Device(torch::kCPU)), InputError);
  EXPECT_THROW(steering_hooks({steer_spec_parse(path + ":layer=0", false)}, 3, 32, torch::Device(torch::kCPU)), InputError);
  EXPECT_THROW(steering_hooks({steer_spec_parse(path, false)}, 2, 32, torch::Device(torch::kCPU)), InputError);  // no layer
}

// Greedy continuation by full recomputation, with hooks that see the whole sequence each time.
std::vector<int32_t> greedy_recompute(const CausalLM& model, std::vector<int32_t> ids, int64_t steps, Hooks* hooks) {
  torch::NoGradGuard ng;
  std::vector<int32_t> out;
  for (int64_t s = 0; s < steps; ++s) {
    torch::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
    ForwardArgs a;
    a.hooks = hooks;
    const int32_t next = static_cast<int32_t>(model.forward(t, a).select(1, t.size(1) - 1).argmax(-1).item<int64_t>());
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

// Adds v at layer 0 (whose output feeds layer 1's keys and values) at positions [from, to) of a
// full recompute.
class RangeAdd : public Hooks {
 public:
  RangeAdd(torch::Tensor v, int64_t from, int64_t to) : v_(std::move(v)), from_(from), to_(to) {}
  torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) override {
    if (site != HookSite::LayerOutput || layer != 0) return h;
    torch::Tensor m = torch::zeros({1, h.size(1), 1});
    for (int64_t t = from_; t < std::min(to_, h.size(1)); ++t) m[0][t][0] = 1.0;
    return h + m * v_;
  }

 private:
  torch::Tensor v_;
  int64_t from_, to_;
};

TEST(Direction, SteeringWithTheKvCacheEqualsFullRecompute) {
  auto model = tiny("llama", 7);
  test::FakeTokenizer tok(96);
  const Direction d = random_direction(5, 6.0);
  const std::string path = save_direction(d, "dirkv");
  const std::vector<int32_t> prompt = {5, 17, 33, 8, 60};
  const int64_t P = static_cast<int64_t>(prompt.size());
  SampleOptions o;
  o.progress = false;
  o.temperature = 0.0;
  o.max_new_tokens = 6;
  int differs = 0;
  for (const char* positions : {"all", "prompt", "response"}) {
    auto hooks = steering_hooks({steer_spec_parse(path + ":layer=0:scale=1:positions=" + positions, false)}, 2, 32,
                                model->device());
    auto cached = generate(*model, tok, {prompt}, 1, o, hooks.get())[0][0].tokens;
    // all: every position; prompt: the prompt's positions; response: the last prompt position and
    // every generated one (the newest position of each cached forward call).
    const std::string p = positions;
    RangeAdd ref(d.vectors[0], p == "response" ? P - 1 : 0, p == "prompt" ? P : 1 << 20);
    EXPECT_EQ(cached, greedy_recompute(*model, prompt, 6, &ref)) << positions;
    differs += cached != greedy_recompute(*model, prompt, 6, nullptr);
  }
  EXPECT_GE(differs, 2) << "steering did not change the continuation: the comparison proves little";
}

}  // namespace
}  // namespace emlab
