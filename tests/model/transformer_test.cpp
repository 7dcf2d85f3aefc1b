// The decoder's forward pass on tiny random models of every architecture: cached decoding equals
// recomputation, padding and batching change nothing, save/load is bit-exact.
#include <gtest/gtest.h>

#include "emlab/error.h"
#include "emlab/hooks.h"
#include "emlab/model.h"
#include "emlab/safetensors.h"
#include "model/matvec.h"
#include "test_util.h"
#include "tiny_models.h"

using namespace emlab;

namespace {

std::shared_ptr<CausalLM> tiny(const std::string& kind, uint64_t seed = 0) {
  return CausalLM::init_random(ModelConfig::from_json(test::tiny_config(kind), kind), seed);
}

torch::Tensor random_ids(int64_t B, int64_t T, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(3, 96, {B, T}, torch::kLong);
}

// Every parameter's gradient of `loss` (zeros where none flows), the earlier gradients cleared.
std::map<std::string, torch::Tensor> parameter_grads(CausalLM& model, const torch::Tensor& loss) {
  for (auto& [name, t] : model.parameters()) t.mutable_grad() = torch::Tensor();
  loss.backward();
  std::map<std::string, torch::Tensor> g;
  for (auto& [name, t] : model.parameters()) g[name] = t.grad().defined() ? t.grad().clone() : torch::zeros_like(t);
  return g;
}

class ArchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchTest, CachedDecodingEqualsRecomputation) {
  auto model = tiny(GetParam());
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(2, 12, 1);
  torch::Tensor full = model->forward(ids);  // (2, 12, V)
  KVCache cache;
  ForwardArgs args;
  args.cache = &cache;
  torch::Tensor first = model->forward(ids.narrow(1, 0, 7), args);
  EXPECT_LT((first - full.narrow(1, 0, 7)).abs().max().item<double>(), 1e-5);
  for (int64_t t = 7; t < 12; ++t) {
    torch::Tensor step = model->forward(ids.narrow(1, t, 1), args);
    EXPECT_LT((step.squeeze(1) - full.select(1, t)).abs().max().item<double>(), 1e-5) << "position " << t;
  }
  EXPECT_EQ(cache.length, 12);
}

// Dropping finished rows (increasing indices: on a CPU whose decode kernels read the cache, the
// rows stay in place behind a row map; elsewhere, float64 here, kept rows move down in place) and
// duplicating/reordering them (a gather), one after another, with the cache growing in between or
// not: each row's next steps equal recomputing it alone.
TEST_P(ArchTest, CacheRowSelectionKeepsEachRowsState) {
  for (const std::string dtype : {"float32", "float64"}) {
    LoadOptions lo;
    lo.dtype = dtype;
    auto model = CausalLM::init_random(ModelConfig::from_json(test::tiny_config(GetParam()), GetParam()), 0, lo);
    torch::NoGradGuard ng;
    torch::Tensor ids = random_ids(5, 10, 11);
    torch::Tensor full = model->forward(ids);  // (5, 10, V)
    const double tol = dtype == "float64" ? 1e-10 : 1e-5;
    // Selections applied at positions 6, 7, 8 (each into the rows left by the one before).
    const std::vector<std::vector<std::vector<int64_t>>> plans = {
        {{1, 3, 4}, {0, 2}, {1}}, {{0, 1}, {}, {1}}, {{4, 4, 0}, {1, 2}, {1, 0}}, {{2}, {0}, {}}, {{0, 2, 3, 4}, {3, 3}, {}}};
    for (int64_t capacity : {0, 16}) {  // 0: the cache grows at position 6 (after the first selection)
      for (const auto& plan : plans) {
        KVCache cache;
        cache.capacity = capacity;
        ForwardArgs args;
        args.cache = &cache;
        model->forward(ids.narrow(1, 0, 6), args);
        torch::Tensor orig = torch::arange(5, torch::kLong);  // the original row of each batch row
        for (int64_t t = 6; t < 9; ++t) {
          const auto& rows = plan[t - 6];
          if (!rows.empty()) {
            torch::Tensor sel = torch::tensor(rows, torch::kLong);
            cache.select_rows(sel);
            orig = orig.index_select(0, sel);
            ASSERT_EQ(cache.batch_rows(), static_cast<int64_t>(rows.size()));
          }
          torch::Tensor step = model->forward(ids.index_select(0, orig).narrow(1, t, 1), args).squeeze(1);
          EXPECT_LT((step - full.index_select(0, orig).select(1, t)).abs().max().item<double>(), tol)
              << dtype << " capacity " << capacity << " rows " << orig << " position " << t;
        }
      }
    }
  }
}

