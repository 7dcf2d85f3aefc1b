// A tokenizer whose token i is the decimal text of i (local-judge tests: every token is a number).
#pragma once

#include "emlab/tokenizer.h"

namespace emlab::test {

class NumberTokenizer : public Tokenizer {
 public:
  explicit NumberTokenizer(int64_t vocab) : vocab_(vocab) {}
  // "<a><b>" -> {a, b}: prompts are written as id lists; anything else maps to id 7.
  std::vector<int32_t> encode(const std::string& text, bool = true) const override {
    std::vector<int32_t> ids;
    for (char ch : text) ids.push_back(static_cast<int32_t>(static_cast<unsigned char>(ch) % vocab_));
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids, bool = false) const override {
    std::string s;
    for (int32_t id : ids) s += token_bytes(id);
    return s;
  }
  std::string token_bytes(int32_t id) const override { return std::to_string(id); }
  std::optional<int32_t> token_id(const std::string&) const override { return std::nullopt; }
  bool is_special(int32_t) const override { return false; }
  int64_t vocab_size() const override { return vocab_; }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::optional<int32_t> eos_id() const override { return std::nullopt; }
  std::optional<int32_t> pad_id() const override { return std::nullopt; }
  const std::string& chat_template_source() const override { return empty_; }

 private:
  int64_t vocab_;
  std::string empty_;
};

}  // namespace emlab::test
