// Jinja attribute and item access as transformers' ImmutableSandboxedEnvironment resolves them, and
// the methods of str, dict and list that templates call (message.content.strip(), d.get(k),
// d.items(), ...). Methods that modify a list or dict (append, pop, update, ...) are refused as the
// immutable sandbox refuses them.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "text/jinja_internal.h"

namespace emlab::jinja {

namespace {

bool in_set(const std::string& s, size_t pos, size_t len, const std::string* chars) {
  if (!chars) {
    size_t l;
    return is_space_at(s, pos, &l);
  }
  std::string c = s.substr(pos, len);
  auto offsets = utf8_offsets(*chars);
  for (size_t k = 0; k + 1 < offsets.size(); ++k)
    if (chars->compare(offsets[k], offsets[k + 1] - offsets[k], c) == 0) return true;
  return false;
}

size_t char_len_at(const std::string& s, size_t pos) {
  size_t n = 1;
  while (pos + n < s.size() && (static_cast<unsigned char>(s[pos + n]) & 0xC0) == 0x80) ++n;
  return n;
}

size_t char_start_before(const std::string& s, size_t end) {
  size_t k = end - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  return k;
}

int64_t codepoint_index(const std::string& s, size_t byte) {
  return static_cast<int64_t>(utf8_length(s.substr(0, byte)));
}

const std::string& str_arg(const CallArgs& a, size_t index, const std::string& name, const std::string& what) {
  const Value* v = a.get(index, name);
  if (!v || v->kind != Kind::Str) fail(what + " expects a string argument");
  return v->text.str;
}

int64_t int_arg(const CallArgs& a, size_t index, const std::string& name, int64_t fallback) {
  const Value* v = a.get(index, name);
  if (!v || v->kind == Kind::None) return fallback;
  if (v->kind != Kind::Int && v->kind != Kind::Bool) fail("'" + name + "' must be an integer");
  return v->kind == Kind::Bool ? v->b : v->i;
}

// startswith / endswith with a string or a tuple of strings.
bool affix_match(const std::string& s, const Value& arg, bool prefix) {
  auto one = [&](const Value& v) {
    if (v.kind != Kind::Str) fail(std::string(prefix ? "startswith" : "endswith") + " first arg must be str or a tuple of str");
    const std::string& p = v.text.str;
    if (p.size() > s.size()) return false;
    return prefix ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (arg.kind == Kind::List) {
    for (const auto& v : arg.list->items)
      if (one(v)) return true;
    return false;
  }
  return one(arg);
}

bool all_chars(const std::string& s, bool (*pred)(unsigned char)) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!pred(c)) return false;
  return true;
}

Value str_method(const Value& recv, const std::string& name, CallArgs& a) {
  const Text& t = recv.text;
  const std::string& s = t.str;
  const std::string what = "str." + name + "()";
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    a.check(what, 1, {});
    const Value* c = a.get(0, "");
    const std::string* chars = c && c->kind == Kind::Str ? &c->text.str : nullptr;
    Text out = text_strip(t, chars, name != "rstrip", name != "lstrip");
    out.safe = t.safe;
    return Value::string(std::move(out));
  }
  if (name == "split") {
    a.check(what, 2, {"sep", "maxsplit"});
    const Value* sep = a.get(0, "sep");
    const std::string* sp = sep && sep->kind == Kind::Str ? &sep->text.str : nullptr;
    std::vector<Value> items;
    for (auto& piece : text_split(t, sp, int_arg(a, 1, "maxsplit", -1))) items.push_back(Value::string(std::move(piece)));
    return Value::make_list(std::move(items));
  }
  if (name == "splitlines") {
    a.check(what, 1, {"keepends"});
    const Value* k = a.get(0, "keepends");
    std::vector<Value> items;
    for (auto& piece : text_splitlines(t, k && value_truthy(*k))) items.push_back(Value::string(std::move(piece)));
    return Value::make_list(std::move(items));
  }
  if (name == "startswith" || name == "endswith") {
    a.check(what, 1, {});
    const Value* p = a.get(0, "");
    if (!p) fail(what + " takes one argument");
    return Value::boolean(affix_match(s, *p, name == "startswith"));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    a.check(what, 0, {});
    if (name == "upper") return Value::string(ascii_upper(s));
    if (name == "lower") return Value::string(ascii_lower(s));
    return Value::string(name == "title" ? text_title(s) : text_capitalize(s));
  }
  if (name == "replace") {
    a.check(what, 3, {});
    return Value::string(text_replace(s, str_arg(a, 0, "", what), str_arg(a, 1, "", what), int_arg(a, 2, "", -1)));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    a.check(what, 1, {});
    const std::string& sub = str_arg(a, 0, "", what);
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    size_t p = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") fail("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(codepoint_index(s, p));
  }
  if (name == "join") {
    a.check(what, 1, {});
    const Value* items = a.get(0, "");
    if (!items) fail(what + " takes one argument");
    Text out;
    bool first = true;
    for (const auto& v : value_iterate(*items)) {
      if (v.kind != Kind::Str) fail("sequence item: expected str instance, " + kind_name(v) + " found");
      if (!first) out.append(t);
      out.append(v.text);
      first = false;
    }
    return Value::string(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    a.check(what, 1, {});
    const std::string& affix = str_arg(a, 0, "", what);
    bool prefix = name == "removeprefix";
    if (affix.empty() || !affix_match(s, Value::string(affix), prefix)) return recv;
    return Value::string(prefix ? t.slice(affix.size(), s.size()) : t.slice(0, s.size() - affix.size()));
  }
  if (name == "isdigit") return Value::boolean(all_chars(s, [](unsigned char c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha") return Value::boolean(all_chars(s, [](unsigned char c) { return std::isalpha(c) != 0 || c >= 0x80; }));
  if (name == "isalnum") return Value::boolean(all_chars(s, [](unsigned char c) { return std::isalnum(c) != 0 || c >= 0x80; }));
  if (name == "isspace") {
    bool all = !s.empty();
    for (size_t p = 0; p < s.size() && all;) {
      size_t len;
      all = is_space_at(s, p, &len);
      p += len;
    }
    return Value::boolean(all);
  }
  if (name == "islower" || name == "isupper") {
    bool cased = false, ok = true;
    for (unsigned char c : s) {
      if (std::isalpha(c)) cased = true;
      if (name == "islower" ? std::isupper(c) : std::islower(c)) ok = false;
    }
    return Value::boolean(cased && ok);
  }
  fail("'str' object has no attribute '" + name + "'");
}

const char* const kStrMethods[] = {"strip", "lstrip", "rstrip", "split", "splitlines", "startswith", "endswith",
                                   "upper", "lower", "title", "capitalize", "replace", "find", "rfind", "index",
                                   "rindex", "count", "join", "removeprefix", "removesuffix", "isdigit", "isalpha",
                                   "isalnum", "isspace", "islower", "isupper"};
const char* const kDictMethods[] = {"get", "items", "keys", "values", "copy"};
const char* const kDictUnsafe[] = {"update", "pop", "popitem", "setdefault", "clear"};
const char* const kListMethods[] = {"index", "count", "copy"};
const char* const kListUnsafe[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};

template <size_t N>
bool one_of(const char* const (&list)[N], const std::string& name) {
  return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

Value dict_method(const Value& recv, const std::string& name, CallArgs& a) {
  const auto& items = recv.dict->items;
  if (name == "get") {
    a.check("dict.get()", 2, {});
    const Value* key = a.get(0, "");
    if (!key) fail("dict.get() takes at least one argument");
    const Value* v = recv.dict->find(*key);
    if (v) return *v;
    const Value* d = a.get(1, "");
    return d ? *d : Value::none();
  }
  a.check("dict." + name + "()", 0, {});
  if (name == "copy") {
    Value out = Value::make_dict();
    out.dict->items = items;
    return out;
  }
  std::vector<Value> out;
  for (const auto& [k, v] : items) {
    if (name == "keys") out.push_back(k);
    else if (name == "values") out.push_back(v);
    else out.push_back(Value::make_list({k, v}, true));
  }
  return Value::make_list(std::move(out));
}

Value list_method(const Value& recv, const std::string& name, CallArgs& a) {
  if (name == "copy") return Value::make_list(recv.list->items, recv.list->tuple);
  a.check("list." + name + "()", 1, {});
  const Value* x = a.get(0, "");
  if (!x) fail("list." + name + "() takes exactly one argument");
  const auto& items = recv.list->items;
  if (name == "count") return Value::integer(std::count_if(items.begin(), items.end(), [&](const Value& v) { return value_equal(v, *x); }));
  for (size_t k = 0; k < items.size(); ++k)
    if (value_equal(items[k], *x)) return Value::integer(static_cast<int64_t>(k));
  fail(value_repr(*x) + " is not in list");
}

Value bound(const Value& recv, const std::string& name, Value (*method)(const Value&, const std::string&, CallArgs&)) {
  return Value::callable(name, [recv, name, method](Evaluator&, CallArgs& a) { return method(recv, name, a); });
}

Value unsafe(const std::string& name, const std::string& type) {
  return Value::callable(name, [name, type](Evaluator&, CallArgs&) -> Value {
    fail("access to attribute '" + name + "' of '" + type + "' object is unsafe (the sandbox is immutable)");
  });
}

Value missing(const Value& obj, const std::string& name) {
  return Value::undefined("'" + kind_name(obj) + " object' has no attribute '" + name + "'");
}

}  // namespace

Text text_strip(const Text& t, const std::string* chars, bool left, bool right) {
  const std::string& s = t.str;
  size_t b = 0, e = s.size();
  if (left)
    while (b < e) {
      size_t len = char_len_at(s, b);
      if (!in_set(s, b, len, chars)) break;
      b += len;
    }
  if (right)
    while (e > b) {
      size_t k = char_start_before(s, e);
      if (!in_set(s, k, e - k, chars)) break;
      e = k;
    }
  return t.slice(b, e);
}

std::vector<Text> text_split(const Text& t, const std::string* sep, int64_t maxsplit) {
  const std::string& s = t.str;
  std::vector<Text> out;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    size_t start = 0;
    for (size_t p = s.find(*sep); p != std::string::npos && (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit);
         p = s.find(*sep, start)) {
      out.push_back(t.slice(start, p));
      start = p + sep->size();
    }
    out.push_back(t.slice(start, s.size()));
    return out;
  }
  size_t p = 0, n = s.size();
  auto space = [&](size_t q, size_t* len) { return is_space_at(s, q, len); };
  while (p < n) {
    size_t len;
    while (p < n && space(p, &len)) p += len;
    if (p >= n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(t.slice(p, n));  // the rest, trailing whitespace included (as Python does)
      break;
    }
    size_t q = p;
    while (q < n && !space(q, &len)) q += char_len_at(s, q);
    out.push_back(t.slice(p, q));
    p = q;
  }
  return out;
}

std::vector<Text> text_splitlines(const Text& t, bool keepends) {
  const std::string& s = t.str;
  std::vector<Text> out;
  size_t start = 0, p = 0;
  while (p < s.size()) {
    size_t len = char_len_at(s, p);
    std::string c = s.substr(p, len);
    bool brk = c == "\n" || c == "\r" || c == "\v" || c == "\f" || c == "\x1c" || c == "\x1d" || c == "\x1e" ||
               c == "\xc2\x85" || c == "\xe2\x80\xa8" || c == "\xe2\x80\xa9";
    if (!brk) {
      p += len;
      continue;
    }
    size_t end = p + len;
    if (c == "\r" && end < s.size() && s[end] == '\n') ++end;
    out.push_back(t.slice(start, keepends ? end : p));
    start = p = end;
  }
  if (start < s.size()) out.push_back(t.slice(start, s.size()));
  return out;
}

std::string text_replace(const std::string& s, const std::string& old, const std::string& with, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {
    auto offsets = utf8_offsets(s);
    for (size_t k = 0; k + 1 < offsets.size(); ++k) {
      if (count < 0 || done < count) out += with, ++done;
      out.append(s, offsets[k], offsets[k + 1] - offsets[k]);
    }
    if (count < 0 || done < count) out += with;
    return out;
  }
  size_t start = 0;
  for (size_t p = s.find(old); p != std::string::npos && (count < 0 || done < count); p = s.find(old, start)) {
    out.append(s, start, p - start);
    out += with;
    start = p + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::string text_capitalize(const std::string& s) {
  std::string out = ascii_lower(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

std::string text_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(prev_cased ? std::tolower(u) : std::toupper(u));
      prev_cased = true;
    } else if (u >= 0x80) {
      prev_cased = true;  // non-ASCII text is left as it is and counted as a letter
    } else {
      prev_cased = false;
    }
  }
  return out;
}

std::string percent_format(const std::string& format, const std::vector<Value>& args) {
  std::string out;
  size_t next = 0;
  for (size_t k = 0; k < format.size(); ++k) {
    if (format[k] != '%') {
      out += format[k];
      continue;
    }
    size_t j = k + 1;
    std::string spec;
    while (j < format.size() && std::string("-+ #0.123456789").find(format[j]) != std::string::npos) spec += format[j++];
    if (j >= format.size()) fail("incomplete format");
    char conv = format[j];
    k = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) fail("not enough arguments for format string");
    const Value& v = args[next++];
    char buf[512];
    if (conv == 's' || conv == 'r') {
      std::string text = conv == 's' ? value_to_text(v).str : value_repr(v);
      std::snprintf(buf, sizeof buf, ("%" + spec + "s").c_str(), text.c_str());
      out += spec.empty() ? text : std::string(buf);
    } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      long long n = v.kind == Kind::Float ? static_cast<long long>(v.f) : static_cast<long long>(value_to_double(v));
      if (v.kind == Kind::Int) n = v.i;
      std::snprintf(buf, sizeof buf, ("%" + spec + "ll" + std::string(1, conv == 'i' ? 'd' : conv)).c_str(), n);
      out += buf;
    } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'E' || conv == 'g' || conv == 'G') {
      std::snprintf(buf, sizeof buf, ("%" + spec + std::string(1, conv)).c_str(), value_to_double(v));
      out += buf;
    } else {
      fail(std::string("unsupported format character '") + conv + "'");
    }
  }
  if (next < args.size()) fail("not all arguments converted during string formatting");
  return out;
}

Value attribute_get(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Kind::Dict:
      if (one_of(kDictMethods, name)) return bound(obj, name, dict_method);
      if (one_of(kDictUnsafe, name)) return unsafe(name, "dict");
      if (const Value* v = obj.dict->find(name)) return *v;
      return missing(obj, name);
    case Kind::Namespace:
      if (const Value* v = obj.dict->find(name)) return *v;
      return missing(obj, name);
    case Kind::Str:
      if (one_of(kStrMethods, name)) return bound(obj, name, str_method);
      return missing(obj, name);
    case Kind::List:
      if (one_of(kListMethods, name)) return bound(obj, name, list_method);
      if (!obj.list->tuple && one_of(kListUnsafe, name)) return unsafe(name, "list");
      return missing(obj, name);
    case Kind::Undefined: fail(obj.text.str);
    default: return missing(obj, name);
  }
}

