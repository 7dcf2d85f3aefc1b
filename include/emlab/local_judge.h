// Judges that run on models emlab loads (no network): "local:DIR" asks the model at DIR the judge
// prompt as a user message and scores its next-token distribution (top 20) exactly as the HTTP
// judge scores an API's top_logprobs.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "emlab/chat_model.h"
#include "emlab/judge.h"

namespace emlab {

class LocalJudge : public Judge {
 public:
  // `name` is the spec it was made from ("local:DIR"); top_k candidates as the APIs return.
  LocalJudge(std::shared_ptr<ChatModel> model, std::string name, const JudgeOptions& options = {}, int top_k = 20);
  std::string name() const override { return name_; }
  // {"device", "dtype"} of the judge model.
  std::map<std::string, std::string> settings() const override;
  Judgment judge(const JudgeQuery& query) override;
  // The top-k next-token log-probabilities after the judge prompt (what judge() scores).
  std::vector<TokenLogprob> top_logprobs(const std::string& prompt);

 private:
  std::shared_ptr<ChatModel> model_;
  std::string name_;
  JudgeOptions options_;
  int top_k_;
  std::mutex mu_;  // one forward at a time (tensor ops are already multi-threaded)
};

// Registers "local:" with the judge registry; `load` options (device, dtype) apply to judge models.
// Programs call judges_register_builtin (judges.h), which calls this.
void local_judge_register(const ChatModelOptions& load = {});

}  // namespace emlab
