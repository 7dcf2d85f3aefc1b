#include "text/decoder.h"

#include <algorithm>

#include "emlab/byte_level.h"

namespace emlab::text {

namespace {

const char* const kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

std::string replace_all(const std::string& s, const std::string& pattern, const std::string& content) {
  if (pattern.empty()) return s;
  std::string out;
  size_t from = 0;
  for (size_t at = s.find(pattern); at != std::string::npos; at = s.find(pattern, from)) {
    out.append(s, from, at - from).append(content);
    from = at + pattern.size();
  }
  out.append(s, from, std::string::npos);
  return out;
}

// Byte runs of "<0xNN>" tokens become their text when it is valid UTF-8, else one U+FFFD per byte.
std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string bytes;
  size_t count = 0;
  auto flush = [&] {
    if (count == 0) return;
    if (utf8_valid(bytes)) {
      out.push_back(bytes);
    } else {
      for (size_t k = 0; k < count; ++k) out.emplace_back(kReplacementCharacter);
    }
    bytes.clear();
    count = 0;
  };
  for (auto& token : tokens) {
    int value = byte_fallback_value(token);
    if (value >= 0) {
      bytes.push_back(static_cast<char>(value));
      ++count;
    } else {
      flush();
      out.push_back(std::move(token));
    }
  }
  flush();
  return out;
}

// The code points of s as UTF-8 strings (a malformed byte stands alone).
std::vector<std::string> characters(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t at = i;
    utf8_next(s, &i);
    out.push_back(s.substr(at, i - at));
  }
  return out;
}

std::string strip(const std::string& token, const DecoderStep& step) {
  std::vector<std::string> chars = characters(token);
  size_t begin = 0, end = chars.size();
  for (size_t i = 0; i < std::min(step.start, chars.size()) && chars[i] == step.pattern; ++i) begin = i + 1;
  for (size_t i = 0; i < step.stop && i < chars.size() && chars[chars.size() - 1 - i] == step.pattern; ++i)
    end = chars.size() - 1 - i;
  std::string out;
  for (size_t i = begin; i < std::max(begin, end); ++i) out += chars[i];
  return out;
}

}  // namespace

int byte_fallback_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int high = hex(token[3]), low = hex(token[4]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

bool TokenDecoder::has(DecoderStep::Kind kind) const {
  return std::any_of(steps_.begin(), steps_.end(), [&](const DecoderStep& s) { return s.kind == kind; });
}

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  if (steps_.empty()) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const auto& step : steps_) {
    switch (step.kind) {
      case DecoderStep::Kind::Replace:
        for (auto& t : tokens) t = replace_all(t, step.pattern, step.content);
        break;
      case DecoderStep::Kind::ByteFallback:
        tokens = byte_fallback(std::move(tokens));
        break;
      case DecoderStep::Kind::Fuse: {
        std::string joined;
        for (const auto& t : tokens) joined += t;
        tokens.assign(1, std::move(joined));
        break;
      }
      case DecoderStep::Kind::Strip:
        for (auto& t : tokens) t = strip(t, step);
        break;
      case DecoderStep::Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i)
          tokens[i] = replace_all(tokens[i], step.pattern,
                                  i == 0 && step.scheme != PrependScheme::Never ? "" : " ");
        break;
      case DecoderStep::Kind::ByteLevel:
        break;  // refused by the loader outside byte_level_only()
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string TokenDecoder::token_text(const std::string& token) const {
  std::string text = token;
  for (const auto& step : steps_) {
    if (step.kind == DecoderStep::Kind::Replace) {
      text = replace_all(text, step.pattern, step.content);
    } else if (step.kind == DecoderStep::Kind::Metaspace) {
      text = replace_all(text, step.pattern, " ");
    } else if (step.kind == DecoderStep::Kind::ByteFallback) {
      int value = byte_fallback_value(text);
      if (value >= 0) text.assign(1, static_cast<char>(value));
    } else if (step.kind == DecoderStep::Kind::ByteLevel) {
      std::string bytes;
      if (byte_level_decode(text, &bytes)) text = bytes;
    }
  }
  return text;
}

}  // namespace emlab::text