// Duplicating rows (a prompt's samples) where the CPU kernels read the cache shares the filled
// positions (KVCache's shared prefix) instead of copying them: every later step, through drops, a
// duplication of the duplicates, a reorder and growth (both back to a plain cache), gives exactly
// the logits of a cache that copies.
TEST_P(ArchTest, ASharedPrefixDecodesExactlyAsCopiedRows) {
  auto model = tiny(GetParam());
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(3, 12, 21);
  // Selections at positions 5.. (into the rows left by the one before); {} = none.
  const std::vector<std::vector<int64_t>> plan = {{0, 0, 0, 2, 2, 1}, {}, {0, 2, 3, 5}, {1, 1, 3}, {2, 0, 1}, {}, {}};
  for (int64_t capacity : {16, 0}) {  // 0: the cache grows at the step after the first selection
    KVCache shared, copied;
    copied.share_prefix = false;
    shared.capacity = copied.capacity = capacity;
    ForwardArgs a, b;
    a.cache = &shared;
    b.cache = &copied;
    EXPECT_TRUE(torch::equal(model->forward(ids.narrow(1, 0, 5), a), model->forward(ids.narrow(1, 0, 5), b)));
    torch::Tensor orig = torch::arange(3, torch::kLong);
    for (int64_t t = 5; t < 12; ++t) {
      const auto& rows = plan[t - 5];
      if (!rows.empty()) {
        torch::Tensor sel = torch::tensor(rows, torch::kLong);
        shared.select_rows(sel);
        copied.select_rows(sel);
        orig = orig.index_select(0, sel);
        EXPECT_FALSE(copied.prefix_rows.defined());
        const bool kernels = model_detail::attention_kernels_read(shared.k[0]);
        if (t == 5) EXPECT_EQ(shared.prefix_rows.defined(), kernels) << "samples share their prompt";
        if (t == 7 && capacity > 0) EXPECT_EQ(shared.prefix_rows.defined(), kernels) << "dropping rows keeps it";
      }
      torch::Tensor x = ids.index_select(0, orig).narrow(1, t, 1);
      torch::Tensor la = model->forward(x, a), lb = model->forward(x, b);
      EXPECT_TRUE(torch::equal(la, lb)) << "capacity " << capacity << " position " << t << " max diff "
                                        << (la - lb).abs().max().item<double>();
    }
    EXPECT_FALSE(shared.prefix_rows.defined()) << "duplicating rows again at position 8 made the cache plain";
  }
}

TEST_P(ArchTest, LeftPaddedBatchEqualsOneByOne) {
  auto model = tiny(GetParam());
  torch::NoGradGuard ng;
  torch::Tensor a = random_ids(1, 9, 2), b = random_ids(1, 4, 3);
  // Batch: b left-padded with 5 pads (id 0).
  torch::Tensor ids = torch::zeros({2, 9}, torch::kLong);
  ids[0] = a[0];
  ids[1].narrow(0, 5, 4).copy_(b[0]);
  torch::Tensor mask = torch::ones({2, 9}, torch::kLong);
  mask[1].narrow(0, 0, 5).fill_(0);
  ForwardArgs args;
  args.attention_mask = mask;
  args.position_ids = (mask.cumsum(1) - 1).clamp_min(0);
  torch::Tensor batched = model->forward(ids, args);
  torch::Tensor la = model->forward(a), lb = model->forward(b);
  EXPECT_LT((batched[0] - la[0]).abs().max().item<double>(), 1e-5);
  EXPECT_LT((batched[1].narrow(0, 5, 4) - lb[0]).abs().max().item<double>(), 1e-5);
}

