// A tokenizer whose token i is the text "<i>" (for generator tests that must not depend on BPE).
#pragma once

#include "emlab/tokenizer.h"

namespace emlab::test {

class FakeTokenizer : public Tokenizer {
 public:
  explicit FakeTokenizer(int64_t vocab) : vocab_(vocab) {}
  std::vector<int32_t> encode(const std::string& text, bool = true) const override {
    std::vector<int32_t> ids;
    size_t pos = 0;
    while ((pos = text.find('<', pos)) != std::string::npos) {
      size_t end = text.find('>', pos);
      ids.push_back(std::stoi(text.substr(pos + 1, end - pos - 1)));
      pos = end;
    }
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids, bool = false) const override {
    std::string s;
    for (int32_t id : ids) s += token_bytes(id);
    return s;
  }
  std::string token_bytes(int32_t id) const override { return "<" + std::to_string(id) + ">"; }
  std::optional<int32_t> token_id(const std::string& t) const override {
    auto ids = encode(t);
    if (ids.size() == 1) return ids[0];
    return std::nullopt;
  }
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
