// Padded micro-batches (see emlab/batch.h).
#include "emlab/batch.h"

#include <algorithm>

namespace emlab {

int64_t count_targets(const SftDataset& data, const std::vector<int64_t>& rows) {
  int64_t n = 0;
  for (int64_t r : rows) {
    const auto& m = data.examples[r].mask;
    for (size_t t = 1; t < m.size(); ++t) n += m[t];
  }
  return n;
}

Batch collate(const SftDataset& data, const std::vector<int64_t>& rows, const torch::Device& device) {
  Batch b;
  if (rows.empty()) return b;
  int64_t T = 0;
  for (int64_t r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(data.examples[r].ids.size()));
  const int64_t B = static_cast<int64_t>(rows.size());
  torch::Tensor ids = torch::zeros({B, T}, torch::kInt64);
  torch::Tensor mask = torch::zeros({B, T}, torch::kFloat32);
  auto ia = ids.accessor<int64_t, 2>();
  auto ma = mask.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const SftExample& e = data.examples[rows[i]];
    for (size_t t = 0; t < e.ids.size(); ++t) {
      ia[i][t] = e.ids[t];
      ma[i][t] = t > 0 && e.mask[t] ? 1.0f : 0.0f;
    }
    b.lengths.push_back(static_cast<int64_t>(e.ids.size()));
    b.tokens += static_cast<int64_t>(e.ids.size());
  }
  b.targets = count_targets(data, rows);
  b.ids = ids.to(device);
  b.mask = mask.to(device);
  return b;
}

namespace {

// Logits at the positions that predict a target: (N, V) float32, and the targets (N).
std::pair<torch::Tensor, torch::Tensor> target_logits(const torch::Tensor& logits, const Batch& b) {
  const int64_t T = b.ids.size(1), V = logits.size(-1);
  torch::Tensor w = b.mask.narrow(1, 1, T - 1).reshape({-1});                 // (B*(T-1))
  torch::Tensor lg = logits.narrow(1, 0, T - 1).reshape({-1, V});             // (B*(T-1), V)
  torch::Tensor tgt = b.ids.narrow(1, 1, T - 1).reshape({-1});                // (B*(T-1))
  if (b.targets < w.numel()) {  // keep the target positions only: (N, V), (N)
    torch::Tensor idx = w.nonzero().squeeze(1);
    lg = lg.index_select(0, idx);
    tgt = tgt.index_select(0, idx);
  }
  // Losses in float32 at least (bf16 logits would round the log-softmax); float64 stays (tests).
  return {lg.scalar_type() == torch::kFloat64 ? lg : lg.to(torch::kFloat32), tgt};
}

}  // namespace

torch::Tensor sft_loss_sum(const CausalLM& model, const Batch& b, const ForwardArgs& args) {
  torch::Tensor logits = model.forward(b.ids, args);  // (B, T, V)
  auto [lg, tgt] = target_logits(logits, b);
  return torch::nn::functional::cross_entropy(
      lg, tgt, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

torch::Tensor kl_sum(const CausalLM& model, const Batch& b, const ForwardArgs& args, const ForwardArgs& ref_args) {
  torch::Tensor ref_lp;
  {
    torch::NoGradGuard no_grad;
    ref_lp = torch::log_softmax(target_logits(model.forward(b.ids, ref_args), b).first, -1);  // (N, V)
  }
  torch::Tensor lp = torch::log_softmax(target_logits(model.forward(b.ids, args), b).first, -1);
  return (ref_lp.exp() * (ref_lp - lp)).sum();
}

}  // namespace emlab