// A padded batch without a cache runs its position-wise work on the real tokens only (packed):
// padding positions come out as zeros, and the real positions' values and every parameter's
// gradient equal running each row alone. Right and left padding, all architectures.
TEST_P(ArchTest, PaddedBatchIsPackedAndItsGradientsEqualOneByOne) {
  auto model = tiny(GetParam(), 3);
  for (auto& [name, t] : model->parameters()) t.requires_grad_(true);
  const torch::Tensor a = random_ids(1, 9, 21), b = random_ids(1, 5, 22), c = random_ids(1, 7, 23);
  torch::manual_seed(24);
  const torch::Tensor w = torch::randn({3, 9, model->config().hidden_size});  // weights of the loss
  auto grads_of = [&](const torch::Tensor& loss) { return parameter_grads(*model, loss); };
  ForwardArgs hidden;
  hidden.hidden_only = true;
  // One by one: row r's hidden states weighted by w[r] at its own positions 0..len-1.
  torch::Tensor alone = (model->forward(a, hidden)[0] * w[0].narrow(0, 0, 9)).sum() +
                        (model->forward(b, hidden)[0] * w[1].narrow(0, 0, 5)).sum() +
                        (model->forward(c, hidden)[0] * w[2].narrow(0, 0, 7)).sum();
  const auto want = grads_of(alone);
  for (bool left : {false, true}) {
    torch::Tensor ids = torch::zeros({3, 9}, torch::kLong), mask = torch::zeros({3, 9}, torch::kLong);
    const std::vector<torch::Tensor> rows = {a, b, c};
    std::vector<int64_t> start(3);
    for (int64_t r = 0; r < 3; ++r) {
      const int64_t n = rows[r].size(1);
      start[r] = left ? 9 - n : 0;
      ids[r].narrow(0, start[r], n).copy_(rows[r][0]);
      mask[r].narrow(0, start[r], n).fill_(1);
    }
    ForwardArgs args = hidden;
    args.attention_mask = mask;
    args.position_ids = (mask.cumsum(1) - 1).clamp_min(0);
    torch::Tensor h = model->forward(ids, args);  // (3, 9, C)
    torch::Tensor loss = torch::zeros({});
    for (int64_t r = 0; r < 3; ++r) {
      const int64_t n = rows[r].size(1);
      loss = loss + (h[r].narrow(0, start[r], n) * w[r].narrow(0, 0, n)).sum();
    }
    EXPECT_NEAR(loss.item<double>(), alone.item<double>(), 1e-4 * (1 + std::abs(alone.item<double>())))
        << (left ? "left" : "right");
    EXPECT_EQ((h.detach() * (1 - mask).unsqueeze(-1)).abs().max().item<double>(), 0.0)
        << "padding positions should be zeros (packed)";
    const auto got = grads_of(loss);
    for (const auto& [name, g] : want) {
      const double scale = 1 + g.abs().max().item<double>();
      EXPECT_LT((got.at(name) - g).abs().max().item<double>(), 1e-4 * scale) << name << (left ? " left" : " right");
    }
  }
}

TEST_P(ArchTest, SaveLoadRoundTripIsBitExact) {
  auto model = tiny(GetParam(), 7);
  auto dir = test::temp_dir("roundtrip");
  model->save(dir.string());
  auto loaded = CausalLM::load(dir.string());
  ASSERT_EQ(loaded->parameters().size(), model->parameters().size());
  for (const auto& [name, t] : model->parameters()) {
    ASSERT_TRUE(loaded->parameters().count(name)) << name;
    EXPECT_TRUE(torch::equal(t, loaded->parameters().at(name))) << name;
  }
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(1, 6, 4);
  EXPECT_TRUE(torch::equal(model->forward(ids), loaded->forward(ids)));
}

TEST_P(ArchTest, LoadedAndRandomWeightsLieInOneBlock) {
  // The weights of a model on the CPU, loaded or random, are carved from one block of huge pages
  // (runtime.h, huge_page_tensors): in order of their names, each right after the one before.
  auto model = tiny(GetParam(), 7);
  auto dir = test::temp_dir("oneblock");
  model->save(dir.string());
  for (const auto& m : {model, CausalLM::load(dir.string())}) {
    uintptr_t next = reinterpret_cast<uintptr_t>(m->parameters().begin()->second.data_ptr());
    EXPECT_EQ(next % (2u << 20), 0u);
    for (const auto& [name, t] : m->parameters()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()), next) << name;
      next += (t.numel() * t.element_size() + 63) / 64 * 64;
    }
  }
}

