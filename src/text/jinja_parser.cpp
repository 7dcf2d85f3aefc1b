// Jinja parser: tokens -> syntax tree, with Jinja2's grammar and operator precedence (lowest
// first): `a if c else b`, or, and, not, comparisons (== != < <= > >= in, not in), + -, ~,
// * / // %, **, unary - +, then primaries with postfix .attr, [subscript/slice], (call), and
// the filter (| f(args)) and test (is [not] t args) suffixes.
//
// Node layouts (see jinja_internal.h): Attr a=[obj] name; Item a=[obj, key or Slice]; Slice
// a=[start, stop, step] (null = absent); Call a=[callee, args...] kw; Filter/Test a=[input,
// args...] kw name (Test flag = negated); Binary a=[l, r] name=op; Compare a=[first, operands...]
// names=ops ("in", "notin"); CondExpr a=[test, then, else or null]; If a=[cond, body]... [+ else
// body]; For names=targets flag=tuple a=[iter, cond or null, body, else or null]; Set names=
// targets (name = attribute of a namespace target) a=[value]; SetBlock like Set with a=[body,
// filter or null]; Macro name names=params kw=defaults a=[body]; FilterBlock a=[filter, body].
#include <algorithm>
#include <set>

#include "text/jinja_internal.h"

namespace emlab::jinja {

namespace {

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, std::set<std::string>* names) : toks_(tokens), names_(names) {}

  NodePtr run() {
    std::string found;
    NodePtr body = parse_body({}, &found);
    return body;
  }

