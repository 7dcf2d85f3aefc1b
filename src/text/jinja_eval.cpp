// Jinja evaluator and the JinjaTemplate entry points. Scoping follows Jinja2: `set` at the top level
// or inside if-blocks assigns in the template's scope; each iteration of a for loop and each macro
// call gets a fresh scope over its parent (so a loop body's assignments vanish at the end of the
// iteration — the reason templates use namespace()); macros see the latest values of the scope
// they were defined in.
#include <algorithm>
#include <cmath>
#include <optional>

#include "emlab/error.h"
#include "text/jinja_internal.h"

namespace emlab::jinja {

namespace {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get())
      for (const auto& [k, v] : f->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};

// A failure with the template line it happened on.
struct Located : std::runtime_error {
  int line;
  Located(const std::string& what, int l) : std::runtime_error(what), line(l) {}
};

enum class Flow { Normal, Break, Continue };

constexpr int kMaxMacroDepth = 200;

class Renderer : public Evaluator {
 public:
  explicit Renderer(std::shared_ptr<Frame> top) : frame_(std::move(top)) {}

  void run(const Node& body, Text* out) { exec(body, out); }

  Value call(const Value& fn, CallArgs& args) override {
    if (fn.kind == Kind::Callable) return fn.fn->call(*this, args);
    if (fn.is_undefined()) fail(fn.text.str);
    fail("'" + kind_name(fn) + "' object is not callable");
  }

  Value call_macro(const Node& m, const std::weak_ptr<Frame>& defined_in, CallArgs& args) {
    auto parent = defined_in.lock();
    if (!parent) fail("macro '" + m.name + "' called outside the scope it was defined in");
    if (depth_ >= kMaxMacroDepth) fail("maximum recursion depth exceeded in macro '" + m.name + "'");
    auto f = std::make_shared<Frame>();
    f->parent = parent;
    const auto& params = m.names;
    if (args.args.size() > params.size())
      fail("macro '" + m.name + "' takes not more than " + std::to_string(params.size()) + " argument(s)");
    std::vector<bool> given(params.size(), false);
    for (size_t k = 0; k < args.args.size(); ++k) f->set(params[k], args.args[k]), given[k] = true;
    for (const auto& [key, v] : args.kwargs) {
      auto it = std::find(params.begin(), params.end(), key);
      if (it == params.end()) fail("macro '" + m.name + "' takes no keyword argument '" + key + "'");
      size_t k = static_cast<size_t>(it - params.begin());
      if (given[k]) fail("macro '" + m.name + "' got multiple values for argument '" + key + "'");
      f->set(key, v);
      given[k] = true;
    }
    auto saved = frame_;
    frame_ = f;
    ++depth_;
    for (size_t k = 0; k < params.size(); ++k) {
      if (given[k]) continue;
      auto d = std::find_if(m.kw.begin(), m.kw.end(), [&](const auto& kv) { return kv.first == params[k]; });
      f->set(params[k], d != m.kw.end() ? eval(*d->second) : Value::undefined("parameter '" + params[k] + "' was not provided"));
    }
    Text out;
    exec(*m.a[0], &out);
    --depth_;
    frame_ = saved;
    out.safe = false;
    return Value::string(std::move(out));
  }

 private:
  Flow exec(const Node& n, Text* out) {
    try {
      return exec_node(n, out);
    } catch (const Failure& f) {
      throw Located(f.what(), n.line);
    }
  }

  Value eval(const Node& n) {
    try {
      return eval_node(n);
    } catch (const Failure& f) {
      throw Located(f.what(), n.line);
    }
  }

  Value lookup(const std::string& name) const {
    const Value* v = frame_->find(name);
    return v ? *v : Value::undefined("'" + name + "' is undefined");
  }