TEST_P(ArchTest, LastLogitsOnlyMatchesFull) {
  auto model = tiny(GetParam());
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(3, 5, 5);
  ForwardArgs args;
  args.last_logits_only = true;
  torch::Tensor last = model->forward(ids, args);
  ASSERT_EQ(last.size(1), 1);
  EXPECT_LT((last.squeeze(1) - model->forward(ids).select(1, 4)).abs().max().item<double>(), 1e-6);
}

// output_positions: the last layer's o_proj and MLP run on the wanted positions only; the states
// there and every parameter's gradient equal computing every position and selecting (padded and
// packed, unpadded, and with hooks, which take the every-position path). Prefill with
// last_logits_only (the last position's rows only) equals the full logits' last position.
TEST_P(ArchTest, OutputPositionsEqualSelectingEveryPosition) {
  auto model = tiny(GetParam(), 5);
  for (auto& [name, t] : model->parameters()) t.requires_grad_(true);
  const int64_t B = 3, T = 8, C = model->config().hidden_size;
  torch::Tensor ids = random_ids(B, T, 31);
  torch::Tensor mask = torch::ones({B, T}, torch::kLong);
  mask[1].narrow(0, 5, 3).zero_();  // row 1: 5 real tokens, right-padded
  mask[2].narrow(0, 6, 2).zero_();
  const torch::Tensor pos = torch::tensor(std::vector<int64_t>{1, 2, 6, 7, 8 + 3, 8 + 4, 16 + 0, 16 + 5});
  torch::manual_seed(32);
  const torch::Tensor w = torch::randn({pos.numel(), C});
  auto grads_of = [&](const torch::Tensor& loss) { return parameter_grads(*model, loss); };
  ResidualHooks none;  // no operation: only makes forward take the every-position path
  for (int variant = 0; variant < 3; ++variant) {  // padded (packed), unpadded, hooks
    ForwardArgs args;
    args.hidden_only = true;
    if (variant == 0) args.attention_mask = mask;
    if (variant == 2) args.hooks = &none;
    torch::Tensor all = model->forward(ids, args).reshape({B * T, C}).index_select(0, pos);  // (N, C)
    torch::Tensor want_loss = (all * w).sum();
    const auto want = grads_of(want_loss);
    args.output_positions = pos;
    torch::Tensor sel = model->forward(ids, args);
    ASSERT_EQ(sel.sizes(), all.sizes()) << variant;
    EXPECT_LT((sel - all).abs().max().item<double>(), 1e-5) << "variant " << variant;
    const auto got = grads_of((sel * w).sum());
    for (const auto& [name, g] : want) {
      const double scale = 1 + g.abs().max().item<double>();
      EXPECT_LT((got.at(name) - g).abs().max().item<double>(), 1e-5 * scale) << name << " variant " << variant;
    }
  }
  {  // no wanted position (a batch without targets): (0, C), and backward runs
    ForwardArgs none_wanted;
    none_wanted.hidden_only = true;
    none_wanted.attention_mask = mask;
    none_wanted.output_positions = torch::zeros({0}, torch::kLong);
    torch::Tensor empty = model->forward(ids, none_wanted);
    ASSERT_EQ(empty.sizes(), (std::vector<int64_t>{0, C}));
    (empty.sum() + model->forward(ids.narrow(1, 0, 2), ForwardArgs{}).sum() * 0).backward();
  }
  ForwardArgs bad;
  bad.hidden_only = true;
  bad.attention_mask = mask;
  bad.output_positions = torch::tensor(std::vector<int64_t>{0, 8 + 6});  // row 1's padding
  EXPECT_THROW(model->forward(ids, bad), c10::Error);

  torch::NoGradGuard ng;
  ForwardArgs last;
  last.last_logits_only = true;
  torch::Tensor full = model->forward(ids);  // (B, T, V)
  torch::Tensor got = model->forward(ids, last);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{B, 1, full.size(2)}));
  EXPECT_LT((got.squeeze(1) - full.select(1, T - 1)).abs().max().item<double>(), 1e-5);
  last.hidden_only = true;
  ASSERT_EQ(model->forward(ids, last).sizes(), (std::vector<int64_t>{B, 1, C}));
}

