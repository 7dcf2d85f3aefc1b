#include "emlab/byte_level.h"

#include <unordered_map>

namespace emlab::text {

namespace {

// Bytes that are printable and not whitespace map to themselves; the other 68 bytes map, in
// order, to 256, 257, ... (GPT-2's bytes_to_unicode()).
std::array<char32_t, 256> make_codepoints() {
  std::array<char32_t, 256> cp{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) cp[b] = direct[b] ? char32_t(b) : next++;
  return cp;
}

const std::unordered_map<char32_t, unsigned char>& codepoint_to_byte() {
  static const auto table = [] {
    std::unordered_map<char32_t, unsigned char> m;
    const auto& cp = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) m[cp[b]] = static_cast<unsigned char>(b);
    return m;
  }();
  return table;
}

}  // namespace

const std::array<char32_t, 256>& byte_to_codepoint() {
  static const std::array<char32_t, 256> table = make_codepoints();
  return table;
}

const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) utf8_append(byte_to_codepoint()[b], &t[b]);
    return t;
  }();
  return table;
}

void utf8_append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int32_t utf8_next(std::string_view s, size_t* i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  size_t p = *i;
  unsigned char c = byte(p);
  int len;
  char32_t cp;
  if (c < 0x80) {
    *i = p + 1;
    return c;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07;
  } else {
    *i = p + 1;
    return -1;
  }
  if (p + len > s.size()) {
    *i = p + 1;
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    unsigned char cc = byte(p + k);
    if ((cc & 0xC0) != 0x80) {
      *i = p + 1;
      return -1;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are malformed.
  static const char32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *i = p + 1;
    return -1;
  }
  *i = p + len;
  return static_cast<int32_t>(cp);
}

bool utf8_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    if (utf8_next(s, &i) < 0) return false;
  }
  return true;
}

std::string byte_level_encode(std::string_view bytes) {
  const auto& table = byte_to_unicode();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += table[static_cast<unsigned char>(c)];
  return out;
}

bool byte_level_decode(std::string_view token, std::string* out) {
  const auto& inverse = codepoint_to_byte();
  size_t i = 0;
  while (i < token.size()) {
    int32_t cp = utf8_next(token, &i);
    if (cp < 0) return false;
    auto it = inverse.find(static_cast<char32_t>(cp));
    if (it == inverse.end()) return false;
    out->push_back(static_cast<char>(it->second));
  }
  return true;
}

}  // namespace emlab::text
