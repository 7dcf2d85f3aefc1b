// Token selection: temperature, top-k, top-p, then inverse-CDF sampling with given uniforms
// (searchsorted with right=true never picks a zero-probability token).
//
// No full sort of the vocabulary where it can be avoided: top-k takes the k largest logits (topk);
// top-p alone takes the largest K candidates, K = 64, then 1024, until every row's candidates hold
// at least the mass p (then every later token has mass p before it and is dropped, as after a full
// sort), with probabilities from the softmax over the whole vocabulary; a wider nucleus falls back
// to sorting the whole vocabulary (the full-sort path, unchanged: its extra cost is the two rounds,
// ~1 of 13 ms per row at V = 151936). Same picks as the full sort for the same uniforms, up to
// float32 rounding of the mass at a boundary (bench/sampler_bench.cpp measures both).
#include <algorithm>

#include "emlab/generator.h"

namespace emlab {

namespace {

constexpr int64_t kFirstCandidates = 64;  // top-p: candidates of the first round
constexpr int64_t kGrowth = 16;           // candidates x16 per round; the whole vocabulary above V/16

// Inverse-CDF draw: probs (B, K) (unnormalised; zeros are never drawn), u (B, 1) uniforms ->
// tokens (B): the candidates' ids from `order` (B, K), or the column itself when order is
// undefined (the whole vocabulary in token order).
torch::Tensor draw(const torch::Tensor& probs, const torch::Tensor& order, const torch::Tensor& u) {
  torch::Tensor cdf = probs.cumsum(-1);
  const int64_t K = cdf.size(-1);
  torch::Tensor pick = torch::searchsorted(cdf, u * cdf.narrow(-1, K - 1, 1), /*out_int32=*/false, /*right=*/true)
                           .clamp_max(K - 1);  // (B, 1)
  return (order.defined() ? order.gather(-1, pick) : pick).squeeze(-1);
}

// Nucleus filter on descending probabilities (B, K): zero every candidate with mass >= p before it
// (the first always stays: p = 0 is greedy).
torch::Tensor nucleus(const torch::Tensor& probs, double top_p) {
  torch::Tensor before = probs.cumsum(-1) - probs;  // mass strictly before each candidate
  torch::Tensor drop = before >= top_p;             // (B, K)
  drop.narrow(-1, 0, 1).fill_(false);
  return probs.masked_fill(drop, 0.0);
}

}  // namespace

torch::Tensor sample_tokens(const torch::Tensor& logits, const SampleOptions& options, const torch::Tensor& uniform) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = logits.to(torch::kFloat32);  // (B, V)
  if (options.temperature <= 0.0) return x.argmax(-1);
  x = x / options.temperature;
  const int64_t V = x.size(-1);
  const bool use_top_k = options.top_k > 0 && options.top_k < V;
  const bool use_top_p = options.top_p < 1.0;
  torch::Tensor u = uniform.to(x.device(), torch::kFloat32).unsqueeze(-1);  // (B, 1)
  if (!use_top_k && !use_top_p) return draw(torch::softmax(x, -1), torch::Tensor(), u);
  if (use_top_k) {  // the k largest, renormalised among themselves; then top-p within them
    auto [sx, order] = x.topk(options.top_k, -1, /*largest=*/true, /*sorted=*/true);  // (B, k)
    torch::Tensor probs = torch::softmax(sx, -1);
    return draw(use_top_p ? nucleus(probs, options.top_p) : probs, order, u);
  }
  // Top-p alone: candidates by rounds, with probabilities of the whole-vocabulary softmax; a row
  // leaves the rounds as soon as its candidates hold the mass p.
  torch::Tensor mx = std::get<0>(x.max(-1, /*keepdim=*/true));  // (B, 1)
  torch::Tensor total = (x - mx).exp_().sum(-1, /*keepdim=*/true);  // (B, 1)
  torch::Tensor out = torch::empty({x.size(0)}, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
  torch::Tensor rows = torch::arange(x.size(0), out.options());  // (R) rows still open
  for (int64_t K = std::min(V, kFirstCandidates); K < V; K = kGrowth * K > V / kGrowth ? V : kGrowth * K) {
    auto [sx, order] = x.topk(K, -1, /*largest=*/true, /*sorted=*/true);  // (R, K)
    torch::Tensor probs = (sx - mx).exp_().div_(total);
    torch::Tensor done = probs.sum(-1).ge(options.top_p);  // (R)
    const int64_t n_done = done.sum().item<int64_t>();
    if (n_done == rows.size(0)) return out.index_put_({rows}, draw(nucleus(probs, options.top_p), order, u));
    if (n_done == 0) continue;
    torch::Tensor d = done.nonzero().squeeze(1), open = done.logical_not().nonzero().squeeze(1);
    out.index_put_({rows.index_select(0, d)}, draw(nucleus(probs.index_select(0, d), options.top_p),
                                                   order.index_select(0, d), u.index_select(0, d)));
    rows = rows.index_select(0, open), x = x.index_select(0, open), u = u.index_select(0, open);
    mx = mx.index_select(0, open), total = total.index_select(0, open);
  }
  auto [sx, order] = x.sort(-1, /*descending=*/true);  // (R, V)
  return out.index_put_({rows}, draw(nucleus(torch::softmax(sx, -1), options.top_p), order, u));
}

}  // namespace emlab
