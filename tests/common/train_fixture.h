// Test fixtures for finetuning: the chat fixtures (chat_fixture.h) and a tiny random model
// directory that uses the byte tokenizer. Header-only: the finetuning and adapter tests include it.
#pragma once

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat_fixture.h"
#include "emlab/hf_config.h"
#include "emlab/model.h"
#include "emlab/progress.h"
#include "emlab/train.h"
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

// The trainer suites' fixture (CPU and GPU): a tiny model, 16 arithmetic chats and 12 more for a
// KL term, made once per suite, and the options of a short LoRA run on them.
struct TrainSuite : ::testing::Test {
  static void SetUpTestSuite() {
    Progress::set_enabled(false);
    model_dir = new std::filesystem::path(make_model_dir("trainmodel"));
    auto d = temp_dir("traindata");
    data = new std::filesystem::path(write_chats(d / "train.jsonl", arithmetic_chats(16)));
    kl_data = new std::filesystem::path(write_chats(d / "kl.jsonl", arithmetic_chats(12, 5)));
  }
  static inline std::filesystem::path* model_dir = nullptr;
  static inline std::filesystem::path* data = nullptr;
  static inline std::filesystem::path* kl_data = nullptr;

  TrainOptions options(const std::string& tag) const {
    TrainOptions o;
    o.model = model_dir->string();
    o.data = data->string();
    o.out = temp_dir(tag).string();
    o.lr = 1e-2;
    o.batch_size = 4;
    o.max_steps = 12;
    o.lora.rank = 4;
    o.lora.alpha = 8;
    return o;
  }
};

}  // namespace emlab::test