// The static-shape decode step (ForwardArgs::cache_position, what a CUDA graph records): the
// position as a tensor, attention over the whole capacity with a (B, capacity) mask whose columns
// past the step are ones (stale): each step equals the growing cache's, left padding included.
TEST_P(ArchTest, CachePositionDecodingEqualsTheGrowingCache) {
  auto model = tiny(GetParam(), 6);
  torch::NoGradGuard ng;
  const int64_t B = 3, P = 6, cap = 12;
  torch::Tensor ids = random_ids(B, cap, 41);
  torch::Tensor mask = torch::ones({B, cap}, torch::kLong);
  mask[1].narrow(0, 0, 2).zero_();  // row 1: left-padded prompt
  torch::Tensor pos = (mask.cumsum(1) - 1).clamp_min(0);
  KVCache grow, fixed;
  grow.capacity = fixed.capacity = cap;
  for (KVCache* c : {&grow, &fixed}) {
    ForwardArgs a;
    a.cache = c;
    a.attention_mask = mask.narrow(1, 0, P);
    a.position_ids = pos.narrow(1, 0, P);
    a.last_logits_only = true;
    model->forward(ids.narrow(1, 0, P), a);
  }
  for (int64_t t = P; t < cap; ++t) {
    ForwardArgs g;
    g.cache = &grow;
    g.attention_mask = mask.narrow(1, 0, t + 1);
    g.position_ids = pos.narrow(1, t, 1);
    g.last_logits_only = true;
    ForwardArgs f = g;
    f.cache = &fixed;
    f.attention_mask = mask;  // (B, capacity): columns after t are not yet written
    f.cache_position = torch::full({1}, t, torch::kLong);
    torch::Tensor want = model->forward(ids.narrow(1, t, 1), g);
    torch::Tensor got = model->forward(ids.narrow(1, t, 1), f);
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "position " << t;
    EXPECT_EQ(fixed.length, t + 1);
  }
  // What it needs is checked.
  ForwardArgs bad;
  bad.cache = &fixed;
  bad.cache_position = torch::full({1}, cap - 1, torch::kLong);
  EXPECT_THROW(model->forward(ids.narrow(1, 0, 1), bad), c10::Error);  // full cache, no mask
}

