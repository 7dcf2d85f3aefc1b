// Jinja values: traced text, Python's conversions (str, repr, json.dumps), equality, ordering,
// membership and iteration.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "text/jinja_internal.h"

namespace emlab::jinja {

void fail(const std::string& message) { throw Failure(message); }

// ---------------------------------------------------------------------------------------------
// Text

void Text::append(const Text& t) {
  size_t base = str.size();
  str += t.str;
  for (const Span& s : t.spans) spans.push_back({s.tag, s.begin + base, s.end + base});
}

Text Text::slice(size_t b, size_t e) const {
  Text out(str.substr(b, e - b));
  for (const Span& s : spans) {
    size_t lo = std::max(s.begin, b), hi = std::min(s.end, e);
    // An empty slice of a traced string (" \n"|trim) stays traced, as an empty span.
    bool keep = lo < hi || (s.begin == s.end && s.begin >= b && s.begin <= e) || (b == e && s.begin <= b && b <= s.end);
    if (keep) out.spans.push_back({s.tag, lo - b, std::max(lo, hi) - b});
  }
  out.safe = safe;
  return out;
}

// ---------------------------------------------------------------------------------------------
// UTF-8

std::vector<size_t> utf8_offsets(const std::string& s) {
  std::vector<size_t> out;
  out.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  out.push_back(s.size());
  return out;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

namespace {

// Decodes the code point at pos; *len = its byte length (1 for a stray byte).
uint32_t decode_at(const std::string& s, size_t pos, size_t* len) {
  unsigned char c = static_cast<unsigned char>(s[pos]);
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (pos + n > s.size()) n = 1;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  *len = static_cast<size_t>(n);
  return cp;
}

bool python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Python's str.isprintable() for one code point, up to the unassigned ones (printed as is).
bool python_printable(uint32_t c) {
  if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0xA0) || c == 0xAD) return false;
  if (c == 0x20) return true;
  if (python_space(c)) return false;
  if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x180E) return false;
  if ((c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x206F)) return false;
  if ((c >= 0xD800 && c <= 0xF8FF) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) return false;
  if (c >= 0xE0000) return false;
  return true;
}

}  // namespace

bool is_space_at(const std::string& s, size_t pos, size_t* len) {
  return python_space(decode_at(s, pos, len));
}

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string ascii_upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\'': out += "&#39;"; break;
      case '"': out += "&#34;"; break;
      default: out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Construction

Value Value::undefined(const std::string& hint) {
  Value v;
  v.text.str = hint;
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind = Kind::Bool;
  v.b = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind = Kind::Int;
  v.i = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.kind = Kind::Float;
  v.f = f;
  return v;
}
Value Value::string(std::string s) { return string(Text(std::move(s))); }
Value Value::string(Text t) {
  Value v;
  v.kind = Kind::Str;
  v.text = std::move(t);
  return v;
}
Value Value::make_list(std::vector<Value> items, bool tuple) {
  Value v;
  v.kind = Kind::List;
  v.list = std::make_shared<ListData>();
  v.list->items = std::move(items);
  v.list->tuple = tuple;
  return v;
}
Value Value::make_dict() {
  Value v;
  v.kind = Kind::Dict;
  v.dict = std::make_shared<DictData>();
  return v;
}
Value Value::make_namespace() {
  Value v = make_dict();
  v.kind = Kind::Namespace;
  return v;
}
Value Value::callable(std::string name, Builtin call) {
  Value v;
  v.kind = Kind::Callable;
  v.fn = std::make_shared<Function>(Function{std::move(name), std::move(call)});
  return v;
}

const Value* DictData::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (value_equal(k, key)) return &v;
  return nullptr;
}

const Value* DictData::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k.kind == Kind::Str && k.text.str == key) return &v;
  return nullptr;
}

void DictData::set(const Value& key, Value value) {
  for (auto& [k, v] : items)
    if (value_equal(k, key)) {
      v = std::move(value);
      return;
    }
  items.emplace_back(key, std::move(value));
}

