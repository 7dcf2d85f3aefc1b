// Tiny random models of each architecture, created by the tests themselves.
#pragma once

#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>

namespace emlab::test {

// A config.json for a tiny model of `model_type` (llama, llama3 = llama with rope_scaling,
// qwen2, qwen3, mistral, gemma2, gemma3_text): vocab 96, hidden 32, 2 layers (gemma3_text 3),
// 4 heads, 2 kv heads (GQA).
nlohmann::json tiny_config(const std::string& model_type);

// A tiny qwen2 model with the Qwen2.5 tokenizer of shared/ (151936 vocabulary rows, hidden 16),
// made by `emlab init-model` into dir/model (CLI tests; needs shared/). Returns dir/model.
std::string make_tiny_qwen_cli_model(const std::string& dir, int64_t context = 256);

}  // namespace emlab::test
