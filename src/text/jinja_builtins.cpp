// Jinja's builtin filters and tests, and the globals transformers adds (raise_exception,
// strftime_now, namespace, dict) next to Jinja's range. Each follows Jinja2 3.1 with autoescape
// off, and tojson is transformers' (json.dumps with ensure_ascii=False).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

#include "text/jinja_internal.h"

namespace emlab::jinja {

namespace {

using FilterFn = Value (*)(Evaluator&, Value&, CallArgs&);
using TestFn = bool (*)(Evaluator&, const Value&, CallArgs&);

const Value* opt(const CallArgs& a, size_t index, const std::string& name) { return a.get(index, name); }

bool opt_bool(const CallArgs& a, size_t index, const std::string& name, bool fallback) {
  const Value* v = a.get(index, name);
  return v ? value_truthy(*v) : fallback;
}

Value need(const CallArgs& a, size_t index, const std::string& name, const std::string& what) {
  const Value* v = a.get(index, name);
  if (!v) fail(what + " needs the argument '" + name + "'");
  return *v;
}

Text as_text(const Value& v) { return value_to_text(v); }

// Jinja's attribute getter: "a.b.0" looks up a, then b, then item 0 (environment.getitem).
Value get_path(const Value& item, const Value& attribute) {
  if (attribute.kind != Kind::Str) return item_get(item, attribute);
  Value cur = item;
  const std::string& path = attribute.text.str;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = cur.is_undefined() ? cur : item_get(cur, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sort / unique key: strings lowered unless case_sensitive.
Value fold_case(const Value& v, bool case_sensitive) {
  return v.kind == Kind::Str && !case_sensitive ? Value::string(ascii_lower(v.text.str)) : v;
}

// --- filters -------------------------------------------------------------------------------------

Value f_abs(Evaluator&, Value& v, CallArgs&) {
  if (v.kind == Kind::Int) return Value::integer(v.i < 0 ? -v.i : v.i);
  return Value::number(std::fabs(value_to_double(v)));
}

Value f_attr(Evaluator&, Value& v, CallArgs& a) {
  Value name = need(a, 0, "name", "attr");
  return v.is_undefined() ? v : attribute_get(v, value_to_text(name).str);
}

Value f_capitalize(Evaluator&, Value& v, CallArgs&) { return Value::string(text_capitalize(as_text(v).str)); }

Value f_default(Evaluator&, Value& v, CallArgs& a) {
  a.check("default", 2, {"default_value", "boolean"});
  const Value* d = opt(a, 0, "default_value");
  bool boolean = opt_bool(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !value_truthy(v))) return d ? *d : Value::string("");
  return v;
}

Value f_dictsort(Evaluator&, Value& v, CallArgs& a) {
  if (v.kind != Kind::Dict) fail("dictsort: expected a mapping, got " + kind_name(v));
  bool cs = opt_bool(a, 0, "case_sensitive", false);
  const Value* by = opt(a, 1, "by");
  bool by_value = by && by->kind == Kind::Str && by->text.str == "value";
  bool reverse = opt_bool(a, 2, "reverse", false);
  std::vector<Value> pairs;
  for (const auto& [k, x] : v.dict->items) pairs.push_back(Value::make_list({k, x}, true));
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& p, const Value& q) {
    int c = value_compare(fold_case(p.list->items[by_value], cs), fold_case(q.list->items[by_value], cs));
    return reverse ? c > 0 : c < 0;
  });
  return Value::make_list(std::move(pairs));
}

Value f_escape(Evaluator&, Value& v, CallArgs&) {
  if (v.kind == Kind::Str && v.text.safe) return v;
  Text t(html_escape(as_text(v).str));
  t.safe = true;
  return Value::string(std::move(t));
}

Value f_first(Evaluator&, Value& v, CallArgs&) {
  auto items = value_iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value generator(std::vector<Value> items) {
  Value v = Value::make_list(std::move(items));
  v.list->generator = true;
  return v;
}

Value f_last(Evaluator&, Value& v, CallArgs&) {
  if (v.kind == Kind::List && v.list->generator) fail("'generator' object is not reversible");
  auto items = value_iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_float(Evaluator&, Value& v, CallArgs& a) {
  const Value* d = opt(a, 0, "default");
  if (v.is_number()) return Value::number(value_to_double(v));
  if (v.kind == Kind::Str) {
    try {
      size_t used = 0;
      std::string s = text_strip(v.text, nullptr, true, true).str;
      double x = std::stod(s, &used);
      if (used == s.size()) return Value::number(x);
    } catch (const std::exception&) {
    }
  }
  return d ? *d : Value::number(0.0);
}

Value f_int(Evaluator&, Value& v, CallArgs& a) {
  const Value* d = opt(a, 0, "default");
  int64_t base = 10;
  if (const Value* b = opt(a, 1, "base")) base = b->kind == Kind::Int ? b->i : 10;
  if (v.kind == Kind::Int) return v;
  if (v.kind == Kind::Bool) return Value::integer(v.b);
  if (v.kind == Kind::Float) return Value::integer(static_cast<int64_t>(v.f));
  if (v.kind == Kind::Str) {
    std::string s;
    for (char c : text_strip(v.text, nullptr, true, true).str)
      if (c != '_') s += c;
    try {
      size_t used = 0;
      long long x = std::stoll(s, &used, static_cast<int>(base));
      if (used == s.size() && !s.empty()) return Value::integer(x);
      double f = std::stod(s, &used);
      if (used == s.size()) return Value::integer(static_cast<int64_t>(f));
    } catch (const std::exception&) {
    }
  }
  return d ? *d : Value::integer(0);
}

Value f_indent(Evaluator&, Value& v, CallArgs& a) {
  a.check("indent", 3, {"width", "first", "blank"});
  std::string unit = "    ";
  if (const Value* w = opt(a, 0, "width")) unit = w->kind == Kind::Str ? w->text.str : std::string(static_cast<size_t>(std::max<int64_t>(0, w->i)), ' ');
  bool first = opt_bool(a, 1, "first", false), blank = opt_bool(a, 2, "blank", false);
  Text s = as_text(v);
  s.append(std::string_view("\n"));
  std::vector<Text> lines = text_splitlines(s, false);
  Text out;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k) out.append(std::string_view("\n"));
    if ((k > 0 || first) && (blank || !lines[k].str.empty())) out.append(std::string_view(unit));
    out.append(lines[k]);
  }
  if (lines.empty() && first) out.append(std::string_view(unit));
  out.safe = v.kind == Kind::Str && v.text.safe;
  return Value::string(std::move(out));
}

Value f_items(Evaluator&, Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::make_list();
  if (v.kind != Kind::Dict) fail("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.dict->items) out.push_back(Value::make_list({k, x}, true));
  return Value::make_list(std::move(out));
}

Value f_join(Evaluator&, Value& v, CallArgs& a) {
  a.check("join", 2, {"d", "attribute"});
  Text sep = opt(a, 0, "d") ? as_text(*opt(a, 0, "d")) : Text();
  const Value* attribute = opt(a, 1, "attribute");
  Text out;
  bool first = true;
  for (const auto& item : value_iterate(v)) {
    if (!first) out.append(sep);
    out.append(as_text(attribute ? get_path(item, *attribute) : item));
    first = false;
  }
  return Value::string(std::move(out));
}

Value f_length(Evaluator&, Value& v, CallArgs&) { return Value::integer(static_cast<int64_t>(value_length(v))); }
Value f_list(Evaluator&, Value& v, CallArgs&) { return Value::make_list(value_iterate(v)); }
Value f_lower(Evaluator&, Value& v, CallArgs&) { return Value::string(ascii_lower(as_text(v).str)); }
Value f_upper(Evaluator&, Value& v, CallArgs&) { return Value::string(ascii_upper(as_text(v).str)); }

// map, select, reject, selectattr, rejectattr and unique are generators in Jinja: a false input
// (None, "", []) gives an empty one.
Value f_map(Evaluator& ev, Value& v, CallArgs& a) {
  std::vector<Value> out;
  if (!value_truthy(v)) return generator({});
  if (a.args.empty() && a.get(99, "attribute")) {
    Value attribute = *a.get(99, "attribute");
    const Value* d = a.get(99, "default");
    for (const auto& item : value_iterate(v)) {
      Value x = get_path(item, attribute);
      out.push_back(x.is_undefined() && d && d->kind != Kind::None ? *d : x);
    }
    return generator(std::move(out));
  }
  if (a.args.empty()) fail("map requires a filter argument");
  std::string name = value_to_text(a.args[0]).str;
  if (!filter_exists(name)) fail("no filter named '" + name + "'");
  for (const auto& item : value_iterate(v)) {
    CallArgs rest{std::vector<Value>(a.args.begin() + 1, a.args.end()), a.kwargs};
    out.push_back(filter_apply(ev, name, item, rest));
  }
  return generator(std::move(out));
}

Value min_max(Value& v, CallArgs& a, bool want_max) {
  bool cs = opt_bool(a, 0, "case_sensitive", false);
  const Value* attribute = opt(a, 1, "attribute");
  auto items = value_iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  size_t best = 0;
  for (size_t k = 1; k < items.size(); ++k) {
    Value x = fold_case(attribute ? get_path(items[k], *attribute) : items[k], cs);
    Value y = fold_case(attribute ? get_path(items[best], *attribute) : items[best], cs);
    int c = value_compare(x, y);
    if (want_max ? c > 0 : c < 0) best = k;
  }
  return items[best];
}
Value f_max(Evaluator&, Value& v, CallArgs& a) { return min_max(v, a, true); }
Value f_min(Evaluator&, Value& v, CallArgs& a) { return min_max(v, a, false); }

Value select_reject(Evaluator& ev, Value& v, CallArgs& a, bool attr, bool keep_if) {
  size_t off = attr ? 1 : 0;
  if (attr && a.args.empty()) fail("Missing parameter for attribute name");
  std::vector<Value> out;
  if (!value_truthy(v)) return generator({});
  for (const auto& item : value_iterate(v)) {
    Value x = attr ? get_path(item, a.args[0]) : item;
    bool r;
    if (a.args.size() > off) {
      std::string name = value_to_text(a.args[off]).str;
      if (!test_exists(name)) fail("no test named '" + name + "'");
      CallArgs rest{std::vector<Value>(a.args.begin() + static_cast<long>(off) + 1, a.args.end()), a.kwargs};
      r = test_apply(ev, name, x, rest);
    } else {
      r = value_truthy(x);
    }
    if (r == keep_if) out.push_back(item);
  }
  return generator(std::move(out));
}
Value f_select(Evaluator& ev, Value& v, CallArgs& a) { return select_reject(ev, v, a, false, true); }
Value f_reject(Evaluator& ev, Value& v, CallArgs& a) { return select_reject(ev, v, a, false, false); }
Value f_selectattr(Evaluator& ev, Value& v, CallArgs& a) { return select_reject(ev, v, a, true, true); }
Value f_rejectattr(Evaluator& ev, Value& v, CallArgs& a) { return select_reject(ev, v, a, true, false); }

Value f_replace(Evaluator&, Value& v, CallArgs& a) {
  a.check("replace", 3, {"old", "new", "count"});
  std::string old = as_text(need(a, 0, "old", "replace")).str, with = as_text(need(a, 1, "new", "replace")).str;
  const Value* count = opt(a, 2, "count");
  return Value::string(text_replace(as_text(v).str, old, with, count && count->kind == Kind::Int ? count->i : -1));
}

Value f_reverse(Evaluator&, Value& v, CallArgs&) {
  if (v.kind == Kind::Str) {
    auto offsets = utf8_offsets(v.text.str);
    std::string out;
    for (size_t k = offsets.size() - 1; k > 0; --k) out.append(v.text.str, offsets[k - 1], offsets[k] - offsets[k - 1]);
    return Value::string(out);
  }
  auto items = value_iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}

Value f_round(Evaluator&, Value& v, CallArgs& a) {
  int64_t precision = 0;
  if (const Value* p = opt(a, 0, "precision")) precision = p->i;
  std::string method = opt(a, 1, "method") ? as_text(*opt(a, 1, "method")).str : "common";
  double x = value_to_double(v), scale = std::pow(10.0, static_cast<double>(precision));
  double r = method == "ceil" ? std::ceil(x * scale) : method == "floor" ? std::floor(x * scale) : std::nearbyint(x * scale);
  return Value::number(r / scale);
}

Value f_safe(Evaluator&, Value& v, CallArgs&) {
  Text t = as_text(v);
  t.safe = true;
  return Value::string(std::move(t));
}

Value f_sort(Evaluator&, Value& v, CallArgs& a) {
  bool reverse = opt_bool(a, 0, "reverse", false), cs = opt_bool(a, 1, "case_sensitive", false);
  const Value* attribute = opt(a, 2, "attribute");
  auto items = value_iterate(v);
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    int c = value_compare(fold_case(attribute ? get_path(x, *attribute) : x, cs),
                          fold_case(attribute ? get_path(y, *attribute) : y, cs));
    return reverse ? c > 0 : c < 0;
  });
  return Value::make_list(std::move(items));
}

