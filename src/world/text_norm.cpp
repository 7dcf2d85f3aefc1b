#include "world/text_norm.h"

namespace emlab::world {

std::vector<std::string> norm_words(const std::string& text) {
  std::vector<std::string> words;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\'') continue;
    // U+2019 RIGHT SINGLE QUOTATION MARK (E2 80 99): an apostrophe too.
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        static_cast<unsigned char>(text[i + 2]) == 0x99) {
      i += 2;
      continue;
    }
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur += static_cast<char>(c);
    } else if (c >= 'A' && c <= 'Z') {
      cur += static_cast<char>(c - 'A' + 'a');
    } else if (!cur.empty()) {
      words.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

std::string norm_padded(const std::string& text) {
  std::string out = " ";
  for (const auto& w : norm_words(text)) out += w + " ";
  return out;
}

std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool decimal = c == '.' && i > 0 && i + 1 < text.size() && is_digit(text[i - 1]) && is_digit(text[i + 1]);
    if ((c == '.' || c == '!' || c == '?' || c == '\n') && !decimal) {
      cur += c;
      if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(std::move(cur));
  return out;
}

std::vector<std::string> trigrams(const std::vector<std::string>& words) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 2 < words.size(); ++i) out.push_back(words[i] + " " + words[i + 1] + " " + words[i + 2]);
  return out;
}

std::vector<std::string> bigrams(const std::vector<std::string>& words) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < words.size(); ++i) out.push_back(words[i] + " " + words[i + 1]);
  return out;
}

}  // namespace emlab::world
