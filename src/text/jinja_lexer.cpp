// Jinja lexer: template data and the tokens inside {{ }}, {% %} (comments and raw blocks dropped
// or kept as data), with Jinja2's whitespace control as transformers configures it:
// trim_blocks (a block or comment tag eats the one newline after it), lstrip_blocks (spaces and
// tabs before a block or comment tag on its own line are dropped), "-" on either side of a tag
// strips all whitespace on that side and "+" turns both defaults off for that side.
#include <algorithm>

#include "text/jinja_internal.h"

namespace emlab::jinja {

namespace {

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return name_start(c) || is_digit(c); }

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The body of a string literal decoded as Python's unicode-escape codec does.
std::string decode_string(const std::string& body) {
  std::string out;
  for (size_t k = 0; k < body.size(); ++k) {
    char c = body[k];
    if (c != '\\' || k + 1 == body.size()) {
      out += c;
      continue;
    }
    char e = body[++k];
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t d = 1; d <= digits; ++d) {
          int h = k + d < body.size() ? hex_value(body[k + d]) : -1;
          if (h < 0) fail("truncated \\" + std::string(1, e) + " escape in a string");
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        k += digits;
        append_utf8(cp, &out);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = static_cast<uint32_t>(e - '0');
          for (int d = 0; d < 2 && k + 1 < body.size() && body[k + 1] >= '0' && body[k + 1] <= '7'; ++d)
            cp = cp * 8 + static_cast<uint32_t>(body[++k] - '0');
          append_utf8(cp, &out);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& raw) {
    for (size_t k = 0; k < raw.size(); ++k) {
      if (raw[k] == '\r') {
        src_ += '\n';
        if (k + 1 < raw.size() && raw[k + 1] == '\n') ++k;
      } else {
        src_ += raw[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') newlines_.push_back(k);
  }

  std::vector<Token> run() {
    size_t pos = 0, n = src_.size();
    bool line_starting = true;
    while (pos < n) {
      size_t start = pos;
      while (start + 1 < n && !(src_[start] == '{' && (src_[start + 1] == '{' || src_[start + 1] == '%' || src_[start + 1] == '#')))
        ++start;
      if (start + 1 >= n) {
        emit(Tok::Data, src_.substr(pos), pos);
        break;
      }
      char kind = src_[start + 1];
      size_t p = start + 2;
      char sign = p < n && (src_[p] == '-' || src_[p] == '+') ? src_[p] : 0;
      std::string text = src_.substr(pos, start - pos);
      strip_before(&text, sign, kind != '{', line_starting);
      if (!text.empty()) emit(Tok::Data, text, pos);
      if (sign) ++p;
      if (kind == '#') {
        p = comment_end(p, start);
      } else if (kind == '%' && raw_begin(p, &p)) {
        p = raw_body(p, start);
      } else {
        emit(kind == '%' ? Tok::BlockBegin : Tok::VarBegin, "", start);
        p = tag_tokens(p, kind, start);
      }
      line_starting = p > 0 && src_[p - 1] == '\n';
      pos = p;
    }
    tokens_.push_back({Tok::Eof, "", line_of(n)});
    return std::move(tokens_);
  }

 private:
  int line_of(size_t pos) const {
    return 1 + static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), pos) - newlines_.begin());
  }
  [[noreturn]] void error_at(size_t pos, const std::string& what) const {
    fail("line " + std::to_string(line_of(pos)) + ": " + what);
  }
  void emit(Tok type, std::string value, size_t pos) { tokens_.push_back({type, std::move(value), line_of(pos)}); }

  // Whitespace control of the data before a tag: "-" strips it all; otherwise (no "+", a block or
  // comment tag) lstrip_blocks drops the spaces and tabs that open the tag's line.
  static void strip_before(std::string* text, char sign, bool block, bool line_starting) {
    if (sign == '-') {
      size_t end = text->size();
      while (end > 0) {
        size_t k = end - 1;
        while (k > 0 && (static_cast<unsigned char>((*text)[k]) & 0xC0) == 0x80) --k;
        size_t len;
        if (!is_space_at(*text, k, &len)) break;
        end = k;
      }
      text->resize(end);
    } else if (sign != '+' && block) {
      size_t nl = text->rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && l_pos < text->size()) {
        bool blank = true;
        for (size_t k = l_pos; k < text->size() && blank;) {
          size_t len;
          blank = is_space_at(*text, k, &len);
          k += len;
        }
        if (blank) text->resize(l_pos);
      }
    }
  }

