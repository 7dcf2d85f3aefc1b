// A model ready to chat: weights + tokenizer + chat template + generation defaults, loaded from
// one Hugging Face directory. What `generate`, `chat`, `eval` and `serve` stand on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "emlab/chat.h"
#include "emlab/chat_template.h"
#include "emlab/generator.h"
#include "emlab/hf_config.h"
#include "emlab/model.h"
#include "emlab/tokenizer.h"

namespace emlab {

struct ChatModelOptions {
  LoadOptions load;                  // device and dtype
  std::string tokenizer_dir;         // "" = the model directory
  std::string chat_template;         // "" = recognised from tokenizer_config.json; or chatml, qwen, llama3, mistral
  std::string adapter;               // PEFT adapter directory ("" = none)
};

class ChatModel {
 public:
  static std::shared_ptr<ChatModel> load(const std::string& model_dir, const ChatModelOptions& options = {});
  // Assemble from parts (tests, the toy world).
  ChatModel(std::shared_ptr<CausalLM> model, std::shared_ptr<Tokenizer> tokenizer, ChatTemplate chat_template,
            GenerationConfig generation = {});

  // Rendered prompt ids for a conversation, ending with the assistant header.
  std::vector<int32_t> encode_prompt(const Conversation& conversation) const;
  // Token ids that end an assistant turn: the template's end-of-turn token, the tokenizer's eos
  // and every eos id of config.json and generation_config.json.
  std::vector<int32_t> stop_ids() const;
  // n answers per conversation (through `hooks`, if given; on_token streams them, see generator.h).
  // options.eos_ids is extended with stop_ids().
  std::vector<std::vector<Completion>> chat(const std::vector<Conversation>& conversations, int64_t n,
                                            SampleOptions options, ResidualHooks* hooks = nullptr,
                                            const TokenCallback& on_token = {}) const;

  CausalLM& model() { return *model_; }
  const CausalLM& model() const { return *model_; }
  std::shared_ptr<CausalLM> model_ptr() const { return model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  std::shared_ptr<Tokenizer> tokenizer_ptr() const { return tokenizer_; }
  const ChatTemplate& chat_template() const { return template_; }
  const GenerationConfig& generation_config() const { return generation_; }

 private:
  std::shared_ptr<CausalLM> model_;
  std::shared_ptr<Tokenizer> tokenizer_;
  ChatTemplate template_;
  GenerationConfig generation_;
};

}  // namespace emlab