Value item_get(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Kind::Dict:
      if (const Value* v = obj.dict->find(key)) return *v;
      break;
    case Kind::List:
    case Kind::Str:
      if (obj.kind == Kind::List && obj.list->generator) break;
      if (key.kind == Kind::Int || key.kind == Kind::Bool) {
        int64_t i = key.kind == Kind::Bool ? key.b : key.i;
        if (obj.kind == Kind::List) {
          int64_t n = static_cast<int64_t>(obj.list->items.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return obj.list->items[static_cast<size_t>(i)];
        } else {
          auto offsets = utf8_offsets(obj.text.str);
          int64_t n = static_cast<int64_t>(offsets.size()) - 1;
          if (i < 0) i += n;
          if (i >= 0 && i < n) return Value::string(obj.text.slice(offsets[i], offsets[i + 1]));
        }
        return Value::undefined("'" + kind_name(obj) + " object' has no element " + std::to_string(key.kind == Kind::Bool ? key.b : key.i));
      }
      break;
    case Kind::Undefined: fail(obj.text.str);
    default: break;
  }
  if (key.kind == Kind::Str) return attribute_get(obj, key.text.str);
  return Value::undefined("'" + kind_name(obj) + " object' has no element " + value_repr(key));
}

}  // namespace emlab::jinja
