// Internals of the Jinja engine (include/emlab/jinja.h): values with traced text, tokens, the
// syntax tree, and the entry points of the lexer, parser, evaluator and builtins. Internal to
// src/text.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "emlab/jinja.h"

namespace emlab::jinja {

// A failure inside the engine; the evaluator adds the template name and the line.
struct Failure : std::runtime_error {
  explicit Failure(const std::string& message) : std::runtime_error(message) {}
};
[[noreturn]] void fail(const std::string& message);

// ---------------------------------------------------------------------------------------------
// Text: a string with the provenance of its bytes.

struct Span {
  int tag = 0;
  size_t begin = 0, end = 0;  // bytes of Text::str
};

struct Text {
  std::string str;
  std::vector<Span> spans;  // traced input bytes, in order
  bool safe = false;        // Jinja's Markup (|safe): `+` with a plain string escapes the other side

  Text() = default;
  explicit Text(std::string s) : str(std::move(s)) {}
  void append(const Text& t);
  void append(std::string_view s) { str.append(s); }
  // Bytes [b, e) with the spans that overlap them (an empty span inside [b, e] is kept).
  Text slice(size_t b, size_t e) const;
};

// UTF-8 helpers (strings are indexed by code point, as in Python).
std::vector<size_t> utf8_offsets(const std::string& s);  // byte offset of each code point, then size
size_t utf8_length(const std::string& s);
bool is_space_at(const std::string& s, size_t pos, size_t* len);  // Python str.isspace() char at pos
std::string ascii_lower(std::string s);
std::string ascii_upper(std::string s);

// ---------------------------------------------------------------------------------------------
// Values.

enum class Kind { Undefined, None, Bool, Int, Float, Str, List, Dict, Namespace, Callable };

struct Value;
struct CallArgs;
class Evaluator;
using Builtin = std::function<Value(Evaluator&, CallArgs&)>;

struct ListData {
  std::vector<Value> items;
  bool tuple = false;
  bool generator = false;  // what map/select/reject/unique return: iterable, but no len(), index or JSON
};

struct DictData {
  std::vector<std::pair<Value, Value>> items;  // insertion order
  const Value* find(const Value& key) const;
  const Value* find(const std::string& key) const;
  void set(const Value& key, Value value);
};

struct Function {
  std::string name;
  Builtin call;
};

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  Text text;                        // Str; Undefined: the hint "'x' is undefined"
  std::shared_ptr<ListData> list;   // List (and tuples)
  std::shared_ptr<DictData> dict;   // Dict, Namespace
  std::shared_ptr<Function> fn;     // Callable

  Value() = default;
  static Value undefined(const std::string& hint);
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string s);
  static Value string(Text t);
  static Value make_list(std::vector<Value> items = {}, bool tuple = false);
  static Value make_dict();
  static Value make_namespace();
  static Value callable(std::string name, Builtin call);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_str() const { return kind == Kind::Str; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  const std::string& str() const { return text.str; }
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  // Argument `index` or keyword `name`; nullptr when neither was given.
  const Value* get(size_t index, const std::string& name) const;
  // Fails when more than `n` positional arguments or a keyword outside `names` was given.
  void check(const std::string& what, size_t n, const std::vector<std::string>& names) const;
};

Value value_from_json(const nlohmann::ordered_json& j, const std::string& pointer,
                      const std::map<std::string, int>& traced);
bool value_truthy(const Value& v);
double value_to_double(const Value& v);  // numbers only (fails otherwise)
// Python's str(): "None", "True", 1.5, "[1, 'a']"; Undefined -> "".
Text value_to_text(const Value& v);
std::string value_repr(const Value& v);
std::string float_repr(double f);
// json.dumps(v, ensure_ascii=False, indent, separators, sort_keys): indent < 0 = none.
std::string value_to_json(const Value& v, int indent, const std::string& item_sep, const std::string& key_sep,
                          bool sort_keys);
bool value_equal(const Value& a, const Value& b);
int value_compare(const Value& a, const Value& b);  // <0, 0, >0; fails on unorderable types
bool value_contains(const Value& container, const Value& item);  // Python `item in container`
std::vector<Value> value_iterate(const Value& v);  // lists, dict keys, string chars; Undefined = empty
size_t value_length(const Value& v);
std::string kind_name(const Value& v);  // Python type name: 'str', 'dict', ...
std::string html_escape(const std::string& s);

// ---------------------------------------------------------------------------------------------
// Tokens.

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type = Tok::Eof;
  std::string value;  // Data text, name, decoded string, number text, operator
  int line = 1;
};

std::vector<Token> lex(const std::string& source);  // throws Failure with "line N: " prefixed text

// ---------------------------------------------------------------------------------------------
// Syntax tree.

struct Node;
using NodePtr = std::unique_ptr<Node>;

enum class NodeType {
  // expressions
  Const, Name, List, Tuple, Dict, Attr, Item, Slice, Call, Filter, Test, Neg, Pos, Not, Binary, Compare,
  And, Or, CondExpr, Concat, Input,  // Input: the value a filter block or block set filters
  // statements
  Output, Print, If, For, Set, SetBlock, Macro, FilterBlock, Break, Continue, Body,
};

struct Node {
  NodeType type;
  int line = 1;
  Value constant;                                   // Const; Output text
  std::string name;                                 // Name, Attr, Filter, Test, Binary op, Macro, Set attr
  std::vector<NodePtr> a;                           // children (see parser.cpp for each type's layout)
  std::vector<std::pair<std::string, NodePtr>> kw;  // keyword arguments; Macro defaults
  std::vector<std::string> names;                   // Compare ops; For / Set / Macro targets
  bool flag = false;                                // Test: negated; Set: namespace attribute; Tuple targets
  Node(NodeType t, int l) : type(t), line(l) {}
};

struct Program {
  std::string name;
  NodePtr body;
  std::vector<std::string> names_read;  // every Name node, for JinjaTemplate::reads
};

// Parses tokens into a Body node; throws Failure with "line N: " prefixed text.
NodePtr parse(const std::vector<Token>& tokens, std::vector<std::string>* names_read);

// ---------------------------------------------------------------------------------------------
// Builtins (jinja_builtins.cpp).

bool filter_exists(const std::string& name);
bool test_exists(const std::string& name);
Value filter_apply(Evaluator& ev, const std::string& name, Value input, CallArgs& args);
bool test_apply(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args);
// Python string operations on traced text (jinja_methods.cpp). chars = nullptr: whitespace.
Text text_strip(const Text& t, const std::string* chars, bool left, bool right);
std::vector<Text> text_split(const Text& t, const std::string* sep, int64_t maxsplit);
std::vector<Text> text_splitlines(const Text& t, bool keepends);
std::string text_replace(const std::string& s, const std::string& old, const std::string& with, int64_t count);
std::string text_capitalize(const std::string& s);
std::string text_title(const std::string& s);  // Python's str.title()
// Python's printf-style "%s" % args (s, r, d, i, f, %).
std::string percent_format(const std::string& format, const std::vector<Value>& args);

// obj.name as the sandbox resolves it: a method bound to obj, a dict key, or Undefined.
Value attribute_get(const Value& obj, const std::string& name);
// obj[key]: an item, or else an attribute; Undefined when neither exists.
Value item_get(const Value& obj, const Value& key);
void globals_install(std::vector<std::pair<std::string, Value>>* globals, int64_t now);

// Evaluator services the builtins need.
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  // Calls a callable value (builtin, macro, bound method).
  virtual Value call(const Value& fn, CallArgs& args) = 0;
};

}  // namespace emlab::jinja
