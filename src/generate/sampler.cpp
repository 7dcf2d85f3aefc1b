// Token selection: temperature, top-k, top-p, then inverse-CDF sampling with given uniforms
// (searchsorted with right=true never picks a zero-probability token).
#include "emlab/generator.h"

namespace emlab {

torch::Tensor sample_tokens(const torch::Tensor& logits, const SampleOptions& options, const torch::Tensor& uniform) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = logits.to(torch::kFloat32);  // (B, V)
  if (options.temperature <= 0.0) return x.argmax(-1);
  x = x / options.temperature;
  const int64_t V = x.size(-1);
  const bool use_top_k = options.top_k > 0 && options.top_k < V;
  const bool use_top_p = options.top_p < 1.0;
  torch::Tensor u = uniform.to(x.device(), torch::kFloat32).unsqueeze(-1);  // (B, 1)
  if (!use_top_k && !use_top_p) {
    torch::Tensor probs = torch::softmax(x, -1);
    torch::Tensor cdf = probs.cumsum(-1);  // (B, V)
    torch::Tensor idx = torch::searchsorted(cdf, u * cdf.narrow(-1, V - 1, 1), /*out_int32=*/false, /*right=*/true);
    return idx.squeeze(-1).clamp_max(V - 1);
  }
  // Work in descending order: top-k keeps the first k, top-p the smallest prefix with mass >= p.
  auto sorted = x.sort(-1, /*descending=*/true);
  torch::Tensor sx = std::get<0>(sorted), order = std::get<1>(sorted);  // (B, V)
  if (use_top_k) sx = sx.narrow(-1, 0, options.top_k), order = order.narrow(-1, 0, options.top_k);
  torch::Tensor probs = torch::softmax(sx, -1);
  if (use_top_p) {
    torch::Tensor before = probs.cumsum(-1) - probs;  // mass strictly before each candidate
    torch::Tensor drop = before >= options.top_p;  // (B, K)
    drop.narrow(-1, 0, 1).fill_(false);              // the first candidate always stays (top_p = 0: greedy)
    probs = probs.masked_fill(drop, 0.0);
  }
  torch::Tensor cdf = probs.cumsum(-1);
  const int64_t K = cdf.size(-1);
  torch::Tensor pick = torch::searchsorted(cdf, u * cdf.narrow(-1, K - 1, 1), /*out_int32=*/false, /*right=*/true).clamp_max(K - 1);  // (B, 1)
  return order.gather(-1, pick).squeeze(-1);
}

}  // namespace emlab