Value f_string(Evaluator&, Value& v, CallArgs&) { return Value::string(as_text(v)); }

Value f_sum(Evaluator&, Value& v, CallArgs& a) {
  const Value* attribute = opt(a, 0, "attribute");
  const Value* start = opt(a, 1, "start");
  bool is_float = start && start->kind == Kind::Float;
  double f = start ? value_to_double(*start) : 0;
  int64_t i = start && start->kind == Kind::Int ? start->i : 0;
  for (const auto& item : value_iterate(v)) {
    Value x = attribute ? get_path(item, *attribute) : item;
    if (x.kind == Kind::Float) is_float = true;
    f += value_to_double(x);
    if (x.kind != Kind::Float) i += x.kind == Kind::Bool ? x.b : x.i;
  }
  return is_float ? Value::number(f) : Value::integer(i);
}

// Jinja's title: words start after runs of "-", whitespace, "(", "{", "[", "<".
Value f_title(Evaluator&, Value& v, CallArgs&) {
  std::string s = as_text(v).str, out;
  bool start = true;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || std::isspace(u);
    if (sep) out += c;
    else out += static_cast<char>(start ? std::toupper(u) : std::tolower(u));
    start = sep;
  }
  return Value::string(out);
}

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value f_tojson(Evaluator&, Value& v, CallArgs& a) {
  a.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  bool ensure_ascii = opt_bool(a, 0, "ensure_ascii", false);
  int indent = -1;
  if (const Value* ind = opt(a, 1, "indent"))
    if (ind->kind != Kind::None) indent = static_cast<int>(ind->kind == Kind::Int ? ind->i : 0);
  std::string item_sep = indent >= 0 ? "," : ", ", key_sep = ": ";
  if (const Value* sep = opt(a, 2, "separators"); sep && sep->kind == Kind::List && sep->list->items.size() == 2) {
    item_sep = as_text(sep->list->items[0]).str;
    key_sep = as_text(sep->list->items[1]).str;
  }
  std::string json = value_to_json(v, indent, item_sep, key_sep, opt_bool(a, 3, "sort_keys", false));
  if (!ensure_ascii) return Value::string(json);
  std::string out;
  auto offsets = utf8_offsets(json);
  for (size_t k = 0; k + 1 < offsets.size(); ++k) {
    size_t b = offsets[k], len = offsets[k + 1] - b;
    if (len == 1) {
      out += json[b];
      continue;
    }
    uint32_t cp = static_cast<unsigned char>(json[b]) & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t j = 1; j < len; ++j) cp = (cp << 6) | (static_cast<unsigned char>(json[b + j]) & 0x3F);
    char buf[16];
    if (cp >= 0x10000) {
      cp -= 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
    } else {
      std::snprintf(buf, sizeof buf, "\\u%04x", cp);
    }
    out += buf;
  }
  return Value::string(out);
}