const Value* CallArgs::get(size_t index, const std::string& name) const {
  if (index < args.size()) return &args[index];
  for (const auto& [k, v] : kwargs)
    if (k == name) return &v;
  return nullptr;
}

void CallArgs::check(const std::string& what, size_t n, const std::vector<std::string>& names) const {
  if (args.size() > n)
    fail(what + " takes at most " + std::to_string(n) + " argument" + (n == 1 ? "" : "s") + " (" +
         std::to_string(args.size()) + " given)");
  for (const auto& kv : kwargs)
    if (std::find(names.begin(), names.end(), kv.first) == names.end())
      fail(what + " got an unexpected keyword argument '" + kv.first + "'");
}

Value value_from_json(const nlohmann::ordered_json& j, const std::string& pointer,
                      const std::map<std::string, int>& traced) {
  using T = nlohmann::json::value_t;
  bool trace = !traced.empty();
  switch (j.type()) {
    case T::null: return Value::none();
    case T::boolean: return Value::boolean(j.get<bool>());
    case T::number_integer:
    case T::number_unsigned: return Value::integer(j.get<int64_t>());
    case T::number_float: return Value::number(j.get<double>());
    case T::string: {
      Text t(j.get<std::string>());
      if (trace) {
        auto it = traced.find(pointer);
        if (it != traced.end()) t.spans.push_back({it->second, 0, t.str.size()});
      }
      return Value::string(std::move(t));
    }
    case T::array: {
      Value v = Value::make_list();
      for (size_t k = 0; k < j.size(); ++k)
        v.list->items.push_back(value_from_json(j[k], trace ? pointer + "/" + std::to_string(k) : "", traced));
      return v;
    }
    case T::object: {
      Value v = Value::make_dict();
      for (const auto& [key, item] : j.items()) {
        std::string p;
        if (trace) {
          p = pointer + "/";
          for (char c : key) p += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
        }
        v.dict->items.emplace_back(Value::string(key), value_from_json(item, p, traced));
      }
      return v;
    }
    default: fail("unsupported JSON value (binary)");
  }
}

// ---------------------------------------------------------------------------------------------
// Conversions

bool value_truthy(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return v.b;
    case Kind::Int: return v.i != 0;
    case Kind::Float: return v.f != 0;
    case Kind::Str: return !v.text.str.empty();
    case Kind::List: return v.list->generator || !v.list->items.empty();
    case Kind::Dict: return !v.dict->items.empty();
    default: return true;
  }
}

double value_to_double(const Value& v) {
  if (v.kind == Kind::Int) return static_cast<double>(v.i);
  if (v.kind == Kind::Float) return v.f;
  if (v.kind == Kind::Bool) return v.b ? 1 : 0;
  fail("expected a number, got " + kind_name(v));
}

std::string kind_name(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::List: return v.list->generator ? "generator" : v.list->tuple ? "tuple" : "list";
    case Kind::Dict: return "dict";
    case Kind::Namespace: return "Namespace";
    case Kind::Callable: return "function";
  }
  return "object";
}

std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  std::string s(buf), sign;
  if (s[0] == '-') sign = "-", s = s.substr(1);
  size_t e = s.find('e');
  int exp10 = std::atoi(s.c_str() + e + 1);
  std::string digits;
  for (size_t k = 0; k < e; ++k)
    if (s[k] != '.') digits += s[k];
  if (exp10 >= -4 && exp10 < 16) {
    std::string out;
    if (exp10 >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp10 + 1));
      ip.append(exp10 + 1 - ip.size(), '0');
      std::string fp = digits.size() > static_cast<size_t>(exp10 + 1) ? digits.substr(exp10 + 1) : "0";
      out = ip + "." + fp;
    } else {
      out = "0." + std::string(-exp10 - 1, '0') + digits;
    }
    return sign + out;
  }
  std::string mant = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
  char ebuf[16];
  std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
  return sign + mant + ebuf;
}

