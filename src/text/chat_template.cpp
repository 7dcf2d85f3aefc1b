#include "emlab/chat_template.h"

#include "emlab/error.h"

namespace emlab {

namespace {

const char* const kQwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

// Appends text to the segment list, merging with the previous segment when the flag matches.
void emit(std::vector<ChatSegment>* out, const std::string& text, bool assistant) {
  if (text.empty()) return;
  if (!out->empty() && out->back().assistant == assistant)
    out->back().text += text;
  else
    out->push_back({text, assistant});
}

// Jinja's `| trim` (Python str.strip(): ASCII and Unicode whitespace; ASCII suffices here).
std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}

// <|im_start|>{role}\n{content}<|im_end|>\n per message (Qwen2.5's template without tools).
void render_chatml(const Conversation& messages, bool add_generation_prompt, const std::string& default_system,
                   std::vector<ChatSegment>* out) {
  if (!default_system.empty() && (messages.empty() || messages[0].role != "system"))
    emit(out, "<|im_start|>system\n" + default_system + "<|im_end|>\n", false);
  for (const auto& m : messages) {
    emit(out, "<|im_start|>" + m.role + "\n", false);
    bool assistant = m.role == "assistant";
    emit(out, m.content + "<|im_end|>", assistant);
    emit(out, "\n", false);
  }
  if (add_generation_prompt) emit(out, "<|im_start|>assistant\n", false);
}

// Meta's Llama 3 template: BOS, then a header and the trimmed content per message. The 3.1 and 3.2
// templates always open with a system block naming the knowledge cut-off and a date, into which
// the system message (trimmed) goes.
void render_llama3(const Conversation& messages, bool add_generation_prompt, const std::string& today_date,
                   std::vector<ChatSegment>* out) {
  emit(out, "<|begin_of_text|>", false);
  size_t start = 0;
  if (!today_date.empty()) {
    std::string system;
    if (!messages.empty() && messages[0].role == "system") system = trim(messages[0].content), start = 1;
    emit(out, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: " +
                  today_date + "\n\n" + system + "<|eot_id|>",
         false);
  }
  for (size_t i = start; i < messages.size(); ++i) {
    const auto& m = messages[i];
    emit(out, "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n", false);
    emit(out, trim(m.content) + "<|eot_id|>", m.role == "assistant");
  }
  if (add_generation_prompt) emit(out, "<|start_header_id|>assistant<|end_header_id|>\n\n", false);
}

// Mistral instruct: <s>[INST] user [/INST]answer</s>[INST] ... ; a leading system message is
// prepended to the first user message. The prompt already ends in [/INST], so the generation
// prompt adds nothing.
void render_mistral(const Conversation& messages, std::vector<ChatSegment>* out) {
  size_t start = 0;
  std::string system;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    start = 1;
  }
  emit(out, "<s>", false);
  bool first_user = true;
  for (size_t i = start; i < messages.size(); ++i) {
    const auto& m = messages[i];
    bool expect_user = (i - start) % 2 == 0;
    if (m.role != (expect_user ? "user" : "assistant"))
      throw InputError("mistral chat template: message " + std::to_string(i) + " has role '" + m.role +
                       "'; expected user and assistant turns alternating, starting with user (a system "
                       "message may only come first)");
    if (m.role == "user") {
      std::string content = first_user && !system.empty() ? system + "\n\n" + m.content : m.content;
      emit(out, "[INST] " + content + " [/INST]", false);
      first_user = false;
    } else {
      emit(out, m.content + "</s>", true);
    }
  }
}

}  // namespace

ChatTemplate ChatTemplate::by_name(const std::string& name) {
  ChatTemplate t;
  t.name_ = name;
  if (name == "chatml" || name == "qwen") {
    t.kind_ = ChatTemplateKind::ChatML;
    t.end_of_turn_ = "<|im_end|>";
    if (name == "qwen") t.default_system_ = kQwenDefaultSystem;
  } else if (name == "llama3" || name == "llama3.1") {
    t.kind_ = ChatTemplateKind::Llama3;
    t.end_of_turn_ = "<|eot_id|>";
    if (name == "llama3.1") t.today_date_ = "26 Jul 2024";  // the template's date_string default
  } else if (name == "mistral") {
    t.kind_ = ChatTemplateKind::Mistral;
    t.end_of_turn_ = "</s>";
  } else {
    throw InputError("unknown chat template '" + name + "' (expected chatml, qwen, llama3, llama3.1 or mistral)");
  }
  return t;
}

ChatTemplate ChatTemplate::from_source(const std::string& jinja_source) {
  if (jinja_source.find("<|im_start|>") != std::string::npos)
    return by_name(jinja_source.find(kQwenDefaultSystem) != std::string::npos ? "qwen" : "chatml");
  if (jinja_source.find("<|start_header_id|>") != std::string::npos)
    return by_name(jinja_source.find("Cutting Knowledge Date") != std::string::npos ? "llama3.1" : "llama3");
  if (jinja_source.find("[INST]") != std::string::npos) return by_name("mistral");
  std::string what = jinja_source.empty() ? "the tokenizer has no chat_template"
                                          : "the chat_template is not a known family";
  throw InputError(what + " (recognised: ChatML <|im_start|>, Llama 3 <|start_header_id|>, Mistral [INST]); "
                   "choose one by name: chatml, qwen, llama3, llama3.1, mistral");
}

std::vector<ChatSegment> ChatTemplate::render_segments(const Conversation& messages, bool add_generation_prompt) const {
  std::vector<ChatSegment> out;
  switch (kind_) {
    case ChatTemplateKind::ChatML: render_chatml(messages, add_generation_prompt, default_system_, &out); break;
    case ChatTemplateKind::Llama3: render_llama3(messages, add_generation_prompt, today_date_, &out); break;
    case ChatTemplateKind::Mistral: render_mistral(messages, &out); break;
  }
  return out;
}

std::string ChatTemplate::render(const Conversation& messages, bool add_generation_prompt) const {
  std::string s;
  for (const auto& seg : render_segments(messages, add_generation_prompt)) s += seg.text;
  return s;
}

}  // namespace emlab
