// Test fixtures for finetuning: the chat fixtures (chat_fixture.h) and a tiny random model
// directory that uses the byte tokenizer. Header-only: the finetuning and adapter tests include it.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "chat_fixture.h"
#include "emlab/hf_config.h"
#include "emlab/model.h"
#include "test_util.h"
#include "tiny_models.h"

namespace emlab::test {

inline ModelConfig tiny_train_config(const std::string& kind = "llama") {
  nlohmann::json c = tiny_config(kind);
  c["vocab_size"] = kTinyVocab;
  c["max_position_embeddings"] = 256;  // initializer_range 0.2 (tiny_config): logits can move far enough to learn
  return ModelConfig::from_json(c, "tiny_train_config");
}

// A tiny random model directory with the byte tokenizer.
inline std::filesystem::path make_model_dir(const std::string& tag, const std::string& kind = "llama",
                                            uint64_t seed = 1) {
  auto dir = temp_dir(tag);
  auto model = CausalLM::init_random(tiny_train_config(kind), seed);
  model->save(dir.string());
  write_byte_tokenizer(dir);
  return dir;
}

}  // namespace emlab::test
