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
    qwen2.window = WindowLayers::LayerTypes;  // with use_sliding_window: layers >= max_window_layers
    m["qwen2"] = qwen2;

    ArchSpec qwen3;  // per-head q_norm/k_norm
    qwen3.model_type = "qwen3";
    qwen3.attention_bias_config = true;
    qwen3.qk_norm = true;
    qwen3.window = WindowLayers::LayerTypes;
    m["qwen3"] = qwen3;

    ArchSpec mistral;
    mistral.model_type = "mistral";
    mistral.window = WindowLayers::All;
    m["mistral"] = mistral;

    ArchSpec gemma2;  // scaled embeddings, (1 + w) sandwich norms, GeGLU, softcapping, local/global layers
    gemma2.model_type = "gemma2";
    gemma2.attention_bias_config = true;
    gemma2.window = WindowLayers::LayerTypes;
    gemma2.norm_plus_one = true;
    gemma2.embed_scale = true;
    gemma2.sandwich_norms = true;
    gemma2.attn_softcap = true;
    m["gemma2"] = gemma2;

    ArchSpec gemma3 = gemma2;  // + q/k norms and a RoPE base of its own on the sliding layers
    gemma3.model_type = "gemma3_text";
    gemma3.attn_softcap = false;  // Gemma3Attention never passes attn_logit_softcapping
    gemma3.qk_norm = true;
    gemma3.local_rope = true;
    m["gemma3_text"] = gemma3;
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
    std::string hint;
    if (model_type == "gemma3")
      hint = "; a Gemma 3 image-text checkpoint: emlab runs text-only Gemma 3 (model_type gemma3_text, e.g. "
             "gemma-3-1b, or the text model saved on its own)";
    throw InputError(source + ": unknown model_type '" + model_type + "' (supported: " + known + ")" + hint);
  }
  return it->second;
}

std::vector<std::string> arch_names() {
  std::vector<std::string> names;
  for (const auto& [name, spec] : registry()) names.push_back(name);
  return names;
}

}  // namespace emlab
