// Tiny random models of each architecture, created by the tests themselves.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace emlab::test {

// A config.json for a tiny model of `model_type` (llama, llama3 = llama with rope_scaling,
// qwen2, qwen3, mistral): vocab 96, hidden 32, 2 layers, 4 heads, 2 kv heads (GQA).
nlohmann::json tiny_config(const std::string& model_type);

}  // namespace emlab::test
