// The evaluation runner's AnswerSource backed by a ChatModel: each call samples n answers per
// conversation with the run's sampling options (and optional steering/ablation hooks).
#pragma once

#include <memory>

#include "emlab/chat_model.h"
#include "emlab/eval_run.h"

namespace emlab {

class ModelAnswerSource : public AnswerSource {
 public:
  ModelAnswerSource(std::shared_ptr<ChatModel> model, SampleOptions options, ResidualHooks* hooks = nullptr)
      : model_(std::move(model)), options_(std::move(options)), hooks_(hooks) {}

  std::vector<std::vector<std::string>> sample(const std::vector<Conversation>& prompts, int n, uint64_t seed) override {
    SampleOptions o = options_;
    o.seed = seed;
    o.progress = false;  // the runner reports progress over the whole run
    auto completions = model_->chat(prompts, n, o, hooks_);
    std::vector<std::vector<std::string>> out(completions.size());
    for (size_t i = 0; i < completions.size(); ++i)
      for (const auto& c : completions[i]) out[i].push_back(c.text);
    return out;
  }

 private:
  std::shared_ptr<ChatModel> model_;
  SampleOptions options_;
  ResidualHooks* hooks_;
};

}  // namespace emlab
