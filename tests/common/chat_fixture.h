// Test fixtures for chat data: a byte-level tokenizer written as tokenizer.json (one token per byte
// plus ChatML's special tokens) and small chat datasets. Header-only and torch-free: the tokenizer,
// data and finetuning tests include it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/byte_level.h"
#include "emlab/chat_dataset.h"
#include "test_util.h"

namespace emlab::test {

constexpr int kImStart = 256, kImEnd = 257, kEndOfText = 258, kTinyVocab = 264;

// tokenizer.json + tokenizer_config.json (ChatML template, eos <|im_end|>) in dir.
inline void write_byte_tokenizer(const std::filesystem::path& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[text::byte_to_unicode()[b]] = b;
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
