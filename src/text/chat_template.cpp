// Chat templates rendered by the Jinja engine; the loss mask, end of turn and default system prompt
// read off traced renderings (see include/emlab/chat_template.h).
#include "emlab/chat_template.h"

#include <algorithm>

#include "emlab/error.h"
#include "emlab/jinja.h"
#include "emlab/tokenizer.h"

namespace emlab {

namespace {

const char* const kQwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
const char* const kNames = "chatml, qwen, llama3, llama3.1, mistral";

// The built-in templates (what --chat-template NAME renders).
const char* const kChatml = R"jinja({%- for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %})jinja";

const char* const kQwen = R"jinja({%- if not messages or messages[0]['role'] != 'system' %}
    {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %})jinja";

const char* const kLlama3 = R"jinja({{- '<|begin_of_text|>' }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %})jinja";

const char* const kLlama31 = R"jinja({{- '<|begin_of_text|>' }}
{%- if not date_string is defined %}
    {%- set date_string = '26 Jul 2024' %}
{%- endif %}
{%- if messages and messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = '' %}
{%- endif %}
{{- '<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ' + date_string + '\n\n' }}
{{- system_message + '<|eot_id|>' }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %})jinja";

const char* const kMistral = R"jinja({%- if messages and messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
    {%- set offset = 1 %}
{%- else %}
    {%- set system_message = '' %}
    {%- set loop_messages = messages %}
    {%- set offset = 0 %}
{%- endif %}
{{- '<s>' }}
{%- for message in loop_messages %}
    {%- if message['role'] != ['user', 'assistant'][loop.index0 % 2] %}
        {{- raise_exception('mistral chat template: message ' ~ (loop.index0 + offset) ~ " has role '" ~ message['role'] ~ "'; expected user and assistant turns alternating, starting with user (a system message may only come first)") }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message %}
            {{- '[INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- else %}
        {{- message['content'] + '</s>' }}
    {%- endif %}
{%- endfor %})jinja";

// The family whose markers a source carries ("" = none).
std::string family_of(const std::string& source) {
  if (source.find("<|im_start|>") != std::string::npos)
    return source.find(kQwenDefaultSystem) != std::string::npos ? "qwen" : "chatml";
  if (source.find("<|start_header_id|>") != std::string::npos)
    return source.find("Cutting Knowledge Date") != std::string::npos ? "llama3.1" : "llama3";
  if (source.find("[INST]") != std::string::npos) return "mistral";
  return "";
}

ChatTemplateKind kind_of(const std::string& family) {
  if (family == "chatml" || family == "qwen") return ChatTemplateKind::ChatML;
  if (family == "llama3" || family == "llama3.1") return ChatTemplateKind::Llama3;
  if (family == "mistral") return ChatTemplateKind::Mistral;
  return ChatTemplateKind::Other;
}

// Appends text to the segment list, merging with the previous segment when the flag matches.
void emit(std::vector<ChatSegment>* out, const std::string& text, bool assistant) {
  if (text.empty()) return;
  if (!out->empty() && out->back().assistant == assistant)
    out->back().text += text;
  else
    out->push_back({text, assistant});
}

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// The end of turn within the text that follows an assistant's content: up to and including the
// eos token when it is there (generation stops at it), else its first special token (or, without a
// list, its first <...> marker), else the text without trailing whitespace.
std::string cut_end_of_turn(const std::string& tail, const std::string& eos, const std::vector<std::string>& special_tokens) {
  if (!eos.empty() && tail.find(eos) != std::string::npos) return tail.substr(0, tail.find(eos) + eos.size());
  size_t best = std::string::npos, best_len = 0;
  for (const auto& t : special_tokens) {
    if (t.empty()) continue;
    size_t p = tail.find(t);
    if (p != std::string::npos && (p < best || (p == best && t.size() > best_len))) best = p, best_len = t.size();
  }
  if (best != std::string::npos) return tail.substr(0, best + best_len);
  for (size_t p = tail.find('<'); p != std::string::npos; p = tail.find('<', p + 1)) {
    size_t q = p + 1;
    while (q < tail.size() && q - p <= 64 && tail[q] != '>' && tail[q] != '<' && !ascii_space(tail[q])) ++q;
    if (q < tail.size() && tail[q] == '>' && q > p + 1) return tail.substr(0, q + 1);
  }
  size_t end = tail.size();
  while (end > 0 && ascii_space(tail[end - 1])) --end;
  return tail.substr(0, end);
}

}  // namespace