namespace {

std::string string_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos, has_double = s.find('"') != std::string::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t pos = 0; pos < s.size();) {
    size_t len;
    uint32_t c = decode_at(s, pos, &len);
    char buf[16];
    if (c == static_cast<uint32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (!python_printable(c)) {
      if (c < 0x100)
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
      else if (c < 0x10000)
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", c);
      out += buf;
    } else {
      out.append(s, pos, len);
    }
    pos += len;
  }
  out += quote;
  return out;
}

}  // namespace

std::string value_repr(const Value& v) {
  switch (v.kind) {
    case Kind::Str: return string_repr(v.text.str);
    case Kind::Undefined: return "Undefined";
    default: return value_to_text(v).str;
  }
}

Text value_to_text(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return Text();
    case Kind::None: return Text("None");
    case Kind::Bool: return Text(v.b ? "True" : "False");
    case Kind::Int: return Text(std::to_string(v.i));
    case Kind::Float: return Text(float_repr(v.f));
    case Kind::Str: return v.text;
    case Kind::List: {
      const auto& items = v.list->items;
      if (v.list->generator) return Text("<generator object>");
      std::string s = v.list->tuple ? "(" : "[";
      for (size_t k = 0; k < items.size(); ++k) s += (k ? ", " : "") + value_repr(items[k]);
      if (v.list->tuple && items.size() == 1) s += ",";
      s += v.list->tuple ? ")" : "]";
      return Text(s);
    }
    case Kind::Dict:
    case Kind::Namespace: {
      std::string s = "{";
      bool first = true;
      for (const auto& [k, item] : v.dict->items) {
        s += (first ? "" : ", ") + value_repr(k) + ": " + value_repr(item);
        first = false;
      }
      s += "}";
      return Text(v.kind == Kind::Namespace ? "<Namespace " + s + ">" : s);
    }
    case Kind::Callable: return Text("<function " + v.fn->name + ">");
  }
  return Text();
}

namespace {

void json_string(const std::string& s, std::string* out) {
  *out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          *out += ch;
        }
    }
  }
  *out += '"';
}

struct JsonWriter {
  int indent;
  std::string item_sep, key_sep;
  bool sort_keys;

  void newline(int level, std::string* out) const {
    *out += '\n';
    out->append(static_cast<size_t>(indent) * level, ' ');
  }

  std::string key_of(const Value& k) const {
    switch (k.kind) {
      case Kind::Str: return k.text.str;
      case Kind::Int: return std::to_string(k.i);
      case Kind::Float: return float_repr(k.f);
      case Kind::Bool: return k.b ? "true" : "false";
      case Kind::None: return "null";
      default: fail("keys must be str, int, float, bool or None, not " + kind_name(k));
    }
  }

  void write(const Value& v, int level, std::string* out) const {
    switch (v.kind) {
      case Kind::None: *out += "null"; return;
      case Kind::Bool: *out += v.b ? "true" : "false"; return;
      case Kind::Int: *out += std::to_string(v.i); return;
      case Kind::Float:
        if (std::isnan(v.f)) *out += "NaN";
        else if (std::isinf(v.f)) *out += v.f > 0 ? "Infinity" : "-Infinity";
        else *out += float_repr(v.f);
        return;
      case Kind::Str: json_string(v.text.str, out); return;
      case Kind::List: {
        const auto& items = v.list->items;
        if (v.list->generator) fail("Object of type generator is not JSON serializable");
        if (items.empty()) {
          *out += "[]";
          return;
        }
        *out += '[';
        for (size_t k = 0; k < items.size(); ++k) {
          if (k) *out += item_sep;
          if (indent >= 0) newline(level + 1, out);
          write(items[k], level + 1, out);
        }
        if (indent >= 0) newline(level, out);
        *out += ']';
        return;
      }
      case Kind::Dict: {
        std::vector<std::pair<std::string, const Value*>> items;
        for (const auto& [k, item] : v.dict->items) items.emplace_back(key_of(k), &item);
        if (sort_keys)
          std::stable_sort(items.begin(), items.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
        if (items.empty()) {
          *out += "{}";
          return;
        }
        *out += '{';
        for (size_t k = 0; k < items.size(); ++k) {
          if (k) *out += item_sep;
          if (indent >= 0) newline(level + 1, out);
          json_string(items[k].first, out);
          *out += key_sep;
          write(*items[k].second, level + 1, out);
        }
        if (indent >= 0) newline(level, out);
        *out += '}';
        return;
      }
      default: fail("Object of type " + kind_name(v) + " is not JSON serializable");
    }
  }
};

}  // namespace

