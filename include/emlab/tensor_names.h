// Classes of Hugging Face tensor names that initialisation, the optimiser and the adapter loader
// treat alike: biases ("....bias") start at zero and, like norm weights, get no weight decay.
#pragma once

#include <string>

namespace emlab {

inline bool tensor_is_bias(const std::string& name) {
  return name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
}

// "model.norm.weight", "...input_layernorm.weight", "...self_attn.q_norm.weight".
inline bool tensor_is_norm_weight(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

}  // namespace emlab
