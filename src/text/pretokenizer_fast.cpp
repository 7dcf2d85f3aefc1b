#include "text/pretokenizer_fast.h"

#include <unicode/uchar.h>

#include <array>

#include "emlab/byte_level.h"
#include "text/pretokenizer.h"

namespace emlab::text {

namespace {

// Character classes of the regexes; a malformed byte is in none of them (PCRE2's
// MATCH_INVALID_UTF: it never matches, not even a negated class).
enum : uint8_t { kL = 1, kN = 2, kS = 4, kNewline = 8, kInvalid = 16, kEnd = 32 };

uint8_t classify(char32_t cp) {
  uint8_t f = 0;
  int8_t type = u_charType(static_cast<UChar32>(cp));
  if (type >= U_UPPERCASE_LETTER && type <= U_OTHER_LETTER) f |= kL;
  if (type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER) f |= kN;
  if (u_isUWhiteSpace(static_cast<UChar32>(cp))) f |= kS;
  if (cp == '\r' || cp == '\n') f |= kNewline;
  return f;
}

const std::array<uint8_t, 128>& ascii_classes() {
  static const std::array<uint8_t, 128> table = [] {
    std::array<uint8_t, 128> t{};
    for (int c = 0; c < 128; ++c) t[c] = classify(static_cast<char32_t>(c));
    return t;
  }();
  return table;
}

struct Char {
  uint8_t flags;  // class bits
  uint8_t len;    // bytes
  char32_t cp;
};

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s), ascii_(ascii_classes()) {}

  Char at(size_t i) const {
    if (i >= s_.size()) return {kEnd, 0, 0};
    unsigned char c = static_cast<unsigned char>(s_[i]);
    if (c < 0x80) return {ascii_[c], 1, c};
    size_t j = i;
    int32_t cp = utf8_next(s_, &j);
    if (cp < 0) return {kInvalid, 1, 0};
    return {classify(static_cast<char32_t>(cp)), static_cast<uint8_t>(j - i), static_cast<char32_t>(cp)};
  }
  static bool other(const Char& c) { return (c.flags & (kL | kN | kS | kInvalid | kEnd)) == 0; }

  // End of the run of characters starting at i whose flags satisfy pred (at most max chars).
  template <typename Pred>
  size_t run(size_t i, Pred pred, int max = 1 << 30) const {
    for (int n = 0; n < max; ++n) {
      Char c = at(i);
      if (!pred(c)) break;
      i += c.len;
    }
    return i;
  }

  // 's 't 're 've 'm 'll 'd at i (which holds '\''); returns the end or 0.
  size_t contraction(size_t i, bool ignore_case) const {
    auto letter = [&](size_t k) -> char32_t {
      Char c = at(k);
      char32_t cp = c.cp;
      if (!ignore_case || !(c.flags & kL)) return (c.flags & (kInvalid | kEnd)) ? 0 : cp;
      if (cp == 0x17F) return 's';  // LATIN SMALL LETTER LONG S folds to s
      return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    };
    char32_t a = letter(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 1 + at(i + 1).len;
    size_t second = i + 1 + at(i + 1).len;
    char32_t b = letter(second);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return second + at(second).len;
    return 0;
  }

  // End of a whitespace match starting at i for `\s+(?!\S)|\s+`.
  size_t spaces(size_t i) const {
    size_t end = i, last = i;
    int count = 0;
    for (Char c = at(end); c.flags & kS; c = at(end)) {
      last = end;
      end += c.len;
      ++count;
    }
    Char next = at(end);
    if (next.flags & (kEnd | kInvalid)) return end;  // (?!\S) holds at the end and before bad bytes
    return count >= 2 ? last : end;                   // leave the last space to the next word
  }

  size_t gpt2(size_t i) const {
    Char c = at(i);
    if (c.cp == '\'' && c.flags != kInvalid)
      if (size_t e = contraction(i, false)) return e;
    size_t j = c.cp == ' ' ? i + 1 : i;
    Char d = at(j);
    if (c.cp == ' ' && !(d.flags & kL) && !(d.flags & kN) && !other(d)) j = i, d = c;
    if (d.flags & kL) return run(j, [](const Char& x) { return x.flags & kL; });
    if (d.flags & kN) return run(j, [](const Char& x) { return x.flags & kN; });
    if (other(d)) return run(j, other);
    return spaces(i);
  }

  size_t qwen(size_t i, int max_digits) const {
    Char c = at(i);
    if (c.cp == '\'' && c.flags != kInvalid)
      if (size_t e = contraction(i, true)) return e;
    auto letters = [](const Char& x) { return x.flags & kL; };
    if (c.flags & kL) return run(i, letters);
    if (!(c.flags & (kNewline | kN))) {
      Char d = at(i + c.len);
      if (d.flags & kL) return run(i + c.len, letters);
    }
    if (c.flags & kN) return run(i, [](const Char& x) { return x.flags & kN; }, max_digits);
    size_t j = (c.cp == ' ' && other(at(i + 1))) ? i + 1 : i;
    if (other(at(j))) {
      size_t e = run(j, other);
      return run(e, [](const Char& x) { return x.flags & kNewline; });
    }
    // \s*[\r\n]+ : up to the last newline of the whitespace run.
    size_t end = i, after_newline = 0;
    for (Char x = at(end); x.flags & kS; x = at(end)) {
      end += x.len;
      if (x.flags & kNewline) after_newline = end;
    }
    if (after_newline) return after_newline;
    return spaces(i);
  }

 private:
  std::string_view s_;
  const std::array<uint8_t, 128>& ascii_;
};

}  // namespace

FastSplit fast_split_for(std::string_view pattern) {
  if (pattern == kGpt2Pattern) return FastSplit::Gpt2;
  if (pattern == kQwen2Pattern) return FastSplit::Qwen2;
  if (pattern == kLlama3Pattern) return FastSplit::Llama3;
  return FastSplit::None;
}

void fast_split(FastSplit kind, std::string_view text, std::vector<std::string_view>* pieces) {
  Scanner scan(text);
  size_t i = 0, gap = std::string_view::npos;
  while (i < text.size()) {
    Char c = scan.at(i);
    if (c.flags & kInvalid) {  // malformed bytes gather into one piece
      if (gap == std::string_view::npos) gap = i;
      ++i;
      continue;
    }
    if (gap != std::string_view::npos) {
      pieces->push_back(text.substr(gap, i - gap));
      gap = std::string_view::npos;
    }
    size_t end = kind == FastSplit::Gpt2 ? scan.gpt2(i) : scan.qwen(i, kind == FastSplit::Llama3 ? 3 : 1);
    pieces->push_back(text.substr(i, end - i));
    i = end;
  }
  if (gap != std::string_view::npos) pieces->push_back(text.substr(gap));
}

}  // namespace emlab::text