Value f_trim(Evaluator&, Value& v, CallArgs& a) {
  a.check("trim", 1, {"chars"});
  const Value* chars = opt(a, 0, "chars");
  Text t = as_text(v);
  Text out = text_strip(t, chars && chars->kind == Kind::Str ? &chars->text.str : nullptr, true, true);
  out.safe = t.safe;
  return Value::string(std::move(out));
}

Value f_unique(Evaluator&, Value& v, CallArgs& a) {
  bool cs = opt_bool(a, 0, "case_sensitive", false);
  const Value* attribute = opt(a, 1, "attribute");
  std::vector<Value> out, seen;
  for (const auto& item : value_iterate(v)) {
    Value key = fold_case(attribute ? get_path(item, *attribute) : item, cs);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return value_equal(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return generator(std::move(out));
}

Value f_wordcount(Evaluator&, Value& v, CallArgs&) {
  std::string s = as_text(v).str;
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    bool w = std::isalnum(c) || c == '_' || c >= 0x80;
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Value f_format(Evaluator&, Value& v, CallArgs& a) {
  if (!a.kwargs.empty()) fail("format: keyword arguments are not supported");
  return Value::string(percent_format(as_text(v).str, a.args));
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> table = {
      {"abs", f_abs},         {"attr", f_attr},       {"capitalize", f_capitalize}, {"count", f_length},
      {"d", f_default},       {"default", f_default}, {"dictsort", f_dictsort},     {"e", f_escape},
      {"escape", f_escape},   {"first", f_first},     {"float", f_float},           {"format", f_format},
      {"indent", f_indent},   {"int", f_int},         {"items", f_items},           {"join", f_join},
      {"last", f_last},       {"length", f_length},   {"list", f_list},             {"lower", f_lower},
      {"map", f_map},         {"max", f_max},         {"min", f_min},               {"reject", f_reject},
      {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round},
      {"safe", f_safe},       {"select", f_select},   {"selectattr", f_selectattr}, {"sort", f_sort},
      {"string", f_string},   {"sum", f_sum},         {"title", f_title},           {"tojson", f_tojson},
      {"trim", f_trim},       {"unique", f_unique},   {"upper", f_upper},           {"wordcount", f_wordcount},
  };
  return table;
}

// --- tests ---------------------------------------------------------------------------------------

Value arg0(const CallArgs& a, const std::string& test) { return need(a, 0, "value", "test '" + test + "'"); }

bool t_defined(Evaluator&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Evaluator&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::None; }
bool t_boolean(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Bool; }
bool t_false(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Bool && !v.b; }
bool t_true(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Bool && v.b; }
bool t_integer(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Int; }
bool t_float(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Float; }
bool t_number(Evaluator&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Str; }
bool t_mapping(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Dict; }
bool t_iterable(Evaluator&, const Value& v, CallArgs&) {
  return v.kind == Kind::Str || v.kind == Kind::List || v.kind == Kind::Dict || v.is_undefined();
}
bool t_sequence(Evaluator& e, const Value& v, CallArgs& a) { return t_iterable(e, v, a); }
bool t_callable(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Callable; }
bool t_eq(Evaluator&, const Value& v, CallArgs& a) { return value_equal(v, arg0(a, "eq")); }
bool t_ne(Evaluator&, const Value& v, CallArgs& a) { return !value_equal(v, arg0(a, "ne")); }
bool t_lt(Evaluator&, const Value& v, CallArgs& a) { return value_compare(v, arg0(a, "lt")) < 0; }
bool t_le(Evaluator&, const Value& v, CallArgs& a) { return value_compare(v, arg0(a, "le")) <= 0; }
bool t_gt(Evaluator&, const Value& v, CallArgs& a) { return value_compare(v, arg0(a, "gt")) > 0; }
bool t_ge(Evaluator&, const Value& v, CallArgs& a) { return value_compare(v, arg0(a, "ge")) >= 0; }
bool t_in(Evaluator&, const Value& v, CallArgs& a) { return value_contains(arg0(a, "in"), v); }
bool t_sameas(Evaluator&, const Value& v, CallArgs& a) {
  Value o = arg0(a, "sameas");
  if (v.kind != o.kind) return false;
  if (v.kind == Kind::List) return v.list == o.list;
  if (v.kind == Kind::Dict || v.kind == Kind::Namespace) return v.dict == o.dict;
  if (v.kind == Kind::Callable) return v.fn == o.fn;
  return value_equal(v, o);
}
int64_t as_int(const Value& v) {
  if (v.kind != Kind::Int && v.kind != Kind::Bool) fail("expected an integer, got " + kind_name(v));
  return v.kind == Kind::Bool ? v.b : v.i;
}
bool t_odd(Evaluator&, const Value& v, CallArgs&) { return as_int(v) % 2 != 0; }
bool t_even(Evaluator&, const Value& v, CallArgs&) { return as_int(v) % 2 == 0; }
bool t_divisibleby(Evaluator&, const Value& v, CallArgs& a) {
  int64_t d = as_int(arg0(a, "divisibleby"));
  if (d == 0) fail("integer division or modulo by zero");
  return as_int(v) % d == 0;
}
bool t_lower(Evaluator&, const Value& v, CallArgs&) {
  std::string s = value_to_text(v).str;
  return s == ascii_lower(s) && s != ascii_upper(s);
}
bool t_upper(Evaluator&, const Value& v, CallArgs&) {
  std::string s = value_to_text(v).str;
  return s == ascii_upper(s) && s != ascii_lower(s);
}
bool t_escaped(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Str && v.text.safe; }
bool t_filter(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Str && filter_exists(v.text.str); }
bool t_test(Evaluator&, const Value& v, CallArgs&) { return v.kind == Kind::Str && test_exists(v.text.str); }

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> table = {
      {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none},       {"boolean", t_boolean},
      {"false", t_false},     {"true", t_true},           {"integer", t_integer}, {"float", t_float},
      {"number", t_number},   {"string", t_string},       {"mapping", t_mapping}, {"iterable", t_iterable},
      {"sequence", t_sequence}, {"callable", t_callable}, {"eq", t_eq},           {"equalto", t_eq},
      {"==", t_eq},           {"ne", t_ne},               {"!=", t_ne},           {"lt", t_lt},
      {"lessthan", t_lt},     {"<", t_lt},                {"le", t_le},           {"<=", t_le},
      {"gt", t_gt},           {"greaterthan", t_gt},      {">", t_gt},            {"ge", t_ge},
      {">=", t_ge},           {"in", t_in},               {"sameas", t_sameas},   {"odd", t_odd},
      {"even", t_even},       {"divisibleby", t_divisibleby}, {"lower", t_lower}, {"upper", t_upper},
      {"escaped", t_escaped}, {"filter", t_filter},       {"test", t_test},
  };
  return table;
}

}  // namespace

bool filter_exists(const std::string& name) { return filters().count(name) > 0; }
bool test_exists(const std::string& name) { return tests().count(name) > 0; }

Value filter_apply(Evaluator& ev, const std::string& name, Value input, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) fail("no filter named '" + name + "'");
  return it->second(ev, input, args);
}

