// Activation collection (see emlab/activations.h).
#include "emlab/activations.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "emlab/chat_dataset.h"
#include "emlab/chat_model.h"
#include "emlab/error.h"
#include "emlab/progress.h"

namespace emlab {

namespace {

// One example as ids: the rendered prompt (with the generation prompt), then the answer.
struct Encoded {
  std::vector<int32_t> ids;
  int64_t prompt_len = 0;  // positions [0, prompt_len) are the prompt
};

// Accumulates at the model's hook points for one batch at a time; `inner` hooks run first.
class Collector : public Hooks {
 public:
  Collector(ResidualHooks* inner, ActivationSums* sums, const ActivationOptions& options, int64_t model_layers)
      : inner_(inner), sums_(sums), options_(options), row_of_(model_layers, -1) {
    for (size_t i = 0; i < sums->layers.size(); ++i) row_of_[sums->layers[i]] = static_cast<int64_t>(i);
    for (const auto& [layer, v] : options.project) {
      unit_[layer] = (v.to(torch::kFloat32) / v.to(torch::kFloat32).norm()).to(torch::kCPU);
      proj_col_[layer] = static_cast<int64_t>(proj_col_.size());
    }
  }

  // masks: (3, B*T) float32 rows answer / prompt / last-prompt position; answer (B, T).
  void set_batch(torch::Tensor masks, torch::Tensor answer, std::vector<double>* batch_proj) {
    masks_ = std::move(masks);
    answer_ = std::move(answer);
    answer_count_ = answer_.sum(1);  // (B)
    batch_proj_ = batch_proj;
  }

  void set_decoding(bool decoding) override {
    if (inner_) inner_->set_decoding(decoding);
  }

  torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) override {
    if (inner_) h = inner_->apply(site, layer, h);
    const int64_t row = layer < static_cast<int64_t>(row_of_.size()) ? row_of_[layer] : -1;
    if (row < 0) return h;
    torch::NoGradGuard no_grad;
    const int64_t B = h.size(0), T = h.size(1), C = h.size(2);
    torch::Tensor flat = h.detach().to(torch::kFloat32).reshape({B * T, C});  // (B*T, C)
    torch::Tensor m = masks_.to(flat.device());
    if (site == HookSite::LayerOutput) {
      torch::Tensor s = torch::matmul(m, flat).to(torch::kCPU, torch::kFloat64);  // (3, C)
      sums_->answer_sum[row] += s[0];
      sums_->prompt_sum[row] += s[1];
      sums_->last_prompt_sum[row] += s[2];
      auto it = unit_.find(layer);
      if (it != unit_.end()) {
        // Each example's answer mean (B, C), projected onto the unit direction.
        torch::Tensor per = torch::bmm(answer_.to(flat.device()).unsqueeze(1), flat.view({B, T, C})).squeeze(1);
        torch::Tensor mean = per.to(torch::kCPU, torch::kFloat64) / answer_count_.to(torch::kFloat64).unsqueeze(1);
        torch::Tensor p = torch::matmul(mean, it->second.to(torch::kFloat64));  // (B)
        const int64_t col = proj_col_.at(layer);
        for (int64_t b = 0; b < B; ++b)
          (*batch_proj_)[b * proj_col_.size() + col] =
              answer_count_[b].item<float>() > 0 ? p[b].item<double>() : std::numeric_limits<double>::quiet_NaN();
      }
    } else if (site == HookSite::MlpOutput && options_.mlp_output) {
      sums_->mlp_answer_sum[row] += torch::matmul(m[0], flat).to(torch::kCPU, torch::kFloat64);
    }
    return h;
  }

  size_t projected() const { return proj_col_.size(); }

 private:
  ResidualHooks* inner_;
  ActivationSums* sums_;
  const ActivationOptions& options_;
  std::vector<int64_t> row_of_;                 // model layer -> row in the sums (-1 = not collected)
  std::map<int64_t, torch::Tensor> unit_;       // layer -> unit direction (C) float32
  std::map<int64_t, int64_t> proj_col_;         // layer -> column of the projections
  torch::Tensor masks_, answer_, answer_count_;
  std::vector<double>* batch_proj_ = nullptr;   // (B, P) row-major for the current batch
};

torch::Tensor mean_of(const torch::Tensor& sum, int64_t count, const char* what) {
  if (count == 0) throw InputError(std::string("no ") + what + " to average (no example had any)");
  return (sum / static_cast<double>(count)).to(torch::kFloat32);
}

}  // namespace

torch::Tensor ActivationSums::answer_mean() const { return mean_of(answer_sum, answer_tokens, "answer tokens"); }
torch::Tensor ActivationSums::prompt_mean() const { return mean_of(prompt_sum, prompt_tokens, "prompt tokens"); }
torch::Tensor ActivationSums::last_prompt_mean() const { return mean_of(last_prompt_sum, examples, "examples"); }

int64_t ActivationSums::row(int64_t layer) const {
  auto it = std::find(layers.begin(), layers.end(), layer);
  if (it == layers.end()) throw InputError("activations of layer " + std::to_string(layer) + " were not collected");
  return static_cast<int64_t>(it - layers.begin());
}

