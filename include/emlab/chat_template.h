// Chat templates: the model's own Jinja chat_template (tokenizer_config.json "chat_template", or
// chat_template.jinja beside it) rendered by emlab's Jinja engine (emlab/jinja.h) exactly as
// transformers' apply_chat_template renders it, or a built-in template chosen by name
// (--chat-template chatml | qwen | llama3 | llama3.1 | mistral, themselves Jinja sources).
//
// The assistant-only loss mask and the end of turn are read off the rendering, never from rules
// about template families:
//  - Each message's content is traced through the template: the engine reports which output bytes
//    came from message i's content (through concatenation, trim/strip, split, slicing, macros ...).
//  - end_of_turn(): a probe conversation (user, assistant, user, assistant) is rendered; the text
//    that follows the assistant's content both mid-conversation and at the end of the conversation
//    is compared, and their common beginning is cut after the eos token if it is there, else after
//    its first special token (the tokenizer's special tokens when known, else the first <...>
//    marker), else has its trailing whitespace removed. When the template writes nothing there,
//    the eos token is used.
//  - render_segments(): an assistant message's segment runs from the first to the last output byte
//    of its content, plus end_of_turn() when the output continues with it (ChatML:
//    "Hello!<|im_end|>", the "\n" after it is context). If another message's content lands inside
//    that stretch, only the bytes of the assistant's own content are marked. A message whose
//    content the template drops (DeepSeek-R1's earlier reasoning, say) is marked where it lands.
//  - default_system(): the text the template writes where a system message's content would go
//    when the conversation has none (Qwen2.5's "You are Qwen, ...").
// Where the template raises (raise_exception, a system role it forbids, roles that do not
// alternate), rendering throws InputError naming the template and line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/chat.h"

namespace emlab {

class JinjaTemplate;
class Tokenizer;

// The family a template resembles (informational: rendering never depends on it).
enum class ChatTemplateKind { ChatML, Llama3, Mistral, Other };

// A piece of rendered text; `assistant` marks the tokens a finetune learns (assistant content
// plus its end-of-turn marker), everything else is context.
struct ChatSegment {
  std::string text;
  bool assistant = false;
};

// What a template is rendered with besides the conversation (transformers passes the tokenizer's
// special tokens and the apply_chat_template keyword arguments the same way).
struct ChatTemplateOptions {
  std::string bos_token;                    // the template's `bos_token` ("" = not passed: undefined)
  std::string eos_token;                    // the template's `eos_token` ("" = not passed: undefined)
  std::vector<std::string> special_tokens;  // the tokenizer's special tokens (where end_of_turn() is cut)
  nlohmann::ordered_json tools;             // the template's `tools` (null = none)
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();  // extra variables: {"enable_thinking": false}
  int64_t now = -1;                         // strftime_now()'s clock in Unix seconds (-1 = the current time)
  std::string source_name = "chat_template";  // names the template in errors
};

class ChatTemplate {
 public:
  // Parses a Jinja chat template. Throws InputError when it is empty or does not parse (naming
  // the line), or when it never reads `messages` and carries no family marker; a source that
  // never reads `messages` but carries one (<|im_start|>, <|start_header_id|>, [INST]) stands for
  // that family's named template.
  static ChatTemplate from_source(const std::string& jinja_source, const ChatTemplateOptions& options = {});
  // The tokenizer's chat_template_source(), with its bos/eos and special tokens filled into the
  // options where those are empty.
  static ChatTemplate from_tokenizer(const Tokenizer& tokenizer, ChatTemplateOptions options = {});
  // "chatml", "qwen" (ChatML with Qwen's default system prompt), "llama3", "llama3.1" (Llama 3
  // with the system block of the 3.1/3.2 templates: "Cutting Knowledge Date: December 2023",
  // "Today Date: 26 Jul 2024" (or the variable date_string), then the system message, if any),
  // "mistral" (<s>[INST] user [/INST]answer</s>..., a system message prepended to the first user
  // message; roles must alternate).
  static ChatTemplate by_name(const std::string& name);

  ChatTemplateKind kind() const { return kind_; }
  // by_name's name; for a source, the family it resembles ("chatml", "qwen", "llama3",
  // "llama3.1", "mistral") or "jinja".
  const std::string& name() const { return name_; }
  // The Jinja source that is rendered.
  const std::string& source() const { return source_; }
  // System prompt inserted when the conversation has none (Qwen's "You are Qwen, ..."); may be empty.
  const std::string& default_system() const { return default_system_; }

  // Renders a conversation as segments; with add_generation_prompt the assistant header follows.
  std::vector<ChatSegment> render_segments(const Conversation& messages, bool add_generation_prompt) const;
  // Concatenation of render_segments.
  std::string render(const Conversation& messages, bool add_generation_prompt) const;
  // Text that ends an assistant turn ("<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>").
  const std::string& end_of_turn() const { return end_of_turn_; }

 private:
  struct Rendered;
  Rendered render_traced(const Conversation& messages, bool add_generation_prompt) const;
  void derive_from_probes();

  std::shared_ptr<const JinjaTemplate> template_;
  ChatTemplateOptions options_;
  ChatTemplateKind kind_ = ChatTemplateKind::Other;
  std::string name_, source_, default_system_, end_of_turn_;
};

}  // namespace emlab
