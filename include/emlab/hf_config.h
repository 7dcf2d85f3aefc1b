// Hugging Face model configuration (config.json) and generation defaults (generation_config.json).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace emlab {

// rope_scaling: Llama 3.1 ("rope_type": "llama3") or linear position interpolation ("linear",
// Gemma 3's global layers); absent for plain RoPE. Other types (dynamic, yarn, longrope) are errors.
struct RopeScaling {
  std::string type;                          // "llama3" or "linear"
  double factor = 8.0;                       // context extension factor (linear: inv_freq / factor)
  double low_freq_factor = 1.0;              // wavelengths above original/low_freq_factor are scaled
  double high_freq_factor = 4.0;             // wavelengths below original/high_freq_factor are kept
  int64_t original_max_position_embeddings = 8192;  // context the model was pretrained with (llama3)
};

// What an attention layer sees (config.json "layer_types").
inline constexpr const char* kFullAttention = "full_attention";
inline constexpr const char* kSlidingAttention = "sliding_attention";

// Fields absent from config.json take the defaults of transformers' config class for the model_type
// (e.g. gemma2: head_dim 256, softcapping 50/30; qwen2: use_sliding_window false), so a file
// means what it means to transformers.
struct ModelConfig {
  std::string model_type;                    // registry key: llama, qwen2, qwen3, mistral, gemma2, gemma3_text
  int64_t vocab_size = 0;                    // rows of embed_tokens / lm_head
  int64_t hidden_size = 0;                   // C: residual stream width
  int64_t intermediate_size = 0;             // F: gated MLP hidden width
  int64_t num_hidden_layers = 0;             // L: decoder layers
  int64_t num_attention_heads = 0;           // H: query heads
  int64_t num_key_value_heads = 0;           // Hkv: key/value heads (GQA when < H); default H
  int64_t head_dim = 0;                      // D: per-head width; default C / H
  double rms_norm_eps = 1e-6;                // RMSNorm epsilon
  double rope_theta = 10000.0;               // RoPE base
  std::optional<RopeScaling> rope_scaling;   // frequency scaling (of the full-attention layers)
  std::optional<double> rope_local_theta;    // Gemma 3: RoPE base of sliding-window layers (null = rope_theta)
  int64_t max_position_embeddings = 2048;    // longest context the model supports
  bool tie_word_embeddings = false;          // lm_head shares embed_tokens.weight
  std::optional<bool> attention_bias;        // q/k/v (and o for llama) biases; default per architecture
  bool mlp_bias = false;                     // Llama: gate/up/down projections have biases
  std::string hidden_act = "silu";           // MLP gate activation: silu, gelu_pytorch_tanh, gelu (Gemma's key:
                                             // hidden_activation)
  std::optional<int64_t> sliding_window;     // local attention window (null = full); Qwen: only with use_sliding_window
  // Per layer kFullAttention or kSlidingAttention: "layer_types", else transformers' rule for the
  // model_type (qwen2/qwen3: layers >= max_window_layers; gemma2: every other layer; gemma3_text:
  // all but every sliding_window_pattern-th). Empty for llama/mistral (mistral windows every layer).
  std::vector<std::string> layer_types;
  std::optional<double> query_pre_attn_scalar;    // Gemma: scores scaled by 1/sqrt(this), not 1/sqrt(head_dim)
  std::optional<double> attn_logit_softcapping;   // Gemma 2: scores <- cap * tanh(scores / cap) before the mask
  std::optional<double> final_logit_softcapping;  // Gemma 2/3: logits <- cap * tanh(logits / cap)
  std::vector<int64_t> eos_token_ids;        // from config.json eos_token_id (int or list)
  std::optional<int64_t> bos_token_id;       // from config.json
  std::string torch_dtype;                   // dtype the checkpoint was saved in ("float32", "bfloat16")
  nlohmann::json raw;                        // the whole file, for fields not modelled here

  // Parses and validates (positive sizes, H divisible by Hkv, supported activation and RoPE, ...).
  // `source` names the file in errors.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::string& path);
  // Back to config.json form (fields above; raw fields not modelled are kept).
  nlohmann::json to_json() const;
  // Whether layer l attends through the sliding window (kSlidingAttention in layer_types).
  bool layer_is_sliding(int64_t layer) const;
};

struct GenerationConfig {
  std::vector<int64_t> eos_token_ids;        // extra stop ids (Llama 3 lists several)
  std::optional<double> temperature;         // model's suggested defaults (emlab's own defaults win
  std::optional<double> top_p;               // unless the user asks for the model's)
  std::optional<int64_t> top_k;

  // Missing file -> empty config. Bad JSON -> InputError naming the file.
  static GenerationConfig load_if_exists(const std::string& path);
};

}  // namespace emlab
