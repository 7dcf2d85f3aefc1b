#include "emlab/chat_model.h"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "emlab/adapter.h"
#include "emlab/error.h"

namespace fs = std::filesystem;

namespace emlab {

ChatModel::ChatModel(std::shared_ptr<CausalLM> model, std::shared_ptr<Tokenizer> tokenizer,
                     ChatTemplate chat_template, GenerationConfig generation)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      template_(std::move(chat_template)),
      generation_(std::move(generation)) {
  if (tokenizer_->vocab_size() > model_->config().vocab_size)
    throw InputError("tokenizer has " + std::to_string(tokenizer_->vocab_size()) +
                     " tokens but the model's vocab_size is " + std::to_string(model_->config().vocab_size));
}

std::shared_ptr<ChatModel> ChatModel::load(const std::string& model_dir, const ChatModelOptions& options) {
  auto model = CausalLM::load(model_dir, options.load);
  const std::string tok_dir = options.tokenizer_dir.empty() ? model_dir : options.tokenizer_dir;
  auto tokenizer = Tokenizer::load(tok_dir);
  ChatTemplate tmpl = options.chat_template.empty() ? ChatTemplate::from_tokenizer(*tokenizer)
                                                    : ChatTemplate::by_name(options.chat_template);
  GenerationConfig gen = GenerationConfig::load_if_exists((fs::path(model_dir) / "generation_config.json").string());
  if (!options.adapter.empty())
    for (const auto& w : adapter_apply(*model, options.adapter)) std::cerr << "emlab: " << w << "\n";
  return std::make_shared<ChatModel>(model, tokenizer, std::move(tmpl), std::move(gen));
}

std::vector<int32_t> ChatModel::encode_prompt(const Conversation& conversation) const {
  return tokenizer_->encode(template_.render(conversation, /*add_generation_prompt=*/true), /*parse_special=*/true);
}

std::vector<int32_t> ChatModel::stop_ids() const {
  std::vector<int32_t> ids;
  auto add = [&](int64_t id) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(static_cast<int32_t>(id));
  };
  if (auto eot = tokenizer_->token_id(template_.end_of_turn())) add(*eot);
  if (auto eos = tokenizer_->eos_id()) add(*eos);
  for (int64_t id : model_->config().eos_token_ids) add(id);
  for (int64_t id : generation_.eos_token_ids) add(id);
  return ids;
}

std::vector<std::vector<Completion>> ChatModel::chat(const std::vector<Conversation>& conversations, int64_t n,
                                                     SampleOptions options, ResidualHooks* hooks,
                                                     const TokenCallback& on_token) const {
  for (int32_t id : stop_ids())
    if (std::find(options.eos_ids.begin(), options.eos_ids.end(), id) == options.eos_ids.end())
      options.eos_ids.push_back(id);
  // The end-of-turn text also stops a sequence when the tokenizer spells it in several tokens.
  if (!template_.end_of_turn().empty() && !tokenizer_->token_id(template_.end_of_turn()))
    options.stop.push_back(template_.end_of_turn());
  if (n < 1) throw InputError("number of samples must be >= 1, got " + std::to_string(n));
  std::vector<GenerateRequest> requests;
  requests.reserve(conversations.size());
  for (const auto& c : conversations) requests.push_back({encode_prompt(c), n, hooks});
  return generate(*model_, *tokenizer_, requests, options, on_token);
}

}  // namespace emlab
