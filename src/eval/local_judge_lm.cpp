#include "emlab/local_judge.h"

#include <cmath>

namespace emlab {

LocalJudge::LocalJudge(std::shared_ptr<ChatModel> model, std::string name, const JudgeOptions& options, int top_k)
    : model_(std::move(model)), name_(std::move(name)), options_(options), top_k_(top_k) {}

std::vector<TokenLogprob> LocalJudge::top_logprobs(const std::string& prompt) {
  std::lock_guard<std::mutex> lock(mu_);
  torch::NoGradGuard no_grad;
  std::vector<int32_t> ids = model_->encode_prompt({{"user", prompt}});
  torch::Tensor input = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
  ForwardArgs args;
  args.last_logits_only = true;
  torch::Tensor logits = model_->model().forward(input, args).reshape({-1}).to(torch::kFloat32);  // (V)
  // Only ids the tokenizer knows (a model may pad its vocabulary beyond the tokenizer's).
  const int64_t known = std::min<int64_t>(logits.size(0), model_->tokenizer().vocab_size());
  torch::Tensor logp = torch::log_softmax(logits.narrow(0, 0, known), 0).cpu();
  auto top = logp.topk(std::min<int64_t>(top_k_, known));
  torch::Tensor values = std::get<0>(top), indices = std::get<1>(top);
  std::vector<TokenLogprob> out;
  for (int64_t i = 0; i < values.size(0); ++i) {
    const int32_t id = static_cast<int32_t>(indices[i].item<int64_t>());
    out.push_back({model_->tokenizer().decode({id}), values[i].item<double>()});
  }
  return out;
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