std::string value_to_json(const Value& v, int indent, const std::string& item_sep, const std::string& key_sep,
                          bool sort_keys) {
  std::string out;
  JsonWriter{indent, item_sep, key_sep, sort_keys}.write(v, 0, &out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Comparison, membership, iteration

bool value_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) return value_to_double(a) == value_to_double(b);
    return (a.kind == Kind::Bool ? a.b : a.i) == (b.kind == Kind::Bool ? b.b : b.i);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::Str: return a.text.str == b.text.str;
    case Kind::List: {
      if (a.list == b.list) return true;
      if (a.list->tuple != b.list->tuple || a.list->items.size() != b.list->items.size()) return false;
      for (size_t k = 0; k < a.list->items.size(); ++k)
        if (!value_equal(a.list->items[k], b.list->items[k])) return false;
      return true;
    }
    case Kind::Dict: {
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* other = b.dict->find(k);
        if (!other || !value_equal(v, *other)) return false;
      }
      return true;
    }
    case Kind::Namespace: return a.dict == b.dict;
    case Kind::Callable: return a.fn == b.fn;
    default: return false;
  }
}

int value_compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    double x = value_to_double(a), y = value_to_double(b);
    if (a.kind != Kind::Float && b.kind != Kind::Float) {
      int64_t p = a.kind == Kind::Bool ? a.b : a.i, q = b.kind == Kind::Bool ? b.b : b.i;
      return p < q ? -1 : p > q ? 1 : 0;
    }
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind == Kind::Str && b.kind == Kind::Str) return a.text.str.compare(b.text.str) < 0 ? -1 : a.text.str == b.text.str ? 0 : 1;
  if (a.kind == Kind::List && b.kind == Kind::List && a.list->tuple == b.list->tuple) {
    const auto &x = a.list->items, &y = b.list->items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (value_equal(x[k], y[k])) continue;
      return value_compare(x[k], y[k]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  fail("'<' not supported between instances of '" + kind_name(a) + "' and '" + kind_name(b) + "'");
}

bool value_contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::Str:
      if (item.kind != Kind::Str) fail("'in <string>' requires string as left operand, not " + kind_name(item));
      return container.text.str.find(item.text.str) != std::string::npos;
    case Kind::List:
      for (const auto& v : container.list->items)
        if (value_equal(v, item)) return true;
      return false;
    case Kind::Dict: return container.dict->find(item) != nullptr;
    case Kind::Undefined: return false;
    default: fail("argument of type '" + kind_name(container) + "' is not iterable");
  }
}

std::vector<Value> value_iterate(const Value& v) {
  switch (v.kind) {
    case Kind::List: return v.list->items;
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& kv : v.dict->items) keys.push_back(kv.first);
      return keys;
    }
    case Kind::Str: {
      std::vector<Value> chars;
      auto offsets = utf8_offsets(v.text.str);
      for (size_t k = 0; k + 1 < offsets.size(); ++k) chars.push_back(Value::string(v.text.slice(offsets[k], offsets[k + 1])));
      return chars;
    }
    case Kind::Undefined: return {};
    default: fail("'" + kind_name(v) + "' object is not iterable");
  }
}

size_t value_length(const Value& v) {
  switch (v.kind) {
    case Kind::Str: return utf8_length(v.text.str);
    case Kind::List:
      if (v.list->generator) fail("object of type 'generator' has no len()");
      return v.list->items.size();
    case Kind::Dict:
    case Kind::Namespace: return v.dict->items.size();
    case Kind::Undefined: return 0;
    default: fail("object of type '" + kind_name(v) + "' has no len()");
  }
}

}  // namespace emlab::jinja