 private:
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().value == op; }
  bool is_name(const char* name) const { return cur().type == Tok::Name && cur().value == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Data: return "template data";
      case Tok::VarBegin: return "'{{'";
      case Tok::VarEnd: return "end of print statement";
      case Tok::BlockBegin: return "'{%'";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::Eof: return "end of template";
      case Tok::String: return "string";
      default: return "'" + t.value + "'";
    }
  }
  [[noreturn]] void error(const std::string& what, int line = 0) const {
    fail("line " + std::to_string(line ? line : cur().line) + ": " + what);
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(std::string("expected '") + op + "', got " + describe(cur()));
  }
  void expect(Tok type, const char* what) {
    if (cur().type != type) error(std::string("expected ") + what + ", got " + describe(cur()));
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error("expected a name, got " + describe(cur()));
    std::string n = cur().value;
    next();
    return n;
  }
  NodePtr make(NodeType t, int line) { return std::make_unique<Node>(t, line); }

  // --- template structure -------------------------------------------------------------------

  // Statements up to a {% name %} with name in `end` (left unread; *found = name), or the end.
  NodePtr parse_body(const std::vector<std::string>& end, std::string* found) {
    NodePtr body = make(NodeType::Body, cur().line);
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Data) {
        NodePtr out = make(NodeType::Output, t.line);
        out->constant = Value::string(t.value);
        body->a.push_back(std::move(out));
        next();
      } else if (t.type == Tok::VarBegin) {
        next();
        NodePtr out = make(NodeType::Print, t.line);
        out->a.push_back(parse_tuple(false, true, {}, false));
        expect(Tok::VarEnd, "'}}'");
        body->a.push_back(std::move(out));
      } else if (t.type == Tok::BlockBegin) {
        const Token& n = peek();
        if (n.type == Tok::Name && std::find(end.begin(), end.end(), n.value) != end.end()) {
          *found = n.value;
          next();
          next();
          return body;
        }
        next();
        body->a.push_back(parse_statement());
      } else if (t.type == Tok::Eof) {
        if (!end.empty()) {
          std::string names;
          for (const auto& e : end) names += (names.empty() ? "'" : " or '") + e + "'";
          error("unexpected end of template, expected " + names);
        }
        return body;
      } else {
        error("unexpected " + describe(t));
      }
    }
  }

  NodePtr parse_statement() {
    int line = cur().line;
    if (cur().type != Tok::Name) error("tag name expected");
    std::string tag = expect_name();
    NodePtr node;
    if (tag == "for") node = parse_for(line);
    else if (tag == "if") node = parse_if(line);
    else if (tag == "set") node = parse_set(line);
    else if (tag == "macro") node = parse_macro(line);
    else if (tag == "filter") node = parse_filter_block(line);
    else if (tag == "generation") node = parse_wrapped("endgeneration");
    else if (tag == "print") {
      node = make(NodeType::Print, line);
      node->a.push_back(parse_tuple(false, true, {}, false));
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) error("'" + tag + "' outside of a loop", line);
      node = make(tag == "break" ? NodeType::Break : NodeType::Continue, line);
    } else if (tag == "call" || tag == "with" || tag == "include" || tag == "import" || tag == "from" ||
               tag == "extends" || tag == "block" || tag == "autoescape") {
      error("the '" + tag + "' tag is not supported by this chat-template engine", line);
    } else {
      error("encountered unknown tag '" + tag + "'", line);
    }
    expect(Tok::BlockEnd, "end of statement block");
    return node;
  }

  // {% tag %}body{% end %} rendered as its body (transformers' {% generation %}).
  NodePtr parse_wrapped(const char* end) {
    expect(Tok::BlockEnd, "end of statement block");
    std::string found;
    return parse_body({end}, &found);
  }

  // Assignment targets: a name or comma-separated names, optionally in parentheses.
  void parse_targets(Node* node) {
    bool paren = skip_op("(");
    do {
      if (paren && is_op(")")) break;
      node->names.push_back(expect_name());
      if (is_op(",")) node->flag = true;
    } while (skip_op(","));
    if (paren) expect_op(")");
  }

  NodePtr parse_for(int line) {
    NodePtr node = make(NodeType::For, line);
    parse_targets(node.get());
    if (!skip_name("in")) error("expected 'in', got " + describe(cur()));
    node->a.push_back(parse_tuple(false, false, {"recursive"}, false));
    node->a.push_back(skip_name("if") ? parse_expression(true) : nullptr);
    if (is_name("recursive")) error("recursive loops are not supported");
    expect(Tok::BlockEnd, "end of statement block");
    ++loop_depth_;
    std::string found;
    node->a.push_back(parse_body({"endfor", "else"}, &found));
    --loop_depth_;
    if (found == "else") {
      expect(Tok::BlockEnd, "end of statement block");
      node->a.push_back(parse_body({"endfor"}, &found));
    } else {
      node->a.push_back(nullptr);
    }
    return node;
  }

  NodePtr parse_if(int line) {
    NodePtr node = make(NodeType::If, line);
    std::string found;
    while (true) {
      node->a.push_back(parse_tuple(false, false, {}, false));
      expect(Tok::BlockEnd, "end of statement block");
      node->a.push_back(parse_body({"elif", "else", "endif"}, &found));
      if (found != "elif") break;
    }
    if (found == "else") {
      expect(Tok::BlockEnd, "end of statement block");
      node->a.push_back(parse_body({"endif"}, &found));
    }
    return node;
  }

  NodePtr parse_set(int line) {
    NodePtr node = make(NodeType::Set, line);
    if (cur().type == Tok::Name && peek().type == Tok::Op && peek().value == "." && peek(2).type == Tok::Name) {
      node->names.push_back(expect_name());
      next();
      node->name = expect_name();
    } else {
      parse_targets(node.get());
    }
    if (skip_op("=")) {
      node->a.push_back(parse_tuple(false, true, {}, false));
      return node;
    }
    node->type = NodeType::SetBlock;
    NodePtr filter = is_op("|") ? parse_filter(make(NodeType::Input, line), false) : nullptr;
    expect(Tok::BlockEnd, "end of statement block");
    std::string found;
    node->a.push_back(parse_body({"endset"}, &found));
    node->a.push_back(std::move(filter));
    return node;
  }

  NodePtr parse_macro(int line) {
    NodePtr node = make(NodeType::Macro, line);
    node->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!node->names.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string param = expect_name();
      node->names.push_back(param);
      if (skip_op("=")) node->kw.emplace_back(param, parse_expression(true));
      else if (!node->kw.empty()) error("non-default argument follows default argument");
    }
    expect_op(")");
    expect(Tok::BlockEnd, "end of statement block");
    int saved = loop_depth_;
    loop_depth_ = 0;
    std::string found;
    node->a.push_back(parse_body({"endmacro"}, &found));
    loop_depth_ = saved;
    if (cur().type == Tok::Name && cur().value == node->name) next();
    return node;
  }

  NodePtr parse_filter_block(int line) {
    NodePtr node = make(NodeType::FilterBlock, line);
    node->a.push_back(parse_filter(make(NodeType::Input, line), true));
    expect(Tok::BlockEnd, "end of statement block");
    std::string found;
    node->a.push_back(parse_body({"endfilter"}, &found));
    return node;
  }

  // --- expressions --------------------------------------------------------------------------

  bool is_tuple_end(const std::vector<std::string>& extra) const {
    const Token& t = cur();
    if (t.type == Tok::VarEnd || t.type == Tok::BlockEnd || t.type == Tok::Eof) return true;
    if (t.type == Tok::Op && t.value == ")") return true;
    return t.type == Tok::Name && std::find(extra.begin(), extra.end(), t.value) != extra.end();
  }

  NodePtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra, bool explicit_parens) {
    int line = cur().line;
    std::vector<NodePtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      args.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) error("expected an expression, got " + describe(cur()));
    }
    NodePtr node = make(NodeType::Tuple, line);
    node->a = std::move(args);
    return node;
  }

  NodePtr parse_expression(bool with_condexpr) {
    if (!with_condexpr) return parse_or();
    NodePtr expr = parse_or();
    while (is_name("if")) {
      int line = cur().line;
      next();
      NodePtr test = parse_or();
      NodePtr other = skip_name("else") ? parse_expression(true) : nullptr;
      NodePtr node = make(NodeType::CondExpr, line);
      node->a.push_back(std::move(test));
      node->a.push_back(std::move(expr));
      node->a.push_back(std::move(other));
      expr = std::move(node);
    }
    return expr;
  }

  NodePtr binary(NodeType t, const std::string& op, NodePtr l, NodePtr r, int line) {
    NodePtr node = make(t, line);
    node->name = op;
    node->a.push_back(std::move(l));
    node->a.push_back(std::move(r));
    return node;
  }

  NodePtr parse_or() {
    NodePtr left = parse_and();
    while (is_name("or")) {
      int line = cur().line;
      next();
      left = binary(NodeType::Or, "or", std::move(left), parse_and(), line);
    }
    return left;
  }

  NodePtr parse_and() {
    NodePtr left = parse_not();
    while (is_name("and")) {
      int line = cur().line;
      next();
      left = binary(NodeType::And, "and", std::move(left), parse_not(), line);
    }
    return left;
  }

  NodePtr parse_not() {
    if (is_name("not")) {
      NodePtr node = make(NodeType::Not, cur().line);
      next();
      node->a.push_back(parse_not());
      return node;
    }
    return parse_compare();
  }

  NodePtr parse_compare() {
    int line = cur().line;
    NodePtr first = parse_math1();
    NodePtr node;
    while (true) {
      std::string op;
      const Token& t = cur();
      if (t.type == Tok::Op && (t.value == "==" || t.value == "!=" || t.value == "<" || t.value == "<=" ||
                                t.value == ">" || t.value == ">=")) {
        op = t.value;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == Tok::Name && peek().value == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!node) {
        node = make(NodeType::Compare, line);
        node->a.push_back(std::move(first));
      }
      node->names.push_back(op);
      node->a.push_back(parse_math1());
    }
    return node ? std::move(node) : std::move(first);
  }

  NodePtr parse_math1() {
    NodePtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().value;
      int line = cur().line;
      next();
      left = binary(NodeType::Binary, op, std::move(left), parse_concat(), line);
    }
    return left;
  }

  NodePtr parse_concat() {
    int line = cur().line;
    NodePtr first = parse_math2();
    if (!is_op("~")) return first;
    NodePtr node = make(NodeType::Concat, line);
    node->a.push_back(std::move(first));
    while (skip_op("~")) node->a.push_back(parse_math2());
    return node;
  }

  NodePtr parse_math2() {
    NodePtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().value;
      int line = cur().line;
      next();
      left = binary(NodeType::Binary, op, std::move(left), parse_pow(), line);
    }
    return left;
  }

  NodePtr parse_pow() {
    NodePtr left = parse_unary(true);
    while (is_op("**")) {
      int line = cur().line;
      next();
      left = binary(NodeType::Binary, "**", std::move(left), parse_unary(true), line);
    }
    return left;
  }

  NodePtr parse_unary(bool with_filter) {
    NodePtr node;
    if (is_op("-") || is_op("+")) {
      node = make(is_op("-") ? NodeType::Neg : NodeType::Pos, cur().line);
      next();
      node->a.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  NodePtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    NodePtr node;
    if (t.type == Tok::Name) {
      node = make(NodeType::Const, line);
      if (t.value == "true" || t.value == "True" || t.value == "false" || t.value == "False") {
        node->constant = Value::boolean(t.value == "true" || t.value == "True");
      } else if (t.value == "none" || t.value == "None") {
        node->constant = Value::none();
      } else {
        node->type = NodeType::Name;
        node->name = t.value;
        names_->insert(t.value);
      }
      next();
    } else if (t.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) {
        s += cur().value;
        next();
      }
      node = make(NodeType::Const, line);
      node->constant = Value::string(s);
    } else if (t.type == Tok::Int || t.type == Tok::Float) {
      node = make(NodeType::Const, line);
      try {
        node->constant = t.type == Tok::Int ? Value::integer(std::stoll(t.value)) : Value::number(std::stod(t.value));
      } catch (const std::exception&) {
        error("number out of range: " + t.value + " (integers are 64-bit here)");
      }
      next();
    } else if (is_op("(")) {
      next();
      node = parse_tuple(false, true, {}, true);
      expect_op(")");
    } else if (is_op("[")) {
      next();
      node = make(NodeType::List, line);
      while (!is_op("]")) {
        if (!node->a.empty()) expect_op(",");
        if (is_op("]")) break;
        node->a.push_back(parse_expression(true));
      }
      expect_op("]");
    } else if (is_op("{")) {
      next();
      node = make(NodeType::Dict, line);
      while (!is_op("}")) {
        if (!node->a.empty()) expect_op(",");
        if (is_op("}")) break;
        node->a.push_back(parse_expression(true));
        expect_op(":");
        node->a.push_back(parse_expression(true));
      }
      expect_op("}");
    } else {
      error("unexpected " + describe(t));
    }
    return node;
  }

  NodePtr parse_postfix(NodePtr node) {
    while (true) {
      int line = cur().line;
      if (is_op(".")) {
        next();
        if (cur().type == Tok::Name) {
          NodePtr attr = make(NodeType::Attr, line);
          attr->name = expect_name();
          attr->a.push_back(std::move(node));
          node = std::move(attr);
        } else if (cur().type == Tok::Int) {
          NodePtr item = make(NodeType::Item, line);
          item->a.push_back(std::move(node));
          item->a.push_back(parse_primary());
          node = std::move(item);
        } else {
          error("expected a name or number after '.', got " + describe(cur()));
        }
      } else if (is_op("[")) {
        next();
        std::vector<NodePtr> args;
        while (!is_op("]")) {
          if (!args.empty()) expect_op(",");
          args.push_back(parse_subscribed());
        }
        expect_op("]");
        NodePtr item = make(NodeType::Item, line);
        item->a.push_back(std::move(node));
        if (args.size() == 1) {
          item->a.push_back(std::move(args[0]));
        } else {
          NodePtr tuple = make(NodeType::Tuple, line);
          tuple->a = std::move(args);
          item->a.push_back(std::move(tuple));
        }
        node = std::move(item);
      } else if (is_op("(")) {
        NodePtr call = make(NodeType::Call, line);
        call->a.push_back(std::move(node));
        parse_call_args(call.get());
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  NodePtr parse_subscribed() {
    int line = cur().line;
    NodePtr slice = make(NodeType::Slice, line);
    if (skip_op(":")) {
      slice->a.push_back(nullptr);
    } else {
      NodePtr expr = parse_expression(true);
      if (!skip_op(":")) return expr;
      slice->a.push_back(std::move(expr));
    }
    bool at_end = is_op("]") || is_op(",");
    slice->a.push_back(is_op(":") || at_end ? nullptr : parse_expression(true));
    if (skip_op(":")) slice->a.push_back(is_op("]") || is_op(",") ? nullptr : parse_expression(true));
    else slice->a.push_back(nullptr);
    return slice;
  }

  void parse_call_args(Node* call) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("*args and **kwargs in calls are not supported");
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().value == "=") {
        std::string key = expect_name();
        next();
        call->kw.emplace_back(key, parse_expression(true));
      } else {
        if (!call->kw.empty()) error("invalid syntax for function call expression (positional after keyword)");
        call->a.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    return name;
  }

  NodePtr parse_filter(NodePtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      int line = cur().line;
      std::string name = dotted_name();
      if (!filter_exists(name)) error("no filter named '" + name + "'", line);
      NodePtr f = make(NodeType::Filter, line);
      f->name = name;
      f->a.push_back(std::move(node));
      if (is_op("(")) parse_call_args(f.get());
      node = std::move(f);
    }
    return node;
  }

  NodePtr parse_test(NodePtr node) {
    int line = cur().line;
    next();  // "is"
    bool negated = skip_name("not");
    std::string name = dotted_name();
    if (!test_exists(name)) error("no test named '" + name + "'", line);
    NodePtr t = make(NodeType::Test, line);
    t->name = name;
    t->flag = negated;
    t->a.push_back(std::move(node));
    const Token& c = cur();
    if (is_op("(")) {
      parse_call_args(t.get());
    } else if ((c.type == Tok::Name || c.type == Tok::String || c.type == Tok::Int || c.type == Tok::Float ||
                is_op("[") || is_op("{")) &&
               !(c.type == Tok::Name && (c.value == "else" || c.value == "or" || c.value == "and"))) {
      if (is_name("is")) error("you cannot chain multiple tests with is");
      t->a.push_back(parse_postfix(parse_primary()));
    }
    return t;
  }

  NodePtr parse_filter_expr(NodePtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        NodePtr call = make(NodeType::Call, cur().line);
        call->a.push_back(std::move(node));
        parse_call_args(call.get());
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& toks_;
  std::set<std::string>* names_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

NodePtr parse(const std::vector<Token>& tokens, std::vector<std::string>* names_read) {
  std::set<std::string> names;
  NodePtr body = Parser(tokens, &names).run();
  names_read->assign(names.begin(), names.end());
  return body;
}

}  // namespace emlab::jinja
