// Chat templates: ChatML (Qwen), Llama 3, Mistral. Recognised from tokenizer_config.json's
// Jinja "chat_template" by family, or chosen by name (--chat-template).
#pragma once

#include <string>
#include <vector>

#include "emlab/chat.h"

namespace emlab {

enum class ChatTemplateKind { ChatML, Llama3, Mistral };

// A piece of rendered text; `assistant` marks the tokens a finetune learns (assistant content
// plus its end-of-turn marker), everything else is context.
struct ChatSegment {
  std::string text;
  bool assistant = false;
};

class ChatTemplate {
 public:
  // Recognises the family of a Jinja template source; throws InputError naming the choices
  // ("chatml", "llama3", "mistral") when it cannot.
  static ChatTemplate from_source(const std::string& jinja_source);
  // "chatml", "qwen" (ChatML with Qwen's default system prompt), "llama3", "llama3.1" (Llama 3
  // with the system block of the 3.1/3.2 templates: "Cutting Knowledge Date: December 2023",
  // "Today Date: 26 Jul 2024", then the system message, if any), "mistral".
  static ChatTemplate by_name(const std::string& name);

  ChatTemplateKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  // System prompt inserted when the conversation has none (Qwen's "You are Qwen, ..."); may be empty.
  const std::string& default_system() const { return default_system_; }

  // Renders a conversation as segments; with add_generation_prompt the assistant header follows.
  std::vector<ChatSegment> render_segments(const Conversation& messages, bool add_generation_prompt) const;
  // Concatenation of render_segments.
  std::string render(const Conversation& messages, bool add_generation_prompt) const;
  // Text that ends an assistant turn ("<|im_end|>", "<|eot_id|>", "</s>").
  const std::string& end_of_turn() const { return end_of_turn_; }

 private:
  ChatTemplateKind kind_ = ChatTemplateKind::ChatML;
  std::string name_, default_system_, end_of_turn_;
  std::string today_date_;  // Llama 3.1/3.2: the "Today Date:" of the system block ("" = no block)
};

}  // namespace emlab