// A rendering with, per message, the output bytes its content landed on.
struct ChatTemplate::Rendered {
  std::string text;
  std::vector<std::vector<std::pair<size_t, size_t>>> landed;  // per message: [begin, end) in text order
};

ChatTemplate ChatTemplate::by_name(const std::string& name) {
  const char* source = name == "chatml"     ? kChatml
                       : name == "qwen"     ? kQwen
                       : name == "llama3"   ? kLlama3
                       : name == "llama3.1" ? kLlama31
                       : name == "mistral"  ? kMistral
                                            : nullptr;
  if (!source) throw InputError("unknown chat template '" + name + "' (expected one of " + kNames + ")");
  ChatTemplate t;
  t.options_.source_name = "chat template '" + name + "'";
  t.template_ = std::make_shared<JinjaTemplate>(JinjaTemplate::parse(source, t.options_.source_name));
  t.name_ = name;
  t.kind_ = kind_of(name);
  t.source_ = source;
  t.derive_from_probes();
  return t;
}

ChatTemplate ChatTemplate::from_source(const std::string& jinja_source, const ChatTemplateOptions& options) {
  if (jinja_source.empty())
    throw InputError(options.source_name + ": the tokenizer has no chat_template; choose one by name: " + kNames);
  auto parsed = std::make_shared<JinjaTemplate>(JinjaTemplate::parse(jinja_source, options.source_name));
  std::string family = family_of(jinja_source);
  if (!parsed->reads("messages")) {
    if (family.empty())
      throw InputError(options.source_name + ": the chat_template never reads `messages`, so it renders no "
                       "conversation, and it is not a known family (ChatML <|im_start|>, Llama 3 <|start_header_id|>, "
                       "Mistral [INST]); choose one by name: " + kNames);
    return by_name(family);
  }
  ChatTemplate t;
  t.template_ = std::move(parsed);
  t.options_ = options;
  t.name_ = family.empty() ? "jinja" : family;
  t.kind_ = kind_of(family);
  t.source_ = jinja_source;
  t.derive_from_probes();
  return t;
}

ChatTemplate ChatTemplate::from_tokenizer(const Tokenizer& tokenizer, ChatTemplateOptions options) {
  if (options.bos_token.empty() && tokenizer.bos_id()) options.bos_token = tokenizer.token_bytes(*tokenizer.bos_id());
  if (options.eos_token.empty() && tokenizer.eos_id()) options.eos_token = tokenizer.token_bytes(*tokenizer.eos_id());
  if (options.special_tokens.empty())
    for (int64_t id = 0; id < tokenizer.vocab_size(); ++id)
      if (tokenizer.is_special(static_cast<int32_t>(id)))
        options.special_tokens.push_back(tokenizer.token_bytes(static_cast<int32_t>(id)));
  return from_source(tokenizer.chat_template_source(), options);
}

ChatTemplate::Rendered ChatTemplate::render_traced(const Conversation& messages, bool add_generation_prompt) const {
  if (!template_) throw Error("ChatTemplate: empty template (make one with from_source, from_tokenizer or by_name)");
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  if (!options_.bos_token.empty()) vars["bos_token"] = options_.bos_token;
  if (!options_.eos_token.empty()) vars["eos_token"] = options_.eos_token;
  for (const auto& [key, value] : options_.variables.items()) vars[key] = value;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  JinjaRenderOptions ro;
  ro.now = options_.now;
  for (size_t i = 0; i < messages.size(); ++i) {
    list.push_back({{"role", messages[i].role}, {"content", messages[i].content}});
    ro.traced["/messages/" + std::to_string(i) + "/content"] = static_cast<int>(i);
  }
  vars["messages"] = std::move(list);
  vars["tools"] = options_.tools;
  vars["documents"] = nullptr;
  vars["add_generation_prompt"] = add_generation_prompt;
  JinjaRendering r = template_->render(vars, ro);
  Rendered out;
  out.text = std::move(r.text);
  out.landed.resize(messages.size());
  for (const auto& s : r.spans)
    if (s.tag >= 0 && static_cast<size_t>(s.tag) < messages.size()) out.landed[s.tag].emplace_back(s.begin, s.end);
  return out;
}

