// Padded micro-batches (see emlab/batch.h).
#include "emlab/batch.h"

#include <algorithm>

#include "model/cross_entropy_rows.h"

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

// The positions that predict a target, as flat indices b * T + t (N), row-major, and the targets
// (N): position t predicts ids[t + 1] where mask[t + 1] = 1.
std::pair<torch::Tensor, torch::Tensor> target_positions(const Batch& b) {
  const int64_t T = b.ids.size(1);
  torch::Tensor bt = b.mask.narrow(1, 1, T - 1).nonzero();                 // (N, 2): (b, t)
  torch::Tensor pos = bt.select(1, 0) * T + bt.select(1, 1);               // (N)
  torch::Tensor tgt = b.ids.reshape({-1}).index_select(0, (pos + 1).to(b.ids.device()));  // (N)
  return {pos, tgt};
}

// The final hidden states at the positions that predict a target, (N, C), and the targets (N).
// The model runs its last layer's o_proj and MLP on those positions only (ForwardArgs).
std::pair<torch::Tensor, torch::Tensor> target_hidden(const CausalLM& model, const Batch& b, const ForwardArgs& args) {
  ForwardArgs a = args;
  a.hidden_only = true;
  // With padding, the real-token mask lets the model skip the padding (CausalLM::forward packs).
  if (!a.attention_mask.defined() && b.tokens < b.ids.numel()) a.attention_mask = b.real;
  auto [pos, tgt] = target_positions(b);
  a.output_positions = pos;
  torch::Tensor hs = model.forward(b.ids, a);  // (N, C)
  return {hs, tgt.to(hs.device())};
}

// Logits at the positions that predict a target: (N, V) in the loss type, and the targets (N). The
// head runs on those positions' hidden states only (not on prompts and padding).
std::pair<torch::Tensor, torch::Tensor> target_logits(const CausalLM& model, const Batch& b, const ForwardArgs& args) {
  auto [hs, tgt] = target_hidden(model, b, args);  // (N, C), (N)
  torch::Tensor lg = model.logits(hs);               // (N, V)
  return {lg.to(loss_type(lg)), tgt};
}

// Sum over rows of -log softmax(h W^T)[target], chunk by chunk, so that the (N, V) logits never
// exist at once. The loss is a scalar, so its gradients are those of the sum times the incoming
// gradient: when they are wanted, each chunk's are computed in the forward, while its logits are at
// hand (dh = G W, dW = G^T h with G = softmax - onehot), and backward only scales them. No logits
// are kept for backward and none are recomputed.
class HeadCrossEntropy : public torch::autograd::Function<HeadCrossEntropy> {
 public:
  // h (N, C), w (V, C), targets (N) int64 -> scalar in the loss type. want_h / want_w: compute
  // the gradients into h / w (the caller knows whether autograd will ask for them).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& w,
                               const torch::Tensor& targets, int64_t chunk, bool want_h, bool want_w) {
    const auto acc = loss_type(h);
    torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(acc).device(h.device()));
    // Both gradients are kept in the loss type until backward has scaled them (bf16 would round the scale).
    torch::Tensor dh = want_h ? torch::empty(h.sizes(), h.options().dtype(acc)) : torch::Tensor();  // (N, C)
    torch::Tensor dw;  // (V, C), from the first chunk on
    const int64_t N = h.size(0);
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      const torch::Tensor hc = h.narrow(0, s, n);                     // (n, C)
      const torch::Tensor tc = targets.narrow(0, s, n);               // (n)
      const torch::Tensor logits = torch::matmul(hc, w.t());           // (n, V)
      torch::Tensor g;  // the logits' gradient, softmax - onehot, in the products' type
      // bf16 logits with gradients wanted: one fused pass per row (float32 keeps torch's ops).
      const torch::Tensor fused =
          want_h || want_w ? model_detail::cross_entropy_rows_bf16(logits, tc, &g) : torch::Tensor();
      if (fused.defined()) {
        total += fused.to(total.options());
      } else {
        torch::Tensor lp = torch::log_softmax(logits.to(acc), 1);  // (n, V)
        total -= lp.gather(1, tc.unsqueeze(1)).sum();
        if (!want_h && !want_w) continue;
        lp.exp_().scatter_add_(1, tc.unsqueeze(1), torch::full({n, 1}, -1.0, lp.options()));
        g = lp.to(w.scalar_type());
      }
      if (want_h) dh.narrow(0, s, n).copy_(torch::matmul(g, w));
      if (want_w) {
        torch::Tensor part = torch::matmul(g.t(), hc);  // (V, n) x (n, C)
        if (dw.defined()) dw.add_(part);
        else dw = part.to(acc);
      }
    }
    ctx->save_for_backward({dh, dw});
    ctx->saved_data["h_type"] = h.scalar_type();
    ctx->saved_data["w_type"] = w.scalar_type();
    return total;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &dh = saved[0], &dw = saved[1];
    const torch::Tensor& g = grads[0];  // () in the loss type
    return {dh.defined() ? (dh * g).to(ctx->saved_data["h_type"].toScalarType()) : torch::Tensor(),
            dw.defined() ? (dw * g).to(ctx->saved_data["w_type"].toScalarType()) : torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

constexpr int64_t kChunkRows = 1024;  // target positions per head chunk

}  // namespace

torch::Tensor sft_loss_sum(const CausalLM& model, const Batch& b, const ForwardArgs& args, int64_t chunk_rows) {
  TORCH_CHECK(!args.last_logits_only, "sft_loss_sum: the loss needs every position's logits");
  if (chunk_rows >= 0 && !model.config().final_logit_softcapping) {
    auto [hs, tgt] = target_hidden(model, b, args);  // (N, C), (N)
    const torch::Tensor& w = model.head_weight();
    const bool grad = torch::GradMode::is_enabled();
    return HeadCrossEntropy::apply(hs, w, tgt, chunk_rows > 0 ? chunk_rows : kChunkRows, grad && hs.requires_grad(),
                                   grad && w.requires_grad());
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
