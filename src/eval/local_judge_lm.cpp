#include "emlab/local_judge.h"

#include <cmath>

#include "emlab/runtime.h"

namespace emlab {

LocalJudge::LocalJudge(std::shared_ptr<ChatModel> model, std::string name, const JudgeOptions& options, int top_k)
    : model_(std::move(model)), name_(std::move(name)), options_(options), top_k_(top_k) {}

std::vector<TokenLogprob> LocalJudge::top_logprobs(const std::string& prompt) {
  std::lock_guard<std::mutex> lock(mu_);
  // One greedy step of the generator with its top log-probabilities (the model's own, over the
  // tokenizer's vocabulary), as an API judge call with max_tokens 1 and top_logprobs 20.
  SampleOptions o;
  o.max_new_tokens = 1;
  o.temperature = 0.0;
  o.top_logprobs = top_k_;
  o.progress = false;
  const Completion c = model_->chat({{{"user", prompt}}}, 1, o)[0][0];
  std::vector<TokenLogprob> out;
  for (const TokenProb& t : c.top_logprobs.at(0)) out.push_back({model_->tokenizer().decode({t.id}), t.logprob});
  return out;
}

std::map<std::string, std::string> LocalJudge::settings() const {
  return {{"device", model_->model().device().str()}, {"dtype", dtype_to_string(model_->model().dtype())}};
}

Judgment LocalJudge::judge(const JudgeQuery& query) {
  return judgment_from_logprobs(query, top_logprobs(query.prompt), options_.min_mass);
}

void local_judge_register(const ChatModelOptions& load) {
  judge_register("local:", [load](const std::string& spec, const JudgeOptions& options) -> std::unique_ptr<Judge> {
    const std::string dir = spec.substr(std::string("local:").size());
    return std::make_unique<LocalJudge>(ChatModel::load(dir, load), spec, options);
  });
}

}  // namespace emlab