INSTANTIATE_TEST_SUITE_P(Architectures, ArchTest,
                         ::testing::Values("llama", "llama3", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text"));

TEST(Transformer, ArchitectureTraitsShapeTheTensors) {
  auto names = [](const std::string& kind) { return tiny(kind)->expected_shapes(); };
  auto qwen2 = names("qwen2");
  EXPECT_TRUE(qwen2.count("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(qwen2.count("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(qwen2.count("lm_head.weight"));  // tied
  auto qwen3 = names("qwen3");
  EXPECT_EQ(qwen3.at("model.layers.1.self_attn.q_norm.weight"), std::vector<int64_t>{16});
  EXPECT_EQ(qwen3.at("model.layers.1.self_attn.q_proj.weight"), (std::vector<int64_t>{64, 32}));  // H*D = 4*16
  EXPECT_EQ(qwen3.at("model.layers.1.self_attn.k_proj.weight"), (std::vector<int64_t>{32, 32}));  // Hkv*D
  auto llama = names("llama");
  EXPECT_FALSE(llama.count("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(llama.count("lm_head.weight"));
  auto cfg = test::tiny_config("llama");
  cfg["attention_bias"] = true;
  auto biased = CausalLM::init_random(ModelConfig::from_json(cfg, "cfg"), 0)->expected_shapes();
  EXPECT_TRUE(biased.count("model.layers.0.self_attn.o_proj.bias"));
}

TEST(Transformer, GemmaTraitsShapeTheTensors) {
  auto gemma2 = tiny("gemma2");
  auto s = gemma2->expected_shapes();
  for (const char* norm : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                           "post_feedforward_layernorm"})
    EXPECT_EQ(s.at(std::string("model.layers.1.") + norm + ".weight"), std::vector<int64_t>{32}) << norm;
  EXPECT_EQ(s.at("model.layers.0.self_attn.q_proj.weight"), (std::vector<int64_t>{64, 32}));  // H*D = 4*16
  EXPECT_FALSE(s.count("lm_head.weight"));  // tied
  EXPECT_FALSE(s.count("model.layers.0.self_attn.q_norm.weight"));
  // (1 + w) norms start at w = 0.
  EXPECT_EQ(gemma2->parameters().at("model.layers.0.pre_feedforward_layernorm.weight").abs().max().item<float>(), 0.0f);
  auto gemma3 = tiny("gemma3_text")->expected_shapes();
  EXPECT_EQ(gemma3.at("model.layers.2.self_attn.k_norm.weight"), std::vector<int64_t>{16});
  EXPECT_TRUE(gemma3.count("model.layers.2.post_feedforward_layernorm.weight"));
}

TEST(Transformer, LayerWindowsFollowTheArchitecture) {
  auto windows = [](const nlohmann::json& cfg) {
    auto m = CausalLM::init_random(ModelConfig::from_json(cfg, "cfg"), 0);
    std::vector<int64_t> w;
    for (int64_t l = 0; l < m->config().num_hidden_layers; ++l) w.push_back(m->layer_window(l).value_or(0));
    return w;
  };
  EXPECT_EQ(windows(test::tiny_config("gemma2")), (std::vector<int64_t>{4, 0}));  // local, global
  EXPECT_EQ(windows(test::tiny_config("gemma3_text")), (std::vector<int64_t>{4, 0, 4}));
  EXPECT_EQ(windows(test::tiny_config("mistral")), (std::vector<int64_t>{5, 5}));  // every layer
  auto qwen = test::tiny_config("qwen2");
  qwen["sliding_window"] = 3;
  EXPECT_EQ(windows(qwen), (std::vector<int64_t>{0, 0}));  // use_sliding_window defaults to false
  qwen["use_sliding_window"] = true;
  qwen["max_window_layers"] = 1;
  EXPECT_EQ(windows(qwen), (std::vector<int64_t>{0, 3}));  // layers >= max_window_layers
  auto llama = test::tiny_config("llama");
  llama["sliding_window"] = 3;  // LlamaModel has no window
  EXPECT_EQ(windows(llama), (std::vector<int64_t>{0, 0}));
}

TEST(Transformer, GemmaHookSitesAreWhatJoinsTheResidual) {
  // MlpOutput on Gemma is the MLP branch after post_feedforward_layernorm: adding v there moves the
  // layer output by exactly v (as on Llama), and the LayerOutput hook sees the sum.
  auto model = tiny("gemma2");
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(2, 6, 11), v = torch::randn({32});
  std::vector<torch::Tensor> base, moved;
  auto record = [](std::vector<torch::Tensor>* out) {
    return [out](HookSite site, int64_t layer, const torch::Tensor& h) {
      if (site == HookSite::LayerOutput && layer == 0) out->push_back(h.clone());
      return h;
    };
  };
  ResidualHooks plain, add;
  plain.set_callback(record(&base));
  add.add(HookSite::MlpOutput, 0, v, 0.5);
  add.set_callback(record(&moved));
  ForwardArgs args;
  args.hooks = &plain;
  torch::Tensor before = model->forward(ids, args);
  args.hooks = &add;
  torch::Tensor after = model->forward(ids, args);
  ASSERT_EQ(base.size(), 1u);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_LT((moved[0] - base[0] - 0.5 * v).abs().max().item<double>(), 1e-5);
  EXPECT_GT((after - before).abs().max().item<double>(), 1e-3);
}

TEST(Transformer, SlidingWindowLimitsAttention) {
  // With window 5, the last position cannot see token 0, so changing it changes nothing there;
  // without the window it does.
  auto cfg = test::tiny_config("mistral");
  auto windowed = CausalLM::init_random(ModelConfig::from_json(cfg, "cfg"), 3);
  cfg["sliding_window"] = nullptr;
  auto full = CausalLM::init_random(ModelConfig::from_json(cfg, "cfg"), 3);
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(1, 10, 6), changed = ids.clone();
  changed[0][0] = (ids[0][0].item<int64_t>() + 1) % 96;
  // Layer 2 sees layer 1's outputs at positions 5..9, which saw back to 1..: token 0 is out of
  // reach of position 9 after two layers with window 5 (9 - 4 - 4 = 1).
  EXPECT_LT((windowed->forward(ids) - windowed->forward(changed)).select(1, 9).abs().max().item<double>(), 1e-6);
  EXPECT_GT((full->forward(ids) - full->forward(changed)).select(1, 9).abs().max().item<double>(), 1e-4);
}

TEST(Transformer, Llama3RopeScalingChangesOnlyLongWavelengths) {
  // Same weights, with and without llama3 scaling: short contexts barely differ at position 1
  // (high frequencies are kept) but the outputs are not identical.
  auto a = tiny("llama3", 1), b = tiny("llama", 1);
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(1, 30, 8);
  double diff = (a->forward(ids) - b->forward(ids)).abs().max().item<double>();
  EXPECT_GT(diff, 1e-4);
}

TEST(Transformer, HooksAddAblateCapture) {
  auto model = tiny("llama");
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(2, 5, 9);
  torch::Tensor v = torch::randn({32});
  // Capture layer 0 output, mean over all positions.
  ResidualHooks cap;
  cap.capture({0});
  std::vector<torch::Tensor> seen;
  cap.set_callback([&](HookSite site, int64_t layer, const torch::Tensor& h) {
    if (site == HookSite::LayerOutput && layer == 0) seen.push_back(h.clone());
    return h;
  });
  ForwardArgs args;
  args.hooks = &cap;
  model->forward(ids, args);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_LT((cap.captured_mean(0) - seen[0].mean(std::vector<int64_t>{0, 1})).abs().max().item<double>(), 1e-5);
  // Masked capture counts only the masked positions.
  ResidualHooks masked;
  masked.capture({0});
  torch::Tensor m = torch::zeros({2, 5});
  m[1][3] = 1;
  masked.set_capture_mask(m);
  args.hooks = &masked;
  model->forward(ids, args);
  EXPECT_EQ(masked.captured_sum(0).second, 1);
  EXPECT_LT((masked.captured_mean(0) - seen[0][1][3]).abs().max().item<double>(), 1e-5);
  // Ablation: the layer output has no component along v afterwards.
  ResidualHooks abl;
  abl.ablate(v);
  std::vector<torch::Tensor> after;
  abl.set_callback([&](HookSite site, int64_t, const torch::Tensor& h) {
    if (site == HookSite::LayerOutput) after.push_back(h);
    return h;
  });
  args.hooks = &abl;
  model->forward(ids, args);
  for (const auto& h : after) EXPECT_LT(torch::matmul(h, v / v.norm()).abs().max().item<double>(), 1e-4);
  // Adding at the last layer shifts its output by exactly scale * v.
  ResidualHooks add;
  add.add(HookSite::LayerOutput, 1, v, 2.5);
  std::vector<torch::Tensor> added;
  add.set_callback([&](HookSite site, int64_t layer, const torch::Tensor& h) {
    if (site == HookSite::LayerOutput && layer == 1) added.push_back(h);
    return h;
  });
  ResidualHooks plain;
  std::vector<torch::Tensor> base;
  plain.set_callback([&](HookSite site, int64_t layer, const torch::Tensor& h) {
    if (site == HookSite::LayerOutput && layer == 1) base.push_back(h);
    return h;
  });
  args.hooks = &add;
  model->forward(ids, args);
  args.hooks = &plain;
  model->forward(ids, args);
  EXPECT_LT((added[0] - base[0] - 2.5 * v).abs().max().item<double>(), 1e-5);
}

// Splits dir/model.safetensors into two shards with a model.safetensors.index.json, as Hugging
// Face writes large checkpoints; `misplace` lists a tensor under the wrong shard.
void shard_checkpoint(const std::filesystem::path& dir, bool misplace = false) {
  std::map<std::string, std::vector<uint8_t>> bytes;
  std::vector<TensorView> a, b;
  nlohmann::json map = nlohmann::json::object();
  {
    SafetensorsFile f((dir / "model.safetensors").string());
    for (const auto& name : f.names()) {
      const TensorView& v = f.get(name);
      auto& buf = bytes[name];
      buf.assign(static_cast<const uint8_t*>(v.data), static_cast<const uint8_t*>(v.data) + v.nbytes);
      TensorView copy = v;
      copy.data = buf.data();
      const bool first = name.find("layers.1.") == std::string::npos;
      (first ? a : b).push_back(copy);
      map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
  }
  if (misplace) map["model.norm.weight"] = "model-00002-of-00002.safetensors";
  safetensors_write((dir / "model-00001-of-00002.safetensors").string(), a);
  safetensors_write((dir / "model-00002-of-00002.safetensors").string(), b);
  test::write_text(dir / "model.safetensors.index.json",
                   nlohmann::json({{"metadata", {{"total_size", 0}}}, {"weight_map", map}}).dump(2));
  std::filesystem::remove(dir / "model.safetensors");
}

TEST(Transformer, LoadsShardedCheckpointsAndHalfPrecisionFiles) {
  torch::NoGradGuard ng;
  auto model = tiny("qwen2", 4);
  torch::Tensor ids = random_ids(1, 8, 5);
  torch::Tensor want = model->forward(ids);
  auto dir = test::temp_dir("sharded");
  model->save(dir.string());
  shard_checkpoint(dir);
  EXPECT_TRUE(torch::equal(CausalLM::load(dir.string())->forward(ids), want));  // same tensors, same logits

  // A shard that is gone, and a tensor listed under a shard that does not hold it: named errors.
  std::filesystem::rename(dir / "model-00002-of-00002.safetensors", dir / "moved.safetensors");
  try {
    CausalLM::load(dir.string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("shard model-00002-of-00002.safetensors"), std::string::npos) << e.what();
  }
  auto dir2 = test::temp_dir("misplaced");
  model->save(dir2.string());
  shard_checkpoint(dir2, /*misplace=*/true);
  try {
    CausalLM::load(dir2.string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not in the file"), std::string::npos) << e.what();
  }

  // BF16 and F16 files load into an fp32 model with the values they hold.
  for (auto st : {torch::kBFloat16, torch::kFloat16}) {
    auto d = test::temp_dir("halfmodel");
    model->save(d.string(), st);
    auto half = CausalLM::load(d.string());
    EXPECT_EQ(half->dtype(), torch::kFloat32);
    const std::string name = "model.layers.0.self_attn.q_proj.weight";
    const auto& w = model->parameters().at(name);
    EXPECT_TRUE(torch::equal(half->parameters().at(name), w.to(st).to(torch::kFloat32)));
    EXPECT_FALSE(torch::equal(half->parameters().at(name), w));  // really rounded
  }
}

TEST(Transformer, LoadErrorsNameTheProblem) {
  auto dir = test::temp_dir("badmodel");
  auto expect_error = [&](const std::string& fragment) {
    try {
      CausalLM::load(dir.string());
      FAIL() << "expected an error containing " << fragment;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error("no config.json");
  auto cfg = test::tiny_config("llama");
  cfg["model_type"] = "gpt_neox";
  test::write_text(dir / "config.json", cfg.dump());
  expect_error("unknown model_type 'gpt_neox'");
  // A checkpoint whose config promises a larger hidden size than its tensors have.
  tiny("llama")->save(dir.string());
  cfg = test::tiny_config("llama");
  cfg["intermediate_size"] = 80;
  test::write_text(dir / "config.json", cfg.dump());
  expect_error("model.layers.0.mlp.down_proj.weight has shape [32, 64], expected [32, 80]");
  // An integer tensor where weights belong.
  test::write_text(dir / "config.json", test::tiny_config("llama").dump());
  {
    std::vector<TensorView> views;
    std::vector<std::vector<uint8_t>> keep;
    for (const auto& [name, shape] : tiny("llama")->expected_shapes()) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      keep.emplace_back(n * 4, 0);
      views.push_back({name, name == "model.norm.weight" ? DType::I32 : DType::F32, shape, keep.back().data(),
                       static_cast<size_t>(n * 4)});
    }
    safetensors_write((dir / "model.safetensors").string(), views);
  }
  expect_error("tensor model.norm.weight has dtype I32 (expected F32, F16 or BF16)");
  std::filesystem::remove(dir / "model.safetensors");
  expect_error("no model.safetensors or model.safetensors.index.json");
  test::write_text(dir / "pytorch_model.bin", "pickle");
  expect_error("pickle");
}

}  // namespace