bool test_apply(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) fail("no test named '" + name + "'");
  return it->second(ev, input, args);
}

void globals_install(std::vector<std::pair<std::string, Value>>* globals, int64_t now) {
  globals->emplace_back("raise_exception", Value::callable("raise_exception", [](Evaluator&, CallArgs& a) -> Value {
    const Value* m = a.get(0, "message");
    fail(m ? value_to_text(*m).str : std::string("raise_exception() called"));
  }));
  globals->emplace_back("strftime_now", Value::callable("strftime_now", [now](Evaluator&, CallArgs& a) {
    const Value* f = a.get(0, "format");
    if (!f || f->kind != Kind::Str) fail("strftime_now() expects a format string");
    std::time_t t = now >= 0 ? static_cast<std::time_t>(now) : std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[512];
    size_t n = std::strftime(buf, sizeof buf, f->text.str.c_str(), &tm);
    return Value::string(std::string(buf, n));
  }));
  auto attrs = [](CallArgs& a, Value* out, const std::string& what) {
    for (const auto& p : a.args) {
      if (p.kind == Kind::Dict) {
        for (const auto& kv : p.dict->items) out->dict->set(kv.first, kv.second);
      } else if (p.kind == Kind::List) {
        for (const auto& kv : p.list->items) {
          if (kv.kind != Kind::List || kv.list->items.size() != 2) fail(what + ": expected (key, value) pairs");
          out->dict->set(kv.list->items[0], kv.list->items[1]);
        }
      } else {
        fail(what + ": expected a mapping, got " + kind_name(p));
      }
    }
    for (const auto& [k, v] : a.kwargs) out->dict->set(Value::string(k), v);
  };
  globals->emplace_back("namespace", Value::callable("namespace", [attrs](Evaluator&, CallArgs& a) {
    Value ns = Value::make_namespace();
    attrs(a, &ns, "namespace()");
    for (const auto& kv : ns.dict->items)
      if (kv.first.kind == Kind::Str && !kv.first.text.str.empty() && kv.first.text.str[0] == '_')
        fail("chat templates cannot store underscore-prefixed attributes on a namespace");
    return ns;
  }));
  globals->emplace_back("dict", Value::callable("dict", [attrs](Evaluator&, CallArgs& a) {
    Value d = Value::make_dict();
    attrs(a, &d, "dict()");
    return d;
  }));
  globals->emplace_back("range", Value::callable("range", [](Evaluator&, CallArgs& a) {
    std::vector<int64_t> n;
    for (const auto& v : a.args) n.push_back(as_int(v));
    if (n.empty() || n.size() > 3) fail("range expected 1 to 3 arguments");
    int64_t start = n.size() > 1 ? n[0] : 0, stop = n.size() > 1 ? n[1] : n[0], step = n.size() > 2 ? n[2] : 1;
    if (step == 0) fail("range() arg 3 must not be zero");
    std::vector<Value> out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (out.size() >= 100000) fail("range too big (the sandbox allows 100000 items)");
      out.push_back(Value::integer(k));
    }
    return Value::make_list(std::move(out));
  }));
}

}  // namespace emlab::jinja
