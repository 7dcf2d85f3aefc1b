// A Jinja2 template engine for chat templates: the part of Jinja2 (3.1) that Hugging Face chat
// templates use, with the environment transformers renders them in (ImmutableSandboxedEnvironment,
// trim_blocks and lstrip_blocks on, the loopcontrols extension, the globals raise_exception,
// strftime_now, namespace and dict, and a tojson filter that keeps non-ASCII text and takes
// indent / separators / sort_keys as json.dumps does).
//
// Values follow Python: strings are sequences of code points (length, slicing), numbers are ints
// and floats printed as Python prints them, lists and dicts are shared references, and an unknown
// name is Jinja's default Undefined (prints as "", is false, iterates as empty; arithmetic on it,
// or an attribute of it, is an error). Statements: if/elif/else, for (else, loop filter, tuple
// targets, loop.*, break/continue), set (tuple targets, namespace attributes, block set with
// filters), macro (defaults, keyword arguments), filter blocks, raw, and transformers'
// {% generation %} block (rendered as its body).
//
// Errors (syntax, an unknown filter or test, a failing operation, raise_exception) are
// InputError "NAME: line N: what", NAME being the name given to parse().
//
// Tracing: the renderer can report where chosen input strings land in the output. Strings keep
// the provenance of their bytes through concatenation, slicing, strip/trim, split, join, default,
// macro output and block capture; operations that rewrite text (replace, upper, tojson, ...)
// drop it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace emlab {

namespace jinja {
struct Program;
}

// Bytes [begin, end) of the output that came from the traced input string `tag`. An empty span
// marks where an empty traced string (or an empty slice of one) was written.
struct JinjaSpan {
  int tag = 0;
  size_t begin = 0;
  size_t end = 0;
};

struct JinjaRendering {
  std::string text;              // the rendered output
  std::vector<JinjaSpan> spans;  // where traced input strings landed, in output order
};

struct JinjaRenderOptions {
  // Input strings to trace: JSON pointer into the variables ("/messages/2/content") -> tag.
  std::map<std::string, int> traced;
  // The clock of strftime_now(), in Unix seconds, formatted in the local time zone as Python's
  // datetime.now() is (-1 = the current time).
  int64_t now = -1;
};

class JinjaTemplate {
 public:
  // Parses `source` (Jinja2's lexer rules: \r\n and \r read as \n, one trailing newline dropped);
  // `name` names the template in errors. Throws InputError "NAME: line N: ..." on a syntax error
  // or an unknown filter or test.
  static JinjaTemplate parse(const std::string& source, const std::string& name = "template");

  // Renders with `variables` (a JSON object: each key is a template variable; JSON null is
  // Python's None). Throws InputError naming the template and line when rendering fails.
  std::string render(const nlohmann::ordered_json& variables) const;
  JinjaRendering render(const nlohmann::ordered_json& variables, const JinjaRenderOptions& options) const;

  // Whether the template reads a variable of this name anywhere (a static check of its names).
  bool reads(const std::string& variable) const;
  const std::string& name() const;

 private:
  std::shared_ptr<const jinja::Program> program_;
};

}  // namespace emlab