  // The end of a tag: "-X" strips whitespace after it, "+X" keeps it, and a block or comment end
  // takes one newline (trim_blocks).
  size_t after_end(size_t p, bool minus, bool plus, bool trim) const {
    if (minus) {
      while (p < src_.size() && ascii_space(src_[p])) ++p;
    } else if (!plus && trim && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  size_t comment_end(size_t p, size_t start) const {
    size_t e = src_.find("#}", p);
    if (e == std::string::npos) error_at(start, "missing end of comment tag");
    bool minus = e > p && src_[e - 1] == '-', plus = e > p && src_[e - 1] == '+';
    return after_end(e + 2, minus, plus, true);
  }

  // {% raw %}: p is after "{%" and its sign; on success *after = the position after the tag.
  bool raw_begin(size_t p, size_t* after) const {
    size_t q = p;
    while (q < src_.size() && ascii_space(src_[q])) ++q;
    if (src_.compare(q, 3, "raw") != 0 || (q + 3 < src_.size() && name_char(src_[q + 3]))) return false;
    q += 3;
    while (q < src_.size() && ascii_space(src_[q])) ++q;
    if (src_.compare(q, 3, "-%}") == 0) {
      *after = after_end(q + 3, true, false, false);
      return true;
    }
    if (src_.compare(q, 2, "%}") == 0) {
      *after = q + 2;
      return true;
    }
    return false;
  }

  size_t raw_body(size_t p, size_t start) {
    for (size_t e = src_.find("{%", p); e != std::string::npos; e = src_.find("{%", e + 2)) {
      size_t q = e + 2;
      char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      while (q < src_.size() && ascii_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      while (q < src_.size() && ascii_space(src_[q])) ++q;
      bool minus = src_.compare(q, 3, "-%}") == 0, plus = src_.compare(q, 3, "+%}") == 0;
      if (!minus && !plus && src_.compare(q, 2, "%}") != 0) continue;
      std::string text = src_.substr(p, e - p);
      strip_before(&text, sign, true, false);
      if (!text.empty()) emit(Tok::Data, text, p);
      return after_end(q + (minus || plus ? 3 : 2), minus, plus, true);
    }
    error_at(start, "missing end of raw directive");
  }

  // Tokens of a {{ }} or {% %} tag up to its end; returns the position after it.
  size_t tag_tokens(size_t p, char kind, size_t start) {
    const std::string end = kind == '%' ? "%}" : "}}";
    std::vector<char> balance;
    size_t n = src_.size();
    while (true) {
      while (p < n && ascii_space(src_[p])) ++p;
      if (p >= n) error_at(start, std::string("unexpected end of template, expected '") + end + "'");
      if (balance.empty()) {
        bool minus = src_[p] == '-' && src_.compare(p + 1, 2, end) == 0;
        bool plus = kind == '%' && src_[p] == '+' && src_.compare(p + 1, 2, end) == 0;
        if (minus || plus || src_.compare(p, 2, end) == 0) {
          emit(kind == '%' ? Tok::BlockEnd : Tok::VarEnd, "", p);
          return after_end(p + (minus || plus ? 3 : 2), minus, plus, kind == '%');
        }
      }
      p = token(p, &balance);
    }
  }

  size_t token(size_t p, std::vector<char>* balance) {
    size_t n = src_.size();
    char c = src_[p];
    if (is_digit(c)) {
      auto digits = [&](size_t q) {
        while (q < n && (is_digit(src_[q]) || (src_[q] == '_' && q + 1 < n && is_digit(src_[q + 1])))) ++q;
        return q;
      };
      size_t q = digits(p);
      bool is_float = false;
      bool after_dot = p > 0 && src_[p - 1] == '.';
      if (!after_dot) {
        size_t r = q;
        if (r + 1 < n && src_[r] == '.' && is_digit(src_[r + 1])) r = digits(r + 1), is_float = true;
        if (r < n && (src_[r] == 'e' || src_[r] == 'E')) {
          size_t s = r + 1;
          if (s < n && (src_[s] == '+' || src_[s] == '-')) ++s;
          if (s < n && is_digit(src_[s])) r = digits(s), is_float = true;
        }
        if (is_float) q = r;
      }
      std::string text;
      for (size_t k = p; k < q; ++k)
        if (src_[k] != '_') text += src_[k];
      emit(is_float ? Tok::Float : Tok::Int, text, p);
      return q;
    }
    if (name_start(c)) {
      size_t q = p;
      while (q < n && name_char(src_[q])) ++q;
      emit(Tok::Name, src_.substr(p, q - p), p);
      return q;
    }
    if (c == '\'' || c == '"') {
      size_t q = p + 1;
      while (q < n && src_[q] != c) q += src_[q] == '\\' ? 2 : 1;
      if (q >= n) error_at(p, std::string("unexpected char '") + c + "' (unterminated string)");
      emit(Tok::String, decode_string(src_.substr(p + 1, q - p - 1)), p);
      return q + 1;
    }
    static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                       "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"};
    for (const char* op : kOps) {
      size_t len = std::char_traits<char>::length(op);
      if (src_.compare(p, len, op) != 0) continue;
      if (len == 1 && (c == '(' || c == '[' || c == '{')) balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      if (len == 1 && (c == ')' || c == ']' || c == '}')) {
        if (balance->empty()) error_at(p, std::string("unexpected '") + c + "'");
        if (balance->back() != c) error_at(p, std::string("unexpected '") + c + "', expected '" + balance->back() + "'");
        balance->pop_back();
      }
      emit(Tok::Op, op, p);
      return p + len;
    }
    error_at(p, std::string("unexpected char '") + c + "'");
  }

  std::string src_;
  std::vector<size_t> newlines_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const std::string& source) { return Lexer(source).run(); }

}  // namespace emlab::jinja
