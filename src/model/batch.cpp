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
  torch::Tensor real = torch::zeros({B, T}, torch::kFloat32);
  auto ia = ids.accessor<int64_t, 2>();
  auto ma = mask.accessor<float, 2>();
  auto ra = real.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const SftExample& e = data.examples[rows[i]];
    for (size_t t = 0; t < e.ids.size(); ++t) {
      ia[i][t] = e.ids[t];
      ma[i][t] = t > 0 && e.mask[t] ? 1.0f : 0.0f;
      ra[i][t] = 1.0f;
    }
    b.lengths.push_back(static_cast<int64_t>(e.ids.size()));
    b.tokens += static_cast<int64_t>(e.ids.size());
  }
  b.targets = count_targets(data, rows);
  b.ids = ids.to(device);
  b.mask = mask.to(device);
  b.real = real.to(device);
  return b;
}

namespace {

// Losses in float32 at least (bf16 logits would round the log-softmax); float64 stays (tests).
torch::ScalarType loss_type(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// The rows of `per_position` (B, T, ...) at the positions that predict a target, (N, ...), and
// the targets (N): position t predicts ids[t + 1] where mask[t + 1] = 1.
std::pair<torch::Tensor, torch::Tensor> at_targets(const torch::Tensor& per_position, const Batch& b) {
  const int64_t T = b.ids.size(1);
  torch::Tensor w = b.mask.narrow(1, 1, T - 1).reshape({-1});                                   // (B*(T-1))
  std::vector<int64_t> shape = {-1};
  for (int64_t d = 2; d < per_position.dim(); ++d) shape.push_back(per_position.size(d));
  torch::Tensor rows = per_position.narrow(1, 0, T - 1).reshape(shape);                         // (B*(T-1), ...)
  torch::Tensor tgt = b.ids.narrow(1, 1, T - 1).reshape({-1});                                  // (B*(T-1))
  if (b.targets < w.numel()) {  // keep the target positions only
    torch::Tensor idx = w.nonzero().squeeze(1);
    rows = rows.index_select(0, idx.to(rows.device()));
    tgt = tgt.index_select(0, idx.to(tgt.device()));
  }
  return {rows, tgt.to(rows.device())};
}

// The final hidden states at the positions that predict a target, (N, C), and the targets (N).
std::pair<torch::Tensor, torch::Tensor> target_hidden(const CausalLM& model, const Batch& b, const ForwardArgs& args) {
  ForwardArgs a = args;
  a.hidden_only = true;
  // With padding, the real-token mask lets the model skip the padding (CausalLM::forward packs).
  if (!a.attention_mask.defined() && b.tokens < b.ids.numel()) a.attention_mask = b.real;
  return at_targets(model.forward(b.ids, a), b);
}

// Logits at the positions that predict a target: (N, V) in the loss type, and the targets (N). The
// head runs on those positions' hidden states only (not on prompts and padding).
std::pair<torch::Tensor, torch::Tensor> target_logits(const CausalLM& model, const Batch& b, const ForwardArgs& args) {
  auto [hs, tgt] = target_hidden(model, b, args);  // (N, C), (N)
  torch::Tensor lg = model.logits(hs);               // (N, V)
  return {lg.to(loss_type(lg)), tgt};
}

// Sum over rows of -log softmax(h W^T)[target], computed chunk by chunk: forward keeps only the
// sum; backward recomputes each chunk's logits for dh = (p - onehot) W and dW = (p - onehot)^T h.
class ChunkedHeadCrossEntropy : public torch::autograd::Function<ChunkedHeadCrossEntropy> {
 public:
  // h (N, C), w (V, C), targets (N) int64 -> float32 scalar.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& w,
                               const torch::Tensor& targets, int64_t chunk) {
    ctx->save_for_backward({h, w, targets});
    ctx->saved_data["chunk"] = chunk;
    const auto acc = loss_type(h);
    torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(acc).device(h.device()));
    const int64_t N = h.size(0);
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      torch::Tensor lg = torch::matmul(h.narrow(0, s, n), w.t()).to(acc);  // (n, V)
      total += torch::nn::functional::cross_entropy(
          lg, targets.narrow(0, s, n), torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    }
    return total;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &h = saved[0], &w = saved[1], &targets = saved[2];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto acc = loss_type(h);
    const torch::Tensor g = grads[0].to(acc);
    const bool want_h = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    torch::Tensor dh = want_h ? torch::empty_like(h) : torch::Tensor();
    torch::Tensor dw = want_w ? torch::zeros(w.sizes(), w.options().dtype(acc)) : torch::Tensor();
    const int64_t N = h.size(0);
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      const torch::Tensor hc = h.narrow(0, s, n);
      torch::Tensor p = torch::softmax(torch::matmul(hc, w.t()).to(acc), -1);  // (n, V)
      p.scatter_add_(1, targets.narrow(0, s, n).unsqueeze(1), torch::full({n, 1}, -1.0f, p.options()));
      p.mul_(g);
      if (want_h) dh.narrow(0, s, n).copy_(torch::matmul(p.to(w.scalar_type()), w));
      if (want_w) dw.add_(torch::matmul(p.t(), hc.to(acc)));
    }
    return {dh, want_w ? dw.to(w.scalar_type()) : torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

constexpr int64_t kChunkRows = 1024;                 // target positions per head chunk
constexpr double kChunkAboveBytes = 256.0 * (1 << 20);  // chunk when the float32 logits would be larger

}  // namespace

torch::Tensor sft_loss_sum(const CausalLM& model, const Batch& b, const ForwardArgs& args, int64_t chunk_rows) {
  const int64_t V = model.config().vocab_size;
  const bool big = 4.0 * static_cast<double>(b.targets) * static_cast<double>(V) > kChunkAboveBytes;
  TORCH_CHECK(!args.last_logits_only, "sft_loss_sum: the loss needs every position's logits");
  if ((chunk_rows > 0 || (chunk_rows == 0 && big)) && !model.config().final_logit_softcapping) {
    auto [hs, tgt] = target_hidden(model, b, args);  // (N, C), (N)
    return ChunkedHeadCrossEntropy::apply(hs, model.head_weight(), tgt, chunk_rows > 0 ? chunk_rows : kChunkRows);
  }
  auto [lg, tgt] = target_logits(model, b, args);  // (N, V), (N)
  return torch::nn::functional::cross_entropy(
      lg, tgt, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

torch::Tensor kl_sum(const CausalLM& model, const Batch& b, const ForwardArgs& args, const ForwardArgs& ref_args) {
  torch::Tensor ref_lp;
  {
    torch::NoGradGuard no_grad;
    ref_lp = torch::log_softmax(target_logits(model, b, ref_args).first, -1);  // (N, V)
  }
  torch::Tensor lp = torch::log_softmax(target_logits(model, b, args).first, -1);
  return (ref_lp.exp() * (ref_lp - lp)).sum();
}

}  // namespace emlab
