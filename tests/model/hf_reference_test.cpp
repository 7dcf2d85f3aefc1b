// emlab against the Hugging Face libraries themselves (transformers, peft in the reference venv;
// tests/model/hf_reference.py computes their side, one python process for the tests that run):
//  - golden logits: tiny random models of every architecture emlab loads, written by transformers'
//    save_pretrained, give transformers' logits on a left-padded batch of prompts of several
//    lengths, without the KV cache and with it (prefill, then one token at a time as the generator
//    feeds them), and the same greedy continuation;
//  - PEFT both ways: adapters written by peft (LoRA, rsLoRA, target sets, layers_to_transform,
//    rank/alpha patterns) give PeftModel's logits in emlab, lora_merge gives merge_and_unload's;
//    models saved by CausalLM::save and adapters written by peft_save load in transformers / peft
//    and give emlab's logits.
// Tolerance 1e-4 on logits (float32 on both sides; what differs is summation order).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>

#include "emlab/model.h"
#include "emlab/peft.h"
#include "emlab/tensor_io.h"
#include "test_util.h"
#include "tiny_models.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {
namespace {

constexpr double kTolerance = 1e-4;
const std::vector<std::string> kArchitectures = {"llama", "llama3", "qwen2", "qwen3", "mistral", "gemma2",
                                                 "gemma3_text"};

// A model (and adapter) emlab writes for transformers / peft to read back.
struct EmlabItem {
  std::shared_ptr<CausalLM> model;
  std::shared_ptr<LoraSet> lora;  // null: the plain model
};

struct Reference {
  std::string error;  // why there is no reference (script failed)
  json expected;      // expected.json
  std::map<std::string, EmlabItem> emlab;
};

ForwardArgs padded(const torch::Tensor& mask) {
  ForwardArgs a;
  a.attention_mask = mask;
  a.position_ids = (mask.cumsum(1) - 1).clamp_min(0);  // as the generator and the script
  return a;
}

// Largest |got - want| over the real (mask 1) positions: got/want (B, T, V), mask (B, T).
double masked_diff(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& mask) {
  // Padding positions are left out: fully masked rows may even be NaN on the reference side.
  torch::Tensor real = (mask != 0).unsqueeze(-1).expand_as(want);
  return (got.to(torch::kFloat32) - want).abs().masked_select(real).max().item<double>();
}

// Random norm weights and biases (random init leaves them at 1 or 0, which hides mistakes), and
// every other weight moved: the stand-in for a finetuned model.
void perturb(CausalLM& model, uint64_t seed) {
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  for (auto& [name, t] : model.parameters()) {
    const bool norm_or_bias = name.find("norm.weight") != std::string::npos ||
                              (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
    t.add_((norm_or_bias ? 0.3 : 0.02) * torch::randn(t.sizes()));
  }
}

// Which parts of the script the tests selected to run need (ctest runs one test per process).
std::set<std::string> wanted_parts() {
  static const std::map<std::string, std::string> part_of = {{"LogitsMatchTransformers", "logits"},
                                                             {"PeftAdaptersGivePeftLogits", "peft"},
                                                             {"EmlabFilesLoadInTransformersAndPeft", "emlab"}};
  std::set<std::string> parts;
  const auto* unit = ::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit->total_test_suite_count(); ++i) {
    const auto* suite = unit->GetTestSuite(i);
    if (std::string(suite->name()) != "HfReference") continue;
    for (int k = 0; k < suite->total_test_count(); ++k) {
      const auto* info = suite->GetTestInfo(k);
      if (info->should_run() && part_of.count(info->name())) parts.insert(part_of.at(info->name()));
    }
  }
  return parts;
}

// Models and adapters emlab writes (CausalLM::save, peft_save) into work/.
json write_emlab_items(const fs::path& work, Reference& ref) {
  json items = json::array();
  uint64_t seed = 40;
  for (const std::string& kind : kArchitectures) {
    json cfg = test::tiny_config(kind);
    if (kind == "llama") cfg["attention_bias"] = true, cfg["mlp_bias"] = true;
    if (kind == "qwen2") {  // three layers, the last two sliding
      cfg["num_hidden_layers"] = 3;
      cfg["use_sliding_window"] = true;
      cfg["sliding_window"] = 4;
      cfg["max_window_layers"] = 1;
    }
    auto model = CausalLM::init_random(ModelConfig::from_json(cfg, kind), seed);
    perturb(*model, seed++);
    const fs::path dir = work / ("emlab-" + kind);
    model->save(dir.string());
    ref.emlab[kind] = {model, nullptr};
    items.push_back({{"name", kind}, {"model", dir.string()}, {"adapter", ""}});
  }
  // Adapters by peft_save on two of them: rsLoRA on every projection of one layer of gemma2; plain
  // LoRA on q, v and down of every layer of qwen3.
  struct AdapterCase {
    std::string name, base;
    LoraOptions options;
  };
  LoraOptions rs;
  rs.rank = 4, rs.alpha = 16, rs.rslora = true, rs.targets = {"all"}, rs.layers = {1};
  LoraOptions plain;
  plain.rank = 2, plain.alpha = 3, plain.targets = {"q", "v", "down"};
  for (const AdapterCase& a : {AdapterCase{"gemma2-rslora", "gemma2", rs}, AdapterCase{"qwen3-lora", "qwen3", plain}}) {
    const CausalLM& base = *ref.emlab.at(a.base).model;
    auto lora = lora_create(base, a.options, seed++);
    torch::manual_seed(seed++);
    for (auto& [name, m] : lora->modules) m.B = 0.2 * torch::randn(m.B.sizes());  // B = 0 would change nothing
    const fs::path dir = work / ("emlab-" + a.name);
    peft_save(dir.string(), *lora, PeftConfig::from_options(a.options, "tiny"));
    ref.emlab[a.name] = {ref.emlab.at(a.base).model, lora};
    items.push_back({{"name", a.name}, {"model", (work / ("emlab-" + a.base)).string()}, {"adapter", dir.string()}});
  }
  return items;
}

const Reference& reference() {
  static Reference ref = [] {
    Reference r;
    const std::set<std::string> parts = wanted_parts();
    const fs::path work = test::temp_dir("hfref");
    json request = {{"parts", parts}, {"emlab", json::array()}};
    if (parts.count("emlab")) request["emlab"] = write_emlab_items(work, r);
    test::write_text(work / "request.json", request.dump());
    std::string output;
    const int rc = test::run_reference_script("model/hf_reference.py", "'" + work.string() + "'", &output);
    if (rc != 0) {
      r.error = "hf_reference.py failed (" + std::to_string(rc) + "):\n" + output;
      return r;
    }
    r.expected = json::parse(test::read_text(work / "expected.json"));
    return r;
  }();
  return ref;
}

#define REQUIRE_REFERENCE(part)                                               \
  EMLAB_REQUIRE_PYREF();                                                      \
  const Reference& ref = reference();                                        \
  ASSERT_TRUE(ref.error.empty()) << ref.error;                               \
  ASSERT_TRUE(ref.expected.contains(part)) << ref.expected.dump().substr(0, 500)

TEST(HfReference, LogitsMatchTransformers) {
  REQUIRE_REFERENCE("logits");
  torch::NoGradGuard ng;
  std::set<std::string> seen;
  for (const auto& [name, c] : ref.expected["logits"].items()) {
    SCOPED_TRACE("architecture case '" + name + "' (" + c["model"].get<std::string>() + ")");
    seen.insert(name);
    auto model = CausalLM::load(c["model"].get<std::string>());
    auto t = tensors_load(c["tensors"].get<std::string>());
    const torch::Tensor ids = t.at("input_ids"), mask = t.at("attention_mask"), tokens = t.at("tokens");
    const int64_t T = ids.size(1), N = t.at("step_logits").size(0);
    // A near tie between the two best tokens could flip under rounding: the data has none.
    ASSERT_GT(c["min_gap"].get<double>(), 10 * kTolerance);
    EXPECT_GT(c["max_abs_logit"].get<double>(), 0.5);  // not a comparison of near-zero logits

    // Prompt and continuation in one call, without the cache.
    const torch::Tensor full = model->forward(t.at("full_ids"), padded(t.at("full_mask")));
    const double full_diff = masked_diff(full, t.at("full_logits"), t.at("full_mask"));
    EXPECT_LE(full_diff, kTolerance) << "without the KV cache";

    // Prefill into the cache, then greedy decoding one token at a time, the generator's way.
    KVCache cache;
    ForwardArgs args = padded(mask);
    args.cache = &cache;
    const torch::Tensor prefill = model->forward(ids, args);
    const double prefill_diff = masked_diff(prefill, t.at("prefill_logits"), mask);
    EXPECT_LE(prefill_diff, kTolerance) << "prefill";
    torch::Tensor next = prefill.select(1, T - 1).argmax(-1);  // (B)
    torch::Tensor grown = mask.clone(), next_pos = mask.sum(1);
    double step_diff = 0;
    EXPECT_TRUE(torch::equal(next, tokens.select(1, 0))) << "first greedy token";
    for (int64_t k = 0; k < N; ++k) {
      grown = torch::cat({grown, torch::ones({grown.size(0), 1}, grown.options())}, 1);
      ForwardArgs step;
      step.cache = &cache;
      step.attention_mask = grown;
      step.position_ids = next_pos.unsqueeze(1);
      step.last_logits_only = true;
      const torch::Tensor logits = model->forward(next.unsqueeze(1), step).squeeze(1);  // (B, V)
      step_diff = std::max(step_diff, (logits - t.at("step_logits")[k]).abs().max().item<double>());
      next = logits.argmax(-1);
      next_pos = next_pos + 1;
      EXPECT_TRUE(torch::equal(next, tokens.select(1, k + 1))) << "greedy token " << k + 1;
    }
    EXPECT_LE(step_diff, kTolerance) << "decoding through the KV cache";
    std::printf("[transformers %s] %-12s max |logit diff| no cache %.2e, prefill %.2e, decode %.2e\n",
                ref.expected["versions"]["transformers"].get<std::string>().c_str(), name.c_str(), full_diff,
                prefill_diff, step_diff);
  }
  EXPECT_EQ(seen, std::set<std::string>(kArchitectures.begin(), kArchitectures.end()));
}

TEST(HfReference, PeftAdaptersGivePeftLogits) {
  REQUIRE_REFERENCE("peft");
  torch::NoGradGuard ng;
  int cases = 0;
  for (const auto& [name, c] : ref.expected["peft"].items()) {
    SCOPED_TRACE("peft case '" + name + "' (" + c["adapter"].get<std::string>() + ")");
    ++cases;
    auto model = CausalLM::load(c["base"].get<std::string>());
    PeftAdapter adapter = peft_load(c["adapter"].get<std::string>(), *model);
    EXPECT_TRUE(adapter.warnings.empty()) << adapter.warnings.front();
    auto t = tensors_load(c["tensors"].get<std::string>());
    const torch::Tensor ids = t.at("input_ids"), mask = t.at("attention_mask");
    model->set_lora(adapter.lora);
    const double diff = masked_diff(model->forward(ids, padded(mask)), t.at("logits"), mask);
    EXPECT_LE(diff, kTolerance) << "adapter logits";
    ForwardArgs off = padded(mask);
    off.adapters = false;  // the adapter matters: without it the logits are far from peft's
    EXPECT_GT(masked_diff(model->forward(ids, off), t.at("logits"), mask), 100 * kTolerance);

    auto merged = CausalLM::load(c["base"].get<std::string>());
    lora_merge(*merged, *adapter.lora);
    const double merged_diff = masked_diff(merged->forward(ids, padded(mask)), t.at("merged_logits"), mask);
    EXPECT_LE(merged_diff, kTolerance) << "lora_merge vs merge_and_unload";
    std::printf("[peft %s] %-20s %zu modules, max |logit diff| adapter %.2e, merged %.2e\n",
                ref.expected["versions"]["peft"].get<std::string>().c_str(), name.c_str(),
                adapter.lora->modules.size(), diff, merged_diff);

    const auto& m = adapter.lora->modules;
    if (name == "layers_to_transform") {  // o, gate, down of layer 1 only
      EXPECT_EQ(m.size(), 3u);
      for (const auto& [module, lm] : m) EXPECT_NE(module.find("layers.1."), std::string::npos) << module;
    }
    if (name == "patterns") {  // the first matching pattern in the file wins, as in peft
      EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj").A.size(0), 5);
      EXPECT_EQ(m.at("model.layers.1.self_attn.q_proj").A.size(0), 3);
      EXPECT_EQ(m.at("model.layers.1.mlp.up_proj").A.size(0), 6);
      EXPECT_DOUBLE_EQ(m.at("model.layers.0.mlp.down_proj").scale, 32.0 / 4);
      EXPECT_DOUBLE_EQ(m.at("model.layers.0.self_attn.k_proj").scale, 8.0 / 4);
    }
    if (name == "rslora_all_linear") {  // 7 projections x 4 layers, alpha / sqrt(r)
      EXPECT_EQ(m.size(), 28u);
      EXPECT_DOUBLE_EQ(m.begin()->second.scale, 16.0 / std::sqrt(8.0));
    }
  }
  EXPECT_EQ(cases, 5);
}

TEST(HfReference, EmlabFilesLoadInTransformersAndPeft) {
  REQUIRE_REFERENCE("emlab");
  torch::NoGradGuard ng;
  ASSERT_EQ(ref.expected["emlab"].size(), ref.emlab.size());
  for (const auto& [name, item] : ref.emlab) {
    SCOPED_TRACE("emlab-written '" + name + "'");
    ASSERT_TRUE(ref.expected["emlab"].contains(name));
    const json& c = ref.expected["emlab"][name];
    auto t = tensors_load(c["tensors"].get<std::string>());
    const torch::Tensor ids = t.at("input_ids"), mask = t.at("attention_mask");
    item.model->set_lora(item.lora);
    const torch::Tensor got = item.model->forward(ids, padded(mask));
    item.model->set_lora(nullptr);
    const double diff = masked_diff(got, t.at("logits"), mask);
    EXPECT_LE(diff, kTolerance);
    std::printf("[emlab -> %s] %-14s max |logit diff| %.2e\n", c["config_class"].get<std::string>().c_str(),
                name.c_str(), diff);
  }
}

}  // namespace
}  // namespace emlab