void ChatTemplate::derive_from_probes() {
  // end_of_turn: what follows the assistant's content mid-conversation and at the end.
  const Conversation probe = {{"user", "Probe question one?"},
                              {"assistant", "Probe answer one."},
                              {"user", "Probe question two?"},
                              {"assistant", "Probe answer two."}};
  std::string common;
  for (bool with_system : {false, true}) {
    Conversation c = probe;
    if (with_system) c.insert(c.begin(), {"system", "Probe system prompt."});
    size_t a1 = with_system ? 2 : 1, a2 = a1 + 2;
    try {
      Rendered r = render_traced(c, false);
      if (r.landed[a1].empty() || r.landed[a2].empty()) continue;
      std::string mid = r.text.substr(r.landed[a1].back().second), end = r.text.substr(r.landed[a2].back().second);
      size_t n = 0;
      while (n < mid.size() && n < end.size() && mid[n] == end[n]) ++n;
      common = end.substr(0, n);
      break;
    } catch (const InputError&) {
      // the template refuses this probe (a required system message, say): try the next one
    }
  }
  end_of_turn_ = cut_end_of_turn(common, options_.eos_token, options_.special_tokens);
  if (end_of_turn_.empty()) end_of_turn_ = options_.eos_token;

  // default_system: what stands where a system message's content would go.
  default_system_.clear();
  try {
    Rendered with = render_traced({{"system", "Probe system prompt."}, {"user", "Probe question one?"}}, false);
    std::string without = render_traced({{"user", "Probe question one?"}}, false).text;
    if (!with.landed[0].empty()) {
      std::string before = with.text.substr(0, with.landed[0].front().first);
      std::string after = with.text.substr(with.landed[0].back().second);
      if (without.size() >= before.size() + after.size() && without.compare(0, before.size(), before) == 0 &&
          without.compare(without.size() - after.size(), after.size(), after) == 0)
        default_system_ = without.substr(before.size(), without.size() - before.size() - after.size());
    }
  } catch (const InputError&) {
    // a template without system messages (Gemma) has no default either
  }
}

std::vector<ChatSegment> ChatTemplate::render_segments(const Conversation& messages, bool add_generation_prompt) const {
  Rendered r = render_traced(messages, add_generation_prompt);
  std::vector<std::pair<size_t, size_t>> marked;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& spans = r.landed[i];
    if (messages[i].role != "assistant" || spans.empty()) continue;
    size_t first = spans.front().first, last = 0;
    for (const auto& s : spans) first = std::min(first, s.first), last = std::max(last, s.second);
    bool others_inside = false;
    for (size_t j = 0; j < messages.size() && !others_inside; ++j)
      if (j != i)
        for (const auto& s : r.landed[j])
          if (s.first < last && s.second > first) others_inside = true;
    std::vector<std::pair<size_t, size_t>> own = others_inside ? spans : std::vector<std::pair<size_t, size_t>>{{first, last}};
    if (!end_of_turn_.empty() && r.text.compare(last, end_of_turn_.size(), end_of_turn_) == 0)
      own.push_back({last, last + end_of_turn_.size()});
    marked.insert(marked.end(), own.begin(), own.end());
  }
  std::sort(marked.begin(), marked.end());
  std::vector<ChatSegment> out;
  size_t pos = 0;
  for (const auto& [b, e] : marked) {
    if (e <= pos) continue;
    size_t start = std::max(b, pos);
    emit(&out, r.text.substr(pos, start - pos), false);
    emit(&out, r.text.substr(start, e - start), true);
    pos = e;
  }
  emit(&out, r.text.substr(pos), false);
  return out;
}

std::string ChatTemplate::render(const Conversation& messages, bool add_generation_prompt) const {
  return render_traced(messages, add_generation_prompt).text;
}

}  // namespace emlab