  Flow exec_node(const Node& n, Text* out) {
    switch (n.type) {
      case NodeType::Body:
        for (const auto& c : n.a) {
          Flow f = exec(*c, out);
          if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
      case NodeType::Output: out->append(n.constant.text); return Flow::Normal;
      case NodeType::Print: out->append(value_to_text(eval(*n.a[0]))); return Flow::Normal;
      case NodeType::If:
        for (size_t k = 0; k + 1 < n.a.size(); k += 2)
          if (value_truthy(eval(*n.a[k]))) return exec(*n.a[k + 1], out);
        if (n.a.size() % 2 == 1) return exec(*n.a.back(), out);
        return Flow::Normal;
      case NodeType::For: exec_for(n, out); return Flow::Normal;
      case NodeType::Set: assign(n, eval(*n.a[0])); return Flow::Normal;
      case NodeType::SetBlock: {
        Text captured;
        exec(*n.a[0], &captured);
        Value v = Value::string(std::move(captured));
        if (n.a[1]) {
          filter_input_ = v;
          v = eval(*n.a[1]);
        }
        assign(n, v);
        return Flow::Normal;
      }
      case NodeType::Macro: {
        const Node* m = &n;
        std::weak_ptr<Frame> defined_in = frame_;
        frame_->set(n.name, Value::callable(n.name, [m, defined_in](Evaluator& ev, CallArgs& args) {
          return static_cast<Renderer&>(ev).call_macro(*m, defined_in, args);
        }));
        return Flow::Normal;
      }
      case NodeType::FilterBlock: {
        Text captured;
        exec(*n.a[1], &captured);
        filter_input_ = Value::string(std::move(captured));
        out->append(value_to_text(eval(*n.a[0])));
        return Flow::Normal;
      }
      case NodeType::Break: return Flow::Break;
      case NodeType::Continue: return Flow::Continue;
      default: fail("expression used as a statement");
    }
  }

  void bind(const Node& n, const Value& item) {
    if (!n.flag) {
      frame_->set(n.names[0], item);
      return;
    }
    if (item.kind == Kind::None || item.is_number()) fail("cannot unpack non-iterable " + kind_name(item) + " object");
    auto parts = value_iterate(item);
    if (parts.size() != n.names.size())
      fail(std::string(parts.size() > n.names.size() ? "too many" : "not enough") + " values to unpack (expected " +
           std::to_string(n.names.size()) + ", got " + std::to_string(parts.size()) + ")");
    for (size_t k = 0; k < parts.size(); ++k) frame_->set(n.names[k], parts[k]);
  }

  void assign(const Node& n, const Value& v) {
    if (!n.name.empty()) {
      Value ns = lookup(n.names[0]);
      if (ns.kind != Kind::Namespace) fail("cannot assign attribute on non-namespace object");
      if (n.name[0] == '_') fail("chat templates cannot store underscore-prefixed attributes on a namespace");
      ns.dict->set(Value::string(n.name), v);
      return;
    }
    bind(n, v);
  }

  struct FrameGuard {
    Renderer* r;
    std::shared_ptr<Frame> saved;
    ~FrameGuard() { r->frame_ = saved; }
  };

  void exec_for(const Node& n, Text* out) {
    Value iterable = eval(*n.a[0]);
    std::vector<Value> items = value_iterate(iterable);
    FrameGuard guard{this, frame_};
    if (n.a[1]) {
      std::vector<Value> kept;
      for (const auto& item : items) {
        frame_ = std::make_shared<Frame>();
        frame_->parent = guard.saved;
        bind(n, item);
        if (value_truthy(eval(*n.a[1]))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const size_t len = items.size();
    for (size_t k = 0; k < len; ++k) {
      frame_ = std::make_shared<Frame>();
      frame_->parent = guard.saved;
      bind(n, items[k]);
      frame_->set("loop", loop_object(items, k));
      if (exec(*n.a[2], out) == Flow::Break) break;
    }
    if (len == 0 && n.a[3]) {
      frame_ = std::make_shared<Frame>();
      frame_->parent = guard.saved;
      exec(*n.a[3], out);
    }
  }

  static Value loop_object(const std::vector<Value>& items, size_t k) {
    const int64_t len = static_cast<int64_t>(items.size()), i = static_cast<int64_t>(k);
    Value loop = Value::make_dict();
    auto set = [&](const char* key, Value v) { loop.dict->items.emplace_back(Value::string(key), std::move(v)); };
    set("index", Value::integer(i + 1));
    set("index0", Value::integer(i));
    set("revindex", Value::integer(len - i));
    set("revindex0", Value::integer(len - i - 1));
    set("first", Value::boolean(i == 0));
    set("last", Value::boolean(i == len - 1));
    set("length", Value::integer(len));
    set("depth", Value::integer(1));
    set("depth0", Value::integer(0));
    if (k > 0) set("previtem", items[k - 1]);
    if (k + 1 < items.size()) set("nextitem", items[k + 1]);
    set("cycle", Value::callable("cycle", [i](Evaluator&, CallArgs& a) {
      if (a.args.empty()) fail("no items for cycling given");
      return a.args[static_cast<size_t>(i) % a.args.size()];
    }));
    return loop;
  }

  CallArgs call_args(const Node& n, size_t first) {
    CallArgs args;
    for (size_t k = first; k < n.a.size(); ++k) args.args.push_back(eval(*n.a[k]));
    for (const auto& [key, e] : n.kw) args.kwargs.emplace_back(key, eval(*e));
    return args;
  }

  Value eval_node(const Node& n) {
    switch (n.type) {
      case NodeType::Const: return n.constant;
      case NodeType::Name: return lookup(n.name);
      case NodeType::Input: return filter_input_;
      case NodeType::List:
      case NodeType::Tuple: {
        std::vector<Value> items;
        for (const auto& c : n.a) items.push_back(eval(*c));
        return Value::make_list(std::move(items), n.type == NodeType::Tuple);
      }
      case NodeType::Dict: {
        Value d = Value::make_dict();
        for (size_t k = 0; k + 1 < n.a.size(); k += 2) {
          Value key = eval(*n.a[k]);
          d.dict->set(key, eval(*n.a[k + 1]));
        }
        return d;
      }
      case NodeType::Attr: {
        Value obj = eval(*n.a[0]);
        if (obj.is_undefined()) fail(obj.text.str);
        return attribute_get(obj, n.name);
      }
      case NodeType::Item: {
        Value obj = eval(*n.a[0]);
        if (n.a[1]->type == NodeType::Slice) return slice(obj, *n.a[1]);
        Value key = eval(*n.a[1]);
        if (obj.is_undefined()) fail(obj.text.str);
        return item_get(obj, key);
      }
      case NodeType::Call: {
        Value fn = eval(*n.a[0]);
        CallArgs args = call_args(n, 1);
        return call(fn, args);
      }
      case NodeType::Filter: {
        Value input = eval(*n.a[0]);
        CallArgs args = call_args(n, 1);
        return filter_apply(*this, n.name, std::move(input), args);
      }
      case NodeType::Test: {
        Value input = eval(*n.a[0]);
        CallArgs args = call_args(n, 1);
        bool r = test_apply(*this, n.name, input, args);
        return Value::boolean(n.flag ? !r : r);
      }
      case NodeType::Neg:
      case NodeType::Pos: {
        Value v = eval(*n.a[0]);
        if (v.is_undefined()) fail(v.text.str);
        bool neg = n.type == NodeType::Neg;
        if (v.kind == Kind::Int || v.kind == Kind::Bool) {
          int64_t i = v.kind == Kind::Bool ? v.b : v.i;
          return Value::integer(neg ? -i : i);
        }
        if (v.kind == Kind::Float) return Value::number(neg ? -v.f : v.f);
        fail(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" + kind_name(v) + "'");
      }
      case NodeType::Not: return Value::boolean(!value_truthy(eval(*n.a[0])));
      case NodeType::Binary: {
        Value l = eval(*n.a[0]);
        Value r = eval(*n.a[1]);
        return binary(n.name, l, r);
      }
      case NodeType::Compare: {
        Value left = eval(*n.a[0]);
        for (size_t k = 0; k < n.names.size(); ++k) {
          Value right = eval(*n.a[k + 1]);
          if (!compare(n.names[k], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case NodeType::And: {
        Value l = eval(*n.a[0]);
        return value_truthy(l) ? eval(*n.a[1]) : l;
      }
      case NodeType::Or: {
        Value l = eval(*n.a[0]);
        return value_truthy(l) ? l : eval(*n.a[1]);
      }
      case NodeType::CondExpr:
        if (value_truthy(eval(*n.a[0]))) return eval(*n.a[1]);
        if (n.a[2]) return eval(*n.a[2]);
        return Value::undefined("the inline if-expression on line " + std::to_string(n.line) +
                                " evaluated to false and no else section was defined");
      case NodeType::Concat: {
        Text t;
        for (const auto& c : n.a) t.append(value_to_text(eval(*c)));
        return Value::string(std::move(t));
      }
      default: fail("statement used as an expression");
    }
  }

  static bool compare(const std::string& op, const Value& l, const Value& r) {
    if (op == "==") return value_equal(l, r);
    if (op == "!=") return !value_equal(l, r);
    if (op == "in") return value_contains(r, l);
    if (op == "notin") return !value_contains(r, l);
    if (l.is_undefined()) fail(l.text.str);
    if (r.is_undefined()) fail(r.text.str);
    int c = value_compare(l, r);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  static int64_t as_int(const Value& v) { return v.kind == Kind::Bool ? v.b : v.i; }

  static Value binary(const std::string& op, const Value& l, const Value& r) {
    if (l.is_undefined()) fail(l.text.str);
    if (r.is_undefined()) fail(r.text.str);
    bool ints = (l.kind == Kind::Int || l.kind == Kind::Bool) && (r.kind == Kind::Int || r.kind == Kind::Bool);
    bool nums = l.is_number() && r.is_number();
    auto unsupported = [&]() -> Value {
      fail("unsupported operand type(s) for " + op + ": '" + kind_name(l) + "' and '" + kind_name(r) + "'");
    };
    if (op == "+") {
      if (ints) return Value::integer(as_int(l) + as_int(r));
      if (nums) return Value::number(value_to_double(l) + value_to_double(r));
      if (l.kind == Kind::Str && r.kind == Kind::Str) {
        if (!l.text.safe && !r.text.safe) {
          Text t = l.text;
          t.append(r.text);
          return Value::string(std::move(t));
        }
        // Markup + str escapes the str (and the result stays Markup).
        Text t = l.text.safe ? l.text : Text(html_escape(l.str()));
        t.append(r.text.safe ? r.text : Text(html_escape(r.str())));
        t.safe = true;
        return Value::string(std::move(t));
      }
      if (l.kind == Kind::List && r.kind == Kind::List && l.list->tuple == r.list->tuple) {
        std::vector<Value> items = l.list->items;
        items.insert(items.end(), r.list->items.begin(), r.list->items.end());
        return Value::make_list(std::move(items), l.list->tuple);
      }
      if (l.kind == Kind::Str) fail("can only concatenate str (not \"" + kind_name(r) + "\") to str");
      return unsupported();
    }
    if (op == "*") {
      if (ints) return Value::integer(as_int(l) * as_int(r));
      if (nums) return Value::number(value_to_double(l) * value_to_double(r));
      const Value* seq = l.kind == Kind::Str || l.kind == Kind::List ? &l : &r;
      const Value* count = seq == &l ? &r : &l;
      if ((seq->kind == Kind::Str || seq->kind == Kind::List) && (count->kind == Kind::Int || count->kind == Kind::Bool)) {
        int64_t times = std::max<int64_t>(0, as_int(*count));
        if (seq->kind == Kind::Str) {
          std::string s;
          for (int64_t k = 0; k < times; ++k) s += seq->str();
          return Value::string(s);
        }
        std::vector<Value> items;
        for (int64_t k = 0; k < times; ++k) items.insert(items.end(), seq->list->items.begin(), seq->list->items.end());
        return Value::make_list(std::move(items), seq->list->tuple);
      }
      return unsupported();
    }
    if (op == "%" && l.kind == Kind::Str) {
      std::vector<Value> args = r.kind == Kind::List && r.list->tuple ? r.list->items : std::vector<Value>{r};
      return Value::string(percent_format(l.str(), args));
    }
    if (!nums) return unsupported();
    double x = value_to_double(l), y = value_to_double(r);
    if (op == "-") return ints ? Value::integer(as_int(l) - as_int(r)) : Value::number(x - y);
    if (op == "/") {
      if (y == 0) fail("division by zero");
      return Value::number(x / y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) fail(ints ? "integer division or modulo by zero" : "float division by zero");
      if (ints) {
        int64_t a = as_int(l), b = as_int(r), q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) --q, m += b;
        return Value::integer(op == "//" ? q : m);
      }
      double q = std::floor(x / y), m = x - q * y;
      return Value::number(op == "//" ? q : m);
    }
    if (op == "**") {
      if (ints && as_int(r) >= 0) {
        int64_t result = 1, base = as_int(l);
        for (int64_t k = 0; k < as_int(r); ++k) result *= base;
        return Value::integer(result);
      }
      return Value::number(std::pow(x, y));
    }
    return unsupported();
  }

  std::optional<int64_t> slice_index(const NodePtr& p) {
    if (!p) return std::nullopt;
    Value v = eval(*p);
    if (v.kind == Kind::None) return std::nullopt;
    if (v.kind != Kind::Int && v.kind != Kind::Bool) fail("slice indices must be integers or None");
    return as_int(v);
  }

  Value slice(const Value& obj, const Node& s) {
    std::optional<int64_t> start = slice_index(s.a[0]), stop = slice_index(s.a[1]), step_opt = slice_index(s.a[2]);
    if (obj.is_undefined()) fail(obj.text.str);
    int64_t step = step_opt.value_or(1);
    if (step == 0) fail("slice step cannot be zero");
    std::vector<size_t> offsets;
    int64_t n;
    if (obj.kind == Kind::Str) {
      offsets = utf8_offsets(obj.str());
      n = static_cast<int64_t>(offsets.size()) - 1;
    } else if (obj.kind == Kind::List) {
      n = static_cast<int64_t>(obj.list->items.size());
    } else {
      fail("'" + kind_name(obj) + "' object is not subscriptable");
    }
    auto adjust = [&](std::optional<int64_t> v, int64_t fallback) {
      if (!v) return fallback;
      int64_t x = *v;
      if (x < 0) x += n;
      if (x < 0) return step < 0 ? int64_t{-1} : int64_t{0};
      if (x >= n) return step < 0 ? n - 1 : n;
      return x;
    };
    int64_t b = adjust(start, step < 0 ? n - 1 : 0), e = adjust(stop, step < 0 ? -1 : n);
    if (obj.kind == Kind::Str && step == 1)
      return Value::string(obj.text.slice(offsets[static_cast<size_t>(b)], offsets[static_cast<size_t>(std::max(b, e))]));
    std::vector<Value> items;
    std::string s_out;
    for (int64_t k = b; step > 0 ? k < e : k > e; k += step) {
      if (obj.kind == Kind::List) items.push_back(obj.list->items[static_cast<size_t>(k)]);
      else s_out.append(obj.str(), offsets[k], offsets[k + 1] - offsets[k]);
    }
    if (obj.kind == Kind::Str) return Value::string(s_out);
    return Value::make_list(std::move(items), obj.list->tuple);
  }

  std::shared_ptr<Frame> frame_;
  Value filter_input_;
  int depth_ = 0;
};

}  // namespace

}  // namespace emlab::jinja

namespace emlab {

using jinja::Failure;

JinjaTemplate JinjaTemplate::parse(const std::string& source, const std::string& name) {
  auto program = std::make_shared<jinja::Program>();
  program->name = name;
  try {
    program->body = jinja::parse(jinja::lex(source), &program->names_read);
  } catch (const Failure& f) {
    throw InputError(name + ": " + f.what());
  }
  JinjaTemplate t;
  t.program_ = std::move(program);
  return t;
}

std::string JinjaTemplate::render(const nlohmann::ordered_json& variables) const {
  return render(variables, JinjaRenderOptions{}).text;
}

JinjaRendering JinjaTemplate::render(const nlohmann::ordered_json& variables, const JinjaRenderOptions& options) const {
  const jinja::Program& p = *program_;
  if (!variables.is_object()) throw InputError(p.name + ": the template variables must be a JSON object");
  auto globals = std::make_shared<jinja::Frame>();
  jinja::globals_install(&globals->vars, options.now);
  auto top = std::make_shared<jinja::Frame>();
  top->parent = globals;
  JinjaRendering result;
  try {
    for (const auto& [key, value] : variables.items()) {
      std::string pointer = "/";
      for (char c : key) pointer += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
      top->vars.emplace_back(key, jinja::value_from_json(value, pointer, options.traced));
    }
    jinja::Renderer renderer(top);
    jinja::Text out;
    renderer.run(*p.body, &out);
    result.text = std::move(out.str);
    for (const auto& s : out.spans) result.spans.push_back({s.tag, s.begin, s.end});
  } catch (const jinja::Located& e) {
    throw InputError(p.name + ": line " + std::to_string(e.line) + ": " + e.what());
  } catch (const Failure& f) {
    throw InputError(p.name + ": " + f.what());
  }
  return result;
}

bool JinjaTemplate::reads(const std::string& variable) const {
  return std::binary_search(program_->names_read.begin(), program_->names_read.end(), variable);
}

const std::string& JinjaTemplate::name() const { return program_->name; }

}  // namespace emlab