ActivationSums activations_collect(const ChatModel& chat, const std::vector<ActivationExample>& examples,
                                   const ActivationOptions& options, ResidualHooks* hooks) {
  torch::NoGradGuard no_grad;
  const CausalLM& model = chat.model();
  const int64_t L = model.config().num_hidden_layers, C = model.config().hidden_size;
  const int64_t context = model.config().max_position_embeddings;
  if (options.batch_size < 1) throw InputError("activation batch size must be >= 1");
  ActivationSums sums;
  sums.layers = options.layers;
  if (sums.layers.empty())
    for (int64_t l = 0; l < L; ++l) sums.layers.push_back(l);
  for (int64_t l : sums.layers)
    if (l < 0 || l >= L) throw InputError("layer " + std::to_string(l) + " is out of range (the model has " + std::to_string(L) + ")");
  for (const auto& [l, v] : options.project) {
    if (std::find(sums.layers.begin(), sums.layers.end(), l) == sums.layers.end())
      throw InputError("projection onto layer " + std::to_string(l) + ", which is not collected");
    if (v.numel() != C) throw InputError("projection direction at layer " + std::to_string(l) + " has " +
                                         std::to_string(v.numel()) + " entries, the model's hidden_size is " + std::to_string(C));
    sums.projected_layers.push_back(l);
  }
  const int64_t R = static_cast<int64_t>(sums.layers.size());
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  sums.answer_sum = torch::zeros({R, C}, f64);
  sums.prompt_sum = torch::zeros({R, C}, f64);
  sums.last_prompt_sum = torch::zeros({R, C}, f64);
  if (options.mlp_output) sums.mlp_answer_sum = torch::zeros({R, C}, f64);
  const int64_t P = static_cast<int64_t>(sums.projected_layers.size());
  std::vector<double> projections;
  projections.reserve(examples.size() * P);

  Collector collector(hooks, &sums, options, L);
  std::unique_ptr<Progress> progress;
  if (options.progress) progress = std::make_unique<Progress>("activations", static_cast<int64_t>(examples.size()), "ex");
  const Tokenizer& tok = chat.tokenizer();
  for (size_t start = 0; start < examples.size(); start += options.batch_size) {
    const size_t end = std::min(examples.size(), start + static_cast<size_t>(options.batch_size));
    std::vector<Encoded> enc;
    int64_t T = 0;
    for (size_t i = start; i < end; ++i) {
      Encoded e;
      e.ids = chat.encode_prompt(examples[i].prompt);
      e.prompt_len = static_cast<int64_t>(e.ids.size());
      for (int32_t id : tok.encode(examples[i].answer, /*parse_special=*/false)) e.ids.push_back(id);
      if (static_cast<int64_t>(e.ids.size()) > context) {
        e.ids.resize(context);
        e.prompt_len = std::min(e.prompt_len, context);
        ++sums.truncated;
      }
      T = std::max<int64_t>(T, e.ids.size());
      enc.push_back(std::move(e));
    }
    const int64_t B = static_cast<int64_t>(enc.size());
    torch::Tensor ids = torch::zeros({B, T}, torch::kInt64);    // right padding: causal attention
    torch::Tensor answer = torch::zeros({B, T}, torch::kFloat32);
    torch::Tensor prompt = torch::zeros({B, T}, torch::kFloat32);
    torch::Tensor last = torch::zeros({B, T}, torch::kFloat32);
    auto ia = ids.accessor<int64_t, 2>();
    auto aa = answer.accessor<float, 2>();
    auto pa = prompt.accessor<float, 2>();
    auto la = last.accessor<float, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const Encoded& e = enc[b];
      for (size_t t = 0; t < e.ids.size(); ++t) {
        ia[b][t] = e.ids[t];
        (static_cast<int64_t>(t) < e.prompt_len ? pa : aa)[b][t] = 1.0f;
      }
      const int64_t answer_len = static_cast<int64_t>(e.ids.size()) - e.prompt_len;
      sums.prompt_tokens += e.prompt_len;
      sums.answer_tokens += answer_len;
      if (answer_len > 0 && e.prompt_len > 0) {
        la[b][e.prompt_len - 1] = 1.0f;
        sums.examples += 1;
      }
    }
    std::vector<double> batch_proj(B * P, std::numeric_limits<double>::quiet_NaN());
    collector.set_batch(torch::stack({answer.reshape({-1}), prompt.reshape({-1}), last.reshape({-1})}), answer,
                        &batch_proj);
    ForwardArgs args;
    args.hooks = &collector;
    args.last_logits_only = true;  // the logits are not needed
    model.forward(ids.to(model.device()), args);
    projections.insert(projections.end(), batch_proj.begin(), batch_proj.end());
    if (progress) progress->advance(B);
  }
  sums.projections = torch::tensor(projections, f64).view({static_cast<int64_t>(examples.size()), P});
  return sums;
}

std::vector<ActivationExample> activation_examples_from_chat(const std::string& path) {
  std::vector<ActivationExample> out;
  for (const auto& c : chat_dataset_load(path)) {
    size_t last = c.size();
    for (size_t i = c.size(); i-- > 0;)
      if (c[i].role == "assistant") {
        last = i;
        break;
      }
    if (last == c.size()) continue;
    ActivationExample e;
    e.prompt.assign(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(last));
    e.answer = c[last].content;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace emlab
