// The engine benchmark model (~25M parameters, Llama-shaped, fp32 random weights), shared by the
// benchmarks so that their figures refer to one model.
#pragma once

#include <nlohmann/json.hpp>

#include "emlab/hf_config.h"

namespace emlab::bench {

inline nlohmann::json engine_model_json() {
  return {{"model_type", "llama"},        {"vocab_size", 8000},     {"hidden_size", 512},
          {"intermediate_size", 1376},    {"num_hidden_layers", 6}, {"num_attention_heads", 8},
          {"num_key_value_heads", 4},     {"max_position_embeddings", 1024},
          {"tie_word_embeddings", false}, {"rms_norm_eps", 1e-5}};
}

inline ModelConfig engine_model_config() { return ModelConfig::from_json(engine_model_json(), "bench"); }

}  // namespace emlab::bench
