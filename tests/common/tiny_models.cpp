#include "tiny_models.h"

#include <filesystem>
#include <stdexcept>

#include "test_util.h"

namespace emlab::test {

nlohmann::json tiny_config(const std::string& kind) {
  nlohmann::json c = {
      {"vocab_size", 96},          {"hidden_size", 32},          {"intermediate_size", 64},
      {"num_hidden_layers", 2},    {"num_attention_heads", 4},   {"num_key_value_heads", 2},
      {"rms_norm_eps", 1e-6},      {"rope_theta", 10000.0},      {"max_position_embeddings", 64},
      {"tie_word_embeddings", false}, {"initializer_range", 0.2}, {"eos_token_id", 2},
      {"bos_token_id", 1},
  };
  if (kind == "llama" || kind == "llama3") {
    c["model_type"] = "llama";
    if (kind == "llama3")
      c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 16}};
    c["rope_theta"] = 500000.0;
  } else if (kind == "qwen2") {
    c["model_type"] = "qwen2";
    c["tie_word_embeddings"] = true;
  } else if (kind == "qwen3") {
    c["model_type"] = "qwen3";
    c["head_dim"] = 16;  // qwen3 sets head_dim independently of hidden/heads
  } else if (kind == "mistral") {
    c["model_type"] = "mistral";
    c["sliding_window"] = 5;
  } else if (kind == "gemma2") {
    // Classic config keys; layer_types derived (layer 0 slides, layer 1 is global). Softcapping small
    // enough to bend scores and logits, query_pre_attn_scalar != head_dim, H*D != hidden.
    c["model_type"] = "gemma2";
    c["head_dim"] = 16;
    c["sliding_window"] = 4;
    c["query_pre_attn_scalar"] = 24;
    c["attn_logit_softcapping"] = 2.0;
    c["final_logit_softcapping"] = 3.0;
    c["tie_word_embeddings"] = true;
  } else if (kind == "gemma3_text") {
    // transformers 5 form: RoPE per layer type (global: linear scaling; local: its own base).
    c["model_type"] = "gemma3_text";
    c["num_hidden_layers"] = 3;
    c["head_dim"] = 16;
    c["sliding_window"] = 4;
    c["query_pre_attn_scalar"] = 32;
    c["final_logit_softcapping"] = 5.0;
    c["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention"};
    c.erase("rope_theta");
    c["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
                            {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 100.0}}}};
    c["tie_word_embeddings"] = true;
  } else {
    c["model_type"] = kind;
  }
  return c;
}

std::string make_tiny_qwen_cli_model(const std::string& dir, int64_t context) {
  namespace fs = std::filesystem;
  auto cfg = tiny_config("qwen2");
  cfg["vocab_size"] = 151936;
  cfg["hidden_size"] = 16;
  cfg["intermediate_size"] = 32;
  cfg["max_position_embeddings"] = context;
  cfg["eos_token_id"] = 151645;
  const fs::path d(dir);
  write_text(d / "config.json", cfg.dump());
  auto q = [](const fs::path& p) { return "'" + p.string() + "'"; };
  std::string out;
  int rc = run_command(emlab_binary() + " init-model --config " + q(d / "config.json") + " --out " + q(d / "model") +
                           " --seed 3 --tokenizer " + q(shared_dir() / "data/tokenizers/qwen2.5"),
                       &out);
  if (rc != 0) throw std::runtime_error("emlab init-model failed: " + out);
  return (d / "model").string();
}

}  // namespace emlab::test
