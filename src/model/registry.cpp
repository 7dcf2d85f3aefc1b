// Architecture registry keyed by config.json "model_type".
#include <map>

#include "emlab/error.h"
#include "emlab/model.h"

namespace emlab {

namespace {

const std::map<std::string, ArchSpec>& registry() {
  static const std::map<std::string, ArchSpec> specs = [] {
    std::map<std::string, ArchSpec> m;
    ArchSpec llama;  // Llama 2/3/3.1, SmolLM, TinyLlama
    llama.model_type = "llama";
    llama.attention_bias_config = true;
    llama.mlp_bias_config = true;
    m["llama"] = llama;

    ArchSpec qwen2;  // q/k/v biases always, o_proj without
    qwen2.model_type = "qwen2";
    qwen2.qkv_bias = true;
    m["qwen2"] = qwen2;

    ArchSpec qwen3;  // per-head q_norm/k_norm
    qwen3.model_type = "qwen3";
    qwen3.attention_bias_config = true;
    qwen3.qk_norm = true;
    m["qwen3"] = qwen3;

    ArchSpec mistral;
    mistral.model_type = "mistral";
    mistral.sliding_window = true;
    m["mistral"] = mistral;
    return m;
  }();
  return specs;
}

}  // namespace

const ArchSpec& arch_lookup(const std::string& model_type, const std::string& source) {
  auto it = registry().find(model_type);
  if (it == registry().end()) {
    std::string known;
    for (const auto& name : arch_names()) known += (known.empty() ? "" : ", ") + name;
    throw InputError(source + ": unknown model_type '" + model_type + "' (supported: " + known + ")");
  }
  return it->second;
}

std::vector<std::string> arch_names() {
  std::vector<std::string> names;
  for (const auto& [name, spec] : registry()) names.push_back(name);
  return names;
}

}  // namespace emlab
