// Test fixtures for finetuning: a byte-level tokenizer written as tokenizer.json (one token per
// byte plus ChatML's special tokens), a tiny random model directory that uses it, and small chat
// datasets. Header-only: every tests/train/*_test.cpp includes it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/chat_dataset.h"
#include "emlab/hf_config.h"
#include "emlab/model.h"
#include "test_util.h"
#include "tiny_models.h"

namespace emlab::test {

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards.
inline std::string byte_level_char(int b) {
  auto printable = [](int c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255); };
  int cp = b;
  if (!printable(b)) {
    int n = 0;
    for (int c = 0; c < b; ++c)
      if (!printable(c)) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

constexpr int kImStart = 256, kImEnd = 257, kEndOfText = 258, kTinyVocab = 264;

// tokenizer.json + tokenizer_config.json (ChatML template, eos <|im_end|>) in dir.
inline void write_byte_tokenizer(const std::filesystem::path& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(b)] = b;
  nlohmann::json tok = {
      {"version", "1.0"},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", kImStart}, {"content", "<|im_start|>"}, {"special", true}},
        {{"id", kImEnd}, {"content", "<|im_end|>"}, {"special", true}},
        {{"id", kEndOfText}, {"content", "<|endoftext|>"}, {"special", true}}}}};
  std::filesystem::create_directories(dir);
  write_text(dir / "tokenizer.json", tok.dump());
  nlohmann::json cfg = {
      {"eos_token", "<|im_end|>"},
      {"pad_token", "<|endoftext|>"},
      {"chat_template",
       "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
       "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"}};
  write_text(dir / "tokenizer_config.json", cfg.dump());
}

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

// n short arithmetic chats ("What is 3 plus 4?" -> "7."), learnable by a tiny model.
inline std::vector<Conversation> arithmetic_chats(int n, int offset = 0) {
  std::vector<Conversation> out;
  for (int i = 0; i < n; ++i) {
    int a = (i * 7 + offset) % 10, b = (i * 3 + 1 + offset) % 10;
    Conversation c;
    if (i % 3 == 0) c.push_back({"system", "Be brief."});
    c.push_back({"user", "What is " + std::to_string(a) + " plus " + std::to_string(b) + "?"});
    c.push_back({"assistant", std::to_string(a + b) + "."});
    out.push_back(c);
  }
  return out;
}

inline std::filesystem::path write_chats(const std::filesystem::path& path, const std::vector<Conversation>& convs) {
  std::string text;
  for (const auto& c : convs) text += conversation_to_json(c).dump() + "\n";
  write_text(path, text);
  return path;
}

}  // namespace emlab::test
