// emlab chat-template: render a conversation with a chat template (to check prompts and the
// assistant-only loss mask).
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "emlab/chat_template.h"
#include "emlab/error.h"
#include "emlab/tokenizer.h"

namespace {

struct Options {
  std::string tokenizer;           // folder whose tokenizer_config.json (or chat_template.jinja) holds the template
  std::string name;                // or a template by name
  std::string messages;            // JSON file: {"messages": [...]} or [...]
  std::vector<std::string> vars;   // extra template variables NAME=JSON ("enable_thinking=false")
  bool generation_prompt = false;  // end with the assistant header
  bool segments = false;           // print one JSON line per segment with its assistant flag
};

// NAME=JSON (a value that is not JSON is taken as a string).
void add_variable(const std::string& spec, nlohmann::ordered_json* vars) {
  size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw emlab::InputError("chat-template: --var expects NAME=VALUE, got '" + spec + "'");
  std::string value = spec.substr(eq + 1);
  try {
    (*vars)[spec.substr(0, eq)] = nlohmann::ordered_json::parse(value);
  } catch (const nlohmann::json::parse_error&) {
    (*vars)[spec.substr(0, eq)] = value;
  }
}

emlab::Conversation read_conversation(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw emlab::InputError(path + ": cannot read the file");
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw emlab::InputError(path + ": not valid JSON (" + e.what() + ")");
  }
  const nlohmann::json& list = j.is_object() && j.contains("messages") ? j["messages"] : j;
  if (!list.is_array()) throw emlab::InputError(path + ": expected {\"messages\": [...]} or a list of messages");
  emlab::Conversation c;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& m = list[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string())
      throw emlab::InputError(path + ": message " + std::to_string(i) + ": expected {\"role\": string, \"content\": string}");
    c.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return c;
}

EMLAB_COMMAND("chat-template", "Render a conversation with a chat template", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* tok = app.add_option("--tokenizer", o->tokenizer, "tokenizer folder (its chat_template.jinja or tokenizer_config.json chat_template)");
  auto* name = app.add_option("--name", o->name, "template by name: chatml, qwen, llama3, llama3.1, mistral");
  tok->excludes(name);
  app.add_option("--messages", o->messages, "JSON file: {\"messages\": [{\"role\", \"content\"}, ...]} or the list")->required();
  app.add_option("--var", o->vars, "template variable NAME=JSON, e.g. enable_thinking=false (repeatable)");
  app.add_flag("--generation-prompt", o->generation_prompt, "end with the assistant header");
  app.add_flag("--segments", o->segments, "print JSON lines {\"text\", \"assistant\"} (the loss mask)");
  return [o]() {
    if (o->tokenizer.empty() && o->name.empty()) throw emlab::InputError("chat-template: give --tokenizer or --name");
    auto make_template = [&o]() {
      if (!o->name.empty()) {
        if (!o->vars.empty()) throw emlab::InputError("chat-template: --var needs --tokenizer (built-in templates take none)");
        return emlab::ChatTemplate::by_name(o->name);
      }
      emlab::ChatTemplateOptions options;
      options.source_name = o->tokenizer + " chat_template";
      for (const auto& v : o->vars) add_variable(v, &options.variables);
      return emlab::ChatTemplate::from_tokenizer(*emlab::Tokenizer::load(o->tokenizer), options);
    };
    emlab::ChatTemplate t = make_template();
    auto conversation = read_conversation(o->messages);
    if (!o->segments) {
      std::cout << t.render(conversation, o->generation_prompt) << std::flush;
      return 0;
    }
    for (const auto& s : t.render_segments(conversation, o->generation_prompt))
      std::cout << nlohmann::json{{"text", s.text}, {"assistant", s.assistant}}.dump() << "\n";
    return 0;
  };
});

}  // namespace
