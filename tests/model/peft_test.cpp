#include "emlab/peft.h"

#include <gtest/gtest.h>

#include <tuple>

#include <cmath>

#include "emlab/adapter.h"
#include "emlab/error.h"
#include "emlab/model.h"
#include "emlab/file_util.h"
#include "emlab/tensor_io.h"
#include "train_fixture.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {
namespace {

std::shared_ptr<CausalLM> tiny_model(uint64_t seed = 3) { return CausalLM::init_random(test::tiny_train_config(), seed); }

torch::Tensor sample_ids() { return torch::tensor({3, 70, 12, 200, 5, 99, 41, 7}, torch::kInt64).view({2, 4}); }

// Gives every B a random value so that adapters change the output.
void randomize_b(LoraSet& set, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard g;
  for (auto& [name, m] : set.modules) m.B = torch::randn(m.B.sizes()) * 0.05;
}

TEST(Peft, CreateFollowsPeftInitialisation) {
  auto model = tiny_model();
  LoraOptions o;
  o.rank = 4;
  o.alpha = 8;
  o.rslora = true;
  o.targets = {"q", "down"};
  o.layers = {1};
  auto set = lora_create(*model, o, 0);
  ASSERT_EQ(set->modules.size(), 2u);
  ASSERT_TRUE(set->modules.count("model.layers.1.self_attn.q_proj"));
  ASSERT_TRUE(set->modules.count("model.layers.1.mlp.down_proj"));
  const LoraModule& down = set->modules.at("model.layers.1.mlp.down_proj");
  EXPECT_EQ(down.A.sizes(), (std::vector<int64_t>{4, 64}));  // (r, in = intermediate)
  EXPECT_EQ(down.B.sizes(), (std::vector<int64_t>{32, 4}));  // (out = hidden, r)
  EXPECT_DOUBLE_EQ(down.scale, 8.0 / 2.0);                    // alpha / sqrt(r)
  EXPECT_EQ(down.B.abs().max().item<float>(), 0.0f);
  // Kaiming-uniform a=sqrt(5): U(-1/sqrt(in), 1/sqrt(in)); 256 draws span most of it.
  const float bound = 1.0f / std::sqrt(64.0f);
  EXPECT_LE(down.A.abs().max().item<float>(), bound);
  EXPECT_GT(down.A.abs().max().item<float>(), 0.8f * bound);
  EXPECT_NEAR(down.A.mean().item<float>(), 0.0f, 0.2f * bound);
  // B = 0: the model is unchanged.
  torch::Tensor base = model->forward(sample_ids());
  model->set_lora(set);
  EXPECT_TRUE(torch::equal(model->forward(sample_ids()), base));
  EXPECT_DOUBLE_EQ(lora_scale(64, 32, false), 2.0);
  EXPECT_THROW(lora_normalize_targets({"lm_head"}), InputError);
  o.layers = {5};
  EXPECT_THROW(lora_create(*model, o, 0), InputError);
}

TEST(Peft, SaveLoadRoundTripInPeftFormat) {
  auto model = tiny_model();
  LoraOptions o;
  o.rank = 2;
  o.alpha = 16;
  o.targets = {"all"};
  auto set = lora_create(*model, o, 1);
  randomize_b(*set, 5);
  auto dir = test::temp_dir("peftrt");
  peft_save(dir.string(), *set, PeftConfig::from_options(o, "tiny-base"));

  json cfg = json::parse(test::read_text(dir / "adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["r"], 2);
  EXPECT_EQ(cfg["lora_alpha"], 16.0);
  EXPECT_EQ(cfg["use_rslora"], false);
  EXPECT_EQ(cfg["bias"], "none");
  EXPECT_TRUE(cfg["layers_to_transform"].is_null());
  EXPECT_EQ(cfg["base_model_name_or_path"], "tiny-base");
  EXPECT_EQ(cfg["target_modules"],
            json({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}));
  auto tensors = tensors_load((dir / "adapter_model.safetensors").string());
  EXPECT_EQ(tensors.size(), 2u * 7u * 2u);
  const auto& a = tensors.at("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  const auto& b = tensors.at("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(b.sizes(), (std::vector<int64_t>{32, 2}));  // (out = H*D, r)
  EXPECT_EQ(a.scalar_type(), torch::kFloat32);

  model->set_lora(set);
  torch::Tensor with = model->forward(sample_ids());
  auto model2 = tiny_model();
  PeftAdapter loaded = peft_load(dir.string(), *model2);
  EXPECT_TRUE(loaded.warnings.empty());
  ASSERT_EQ(loaded.lora->modules.size(), set->modules.size());
  for (const auto& [name, m] : set->modules) {
    EXPECT_TRUE(torch::equal(loaded.lora->modules.at(name).A, m.A)) << name;
    EXPECT_TRUE(torch::equal(loaded.lora->modules.at(name).B, m.B)) << name;
    EXPECT_DOUBLE_EQ(loaded.lora->modules.at(name).scale, 8.0);
  }
  model2->set_lora(loaded.lora);
  EXPECT_TRUE(torch::allclose(model2->forward(sample_ids()), with, 1e-6, 1e-6));
  ForwardArgs off;
  off.adapters = false;
  EXPECT_GT((with - model->forward(sample_ids(), off)).abs().max().item<float>(), 1e-4f);
}

// Writes an adapter the way other tools spell it: keys with ".default", without the
// "base_model.model." prefix, rank/alpha patterns and layers_to_transform.
TEST(Peft, LoadsPeftVariantsAndHonoursLayersToTransform) {
  auto model = tiny_model();
  auto dir = test::temp_dir("peftvar");
  torch::manual_seed(0);
  torch::Tensor a0 = torch::randn({2, 32}), b0 = torch::randn({32, 2}) * 0.1;  // layer 0 o_proj (out C, in H*D=32)
  torch::Tensor a1 = torch::randn({4, 32}), b1 = torch::randn({32, 4}) * 0.1;  // layer 1 o_proj, rank 4
  tensors_save((dir / "adapter_model.safetensors").string(),
                             {{"base_model.model.model.layers.0.self_attn.o_proj.lora_A.default.weight", a0},
                              {"base_model.model.model.layers.0.self_attn.o_proj.lora_B.default.weight", b0},
                              {"model.layers.1.self_attn.o_proj.lora_A.weight", a1},
                              {"model.layers.1.self_attn.o_proj.lora_B.weight", b1}});
  json cfg = {{"peft_type", "LORA"},       {"task_type", "CAUSAL_LM"}, {"r", 2},
              {"lora_alpha", 4},           {"target_modules", {"o_proj"}},
              {"rank_pattern", {{"layers.1.self_attn.o_proj", 4}}},
              {"alpha_pattern", {{"model.layers.1.self_attn.o_proj", 32}}},
              {"layers_to_transform", nullptr}, {"use_rslora", false}, {"bias", "none"}};
  test::write_text(dir / "adapter_config.json", cfg.dump());
  PeftAdapter ad = peft_load(dir.string(), *model);
  ASSERT_EQ(ad.lora->modules.size(), 2u);
  EXPECT_DOUBLE_EQ(ad.lora->modules.at("model.layers.0.self_attn.o_proj").scale, 4.0 / 2.0);
  EXPECT_DOUBLE_EQ(ad.lora->modules.at("model.layers.1.self_attn.o_proj").scale, 32.0 / 4.0);
  EXPECT_TRUE(torch::equal(ad.lora->modules.at("model.layers.1.self_attn.o_proj").A, a1));

  // layers_to_transform = [1]: layer 0's tensors are ignored, with a warning.
  cfg["layers_to_transform"] = {1};
  test::write_text(dir / "adapter_config.json", cfg.dump());
  ad = peft_load(dir.string(), *model);
  ASSERT_EQ(ad.lora->modules.size(), 1u);
  EXPECT_TRUE(ad.lora->modules.count("model.layers.1.self_attn.o_proj"));
  ASSERT_EQ(ad.warnings.size(), 1u);
  EXPECT_NE(ad.warnings[0].find("layers 0"), std::string::npos) << ad.warnings[0];

  // Rank disagreeing with the config is an error naming the module.
  cfg["layers_to_transform"] = nullptr;
  cfg["rank_pattern"] = json::object();
  test::write_text(dir / "adapter_config.json", cfg.dump());
  try {
    peft_load(dir.string(), *model);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.self_attn.o_proj has rank 4"), std::string::npos) << e.what();
  }
  cfg["use_dora"] = true;
  test::write_text(dir / "adapter_config.json", cfg.dump());
  EXPECT_THROW(peft_load(dir.string(), *model), InputError);
}

TEST(Peft, BadTensorsAreNamed) {
  auto model = tiny_model();
  auto dir = test::temp_dir("peftbad");
  json cfg = {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 4}, {"target_modules", {"q_proj"}}};
  test::write_text(dir / "adapter_config.json", cfg.dump());
  // Wrong in-features for q_proj (hidden 32).
  tensors_save((dir / "adapter_model.safetensors").string(),
                             {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", torch::zeros({2, 31})},
                              {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", torch::zeros({32, 2})}});
  try {
    peft_load(dir.string(), *model);
    FAIL();
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("adapter_model.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("model.layers.0.self_attn.q_proj"), std::string::npos) << m;
  }
  // A without B.
  tensors_save((dir / "adapter_model.safetensors").string(),
                             {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", torch::zeros({2, 32})}});
  EXPECT_THROW(peft_load(dir.string(), *model), InputError);
  // A module the model lacks.
  tensors_save((dir / "adapter_model.safetensors").string(),
                             {{"base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", torch::zeros({2, 32})},
                              {"base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight", torch::zeros({32, 2})}});
  EXPECT_THROW(peft_load(dir.string(), *model), InputError);
  fs::remove(dir / "adapter_config.json");
  EXPECT_THROW(peft_load(dir.string(), *model), InputError);
}

// Configurations and tensors PEFT can write that emlab cannot apply are refused by name, never
// loaded and silently ignored; a regex target_modules selects by full match, as PEFT does.
TEST(Peft, RefusesWhatItCannotApplyAndMatchesRegexTargets) {
  auto model = tiny_model();
  auto dir = test::temp_dir("peftrefuse");
  const json base = {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 4}, {"target_modules", {"q_proj", "v_proj"}}};
  auto write = [&](const json& cfg, const std::map<std::string, torch::Tensor>& tensors) {
    test::write_text(dir / "adapter_config.json", cfg.dump());
    tensors_save((dir / "adapter_model.safetensors").string(), tensors);
  };
  auto expect_refused = [&](const std::string& needle) {
    try {
      peft_load(dir.string(), *model);
      ADD_FAILURE() << "expected InputError mentioning " << needle;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string q = "base_model.model.model.layers.0.self_attn.q_proj", v = "base_model.model.model.layers.1.self_attn.v_proj";
  const std::map<std::string, torch::Tensor> qv = {{q + ".lora_A.weight", torch::ones({2, 32})},
                                                   {q + ".lora_B.weight", torch::ones({32, 2})},
                                                   {v + ".lora_A.weight", torch::ones({2, 32})},
                                                   {v + ".lora_B.weight", torch::ones({16, 2})}};  // kv: 2 heads x 8
  write(base, qv);
  ASSERT_EQ(peft_load(dir.string(), *model).lora->modules.size(), 2u);
  for (const auto& [key, value, needle] : std::vector<std::tuple<std::string, json, std::string>>{
           {"bias", "all", "bias is 'all'"},
           {"bias", "lora_only", "bias is 'lora_only'"},
           {"lora_bias", true, "lora_bias"},
           {"fan_in_fan_out", true, "fan_in_fan_out"},
           {"modules_to_save", {"lm_head"}, "modules_to_save"},
           {"use_dora", true, "use_dora"}}) {
    json cfg = base;
    cfg[key] = value;
    write(cfg, qv);
    expect_refused(needle);
  }
  // A LoRA bias tensor, and an adapter on lm_head (which the forward pass never adapts).
  auto with_bias = qv;
  with_bias[q + ".lora_B.bias"] = torch::zeros({32});
  write(base, with_bias);
  expect_refused("lora_B.bias");
  json head_cfg = base;
  head_cfg["target_modules"] = {"q_proj", "lm_head"};
  auto with_head = qv;
  with_head["base_model.model.lm_head.lora_A.weight"] = torch::ones({2, 32});
  with_head["base_model.model.lm_head.lora_B.weight"] = torch::ones({96, 2});
  write(head_cfg, with_head);
  expect_refused("lm_head is not a decoder projection");

  // Regex target_modules: a full match on the module name; with layers_to_transform PEFT refuses it.
  json rx = base;
  rx["target_modules"] = R"(.*\.layers\.1\..*_proj)";
  write(rx, qv);
  PeftAdapter ad = peft_load(dir.string(), *model);
  ASSERT_EQ(ad.lora->modules.size(), 1u);
  EXPECT_TRUE(ad.lora->modules.count("model.layers.1.self_attn.v_proj"));
  EXPECT_EQ(ad.warnings.size(), 1u);  // q_proj of layer 0 ignored, with a warning
  rx["target_modules"] = "q_proj";  // no full match: nothing applies
  write(rx, qv);
  expect_refused("no LoRA adapter applies");
  rx["target_modules"] = "(unclosed";
  write(rx, qv);
  expect_refused("not a valid regular expression");
  rx["target_modules"] = R"(.*q_proj)";
  rx["layers_to_transform"] = {0};
  write(rx, qv);
  expect_refused("layers_to_transform cannot be used");
  json all = base;
  all["target_modules"] = "all-linear";
  write(all, qv);
  EXPECT_EQ(peft_load(dir.string(), *model).lora->modules.size(), 2u);
}

// PEFT takes the first rank/alpha pattern that matches, in the file's order (not sorted), and
// emlab writes patterns back in their order.
TEST(Peft, FirstMatchingPatternInFileOrderWins) {
  auto model = tiny_model();
  auto dir = test::temp_dir("peftorder");
  torch::manual_seed(0);
  const std::string q0 = "base_model.model.model.layers.0.self_attn.q_proj";
  const std::string q1 = "base_model.model.model.layers.1.self_attn.q_proj";
  tensors_save((dir / "adapter_model.safetensors").string(),
               {{q0 + ".lora_A.weight", torch::randn({3, 32})}, {q0 + ".lora_B.weight", torch::randn({32, 3})},
                {q1 + ".lora_A.weight", torch::randn({3, 32})}, {q1 + ".lora_B.weight", torch::randn({32, 3})}});
  // "q_proj" first: layer 0's own, later pattern never applies (sorted it would come first).
  test::write_text(dir / "adapter_config.json",
                   R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
                       "rank_pattern": {"q_proj": 3, "model.layers.0.self_attn.q_proj": 5},
                       "alpha_pattern": {"self_attn.q_proj": 6, "layers.0.self_attn.q_proj": 30}})");
  PeftAdapter ad = peft_load(dir.string(), *model);
  ASSERT_EQ(ad.lora->modules.size(), 2u);
  EXPECT_DOUBLE_EQ(ad.lora->modules.at("model.layers.0.self_attn.q_proj").scale, 6.0 / 3);
  EXPECT_DOUBLE_EQ(ad.lora->modules.at("model.layers.1.self_attn.q_proj").scale, 6.0 / 3);
  ASSERT_EQ(ad.config.rank_pattern.size(), 2u);
  EXPECT_EQ(ad.config.rank_pattern[0].first, "q_proj");
  // Saved and loaded again: same order, same scales.
  auto out = test::temp_dir("peftorder2");
  peft_save(out.string(), *ad.lora, ad.config);
  const std::string text = test::read_text(out / "adapter_config.json");
  EXPECT_LT(text.find("\"q_proj\": 3"), text.find("\"model.layers.0.self_attn.q_proj\": 5")) << text;
  PeftAdapter back = peft_load(out.string(), *model);
  EXPECT_DOUBLE_EQ(back.lora->modules.at("model.layers.0.self_attn.q_proj").scale, 2.0);
  // Reversed order: layer 0's pattern comes first and says rank 5, which the tensors are not.
  test::write_text(dir / "adapter_config.json",
                   R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
                       "rank_pattern": {"model.layers.0.self_attn.q_proj": 5, "q_proj": 3}})");
  try {
    peft_load(dir.string(), *model);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.q_proj has rank 3"), std::string::npos) << e.what();
  }
}

TEST(Peft, RefusesLoraVariantsThatChangeTheForwardPass) {
  auto model = tiny_model();
  auto dir = test::temp_dir("peftvariant");
  const std::string q = "base_model.model.model.layers.0.self_attn.q_proj";
  tensors_save((dir / "adapter_model.safetensors").string(),
               {{q + ".lora_A.weight", torch::ones({2, 32})}, {q + ".lora_B.weight", torch::ones({32, 2})}});
  const json base = {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 4}, {"target_modules", {"q_proj"}},
                     {"alora_invocation_tokens", nullptr}, {"target_parameters", json::array()},
                     {"layer_replication", nullptr}, {"use_bdlora", nullptr}};
  test::write_text(dir / "adapter_config.json", base.dump());
  EXPECT_EQ(peft_load(dir.string(), *model).lora->modules.size(), 1u);  // nulls and empty lists are fine
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"alora_invocation_tokens", {5, 6}},
           {"trainable_token_indices", {1, 2}},
           {"layer_replication", {{0, 1}, {0, 2}}},
           {"target_parameters", {"mlp.experts.down_proj"}},
           {"arrow_config", {{"top_k", 2}}}}) {
    json cfg = base;
    cfg[key] = value;
    test::write_text(dir / "adapter_config.json", cfg.dump());
    try {
      peft_load(dir.string(), *model);
      ADD_FAILURE() << key;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("adapter_config.json"), std::string::npos) << e.what();
    }
  }
}

TEST(Peft, MergeGivesTheSameLogitsAsTheAdapter) {
  // Every projection of every architecture goes through linear_lora: the merged weights (which
  // every path uses) give what the adapters gave, and the adapters did change the logits.
  for (const char* kind : {"llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text"}) {
    auto model = CausalLM::init_random(test::tiny_train_config(kind), 4);
    LoraOptions o;
    o.rank = 3;
    o.alpha = 6;
    o.rslora = true;
    auto set = lora_create(*model, o, 2);
    EXPECT_EQ(set->modules.size(), 7u * model->config().num_hidden_layers) << kind;
    randomize_b(*set, 9);
    set->multiplier = 1.5;
    torch::Tensor without = model->forward(sample_ids());
    model->set_lora(set);
    torch::Tensor with = model->forward(sample_ids());
    EXPECT_GT((with - without).abs().max().item<float>(), 1e-3f) << kind;
    lora_merge(*model, *set);
    model->set_lora(nullptr);
    torch::Tensor merged = model->forward(sample_ids());
    EXPECT_TRUE(torch::allclose(merged, with, 1e-4, 1e-5)) << kind << " max diff "
                                                            << (merged - with).abs().max().item<float>();
  }
}

TEST(Peft, SteeringVectorFileAndApplyMatchTheHook) {
  auto model = tiny_model();
  torch::manual_seed(1);
  SteeringVector sv;
  sv.vector = torch::randn({32});
  sv.layer = 1;
  sv.site = HookSite::MlpOutput;
  sv.scale = 3.0;
  auto dir = test::temp_dir("steer");
  steering_save(dir.string(), sv, "tiny");
  SteeringVector back = steering_load(dir.string(), 32);
  EXPECT_TRUE(torch::equal(back.vector, sv.vector));
  EXPECT_EQ(back.layer, 1);
  EXPECT_EQ(back.site, HookSite::MlpOutput);
  EXPECT_DOUBLE_EQ(back.scale, 3.0);
  EXPECT_THROW(steering_load(dir.string(), 16), InputError);

  ResidualHooks hooks;
  hooks.add(HookSite::LayerOutput, 1, sv.vector, 3.0);
  ForwardArgs args;
  args.hooks = &hooks;
  torch::Tensor hooked = model->forward(sample_ids(), args);
  adapter_apply(*model, dir.string());
  torch::Tensor applied = model->forward(sample_ids());
  EXPECT_TRUE(torch::allclose(applied, hooked, 1e-5, 1e-5));
}

}  // namespace
}  // namespace emlab
