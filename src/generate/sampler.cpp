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
//
// Without top-k/top-p on the CPU, the draw over the whole vocabulary walks each row once instead
// of materialising its cumulative sum (a (B, V) tensor) and searching it: the same sums in the same
// order, so the same picks (draw_whole_vocabulary).
//
// Greedy (temperature 0) on the CPU with AVX-512: each row's first largest value found in place, in
// float32 or bf16, without torch's copy to float32 and its argmax loop (greedy_rows; same picks).
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "emlab/generator.h"
#include "model/avx512.h"

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

// draw(probs, {}, u) for probs (B, V) float32 and u (B, 1) float32, contiguous on the CPU, without
// the (B, V) cumulative sum: torch's cumsum adds a row's float32 values in order into a double,
// storing each partial sum rounded to float32, and searchsorted(right) picks the first position
// whose stored sum exceeds u times the last (clamped to V - 1). Here one pass adds the row in the
// same order, keeping the running double at every kMark-th position; then only the block holding
// the pick is added again. Rows in parallel. Undefined where a row's total is not finite (the
// caller keeps torch's ops).
torch::Tensor draw_whole_vocabulary(const torch::Tensor& probs, const torch::Tensor& u) {
  constexpr int64_t kMark = 1024;  // positions per block
  const int64_t B = probs.size(0), V = probs.size(1);
  const int64_t blocks = (V + kMark - 1) / kMark;
  torch::Tensor out = torch::empty({B}, torch::kLong);
  const float* p = probs.data_ptr<float>();
  const float* up = u.data_ptr<float>();
  int64_t* op = out.data_ptr<int64_t>();
  std::atomic<bool> finite{true};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> marks(static_cast<size_t>(blocks));  // the sum before each block
    for (int64_t b = b0; b < b1; ++b) {
      const float* row = p + b * V;
      double acc = 0;
      for (int64_t m = 0; m < blocks; ++m) {
        marks[m] = acc;
        const int64_t end = std::min(V, (m + 1) * kMark);
        for (int64_t i = m * kMark; i < end; ++i) acc += row[i];
      }
      const float last = static_cast<float>(acc);
      if (!std::isfinite(last)) {
        finite = false;
        continue;
      }
      const float target = up[b] * last;  // as torch's u * cdf[V - 1] in float32
      // The first block whose end's stored sum exceeds the target (stored sums never decrease).
      int64_t m = 0;
      while (m < blocks && !(static_cast<float>(m + 1 < blocks ? marks[m + 1] : acc) > target)) ++m;
      int64_t pick = V - 1;  // none exceeds it: searchsorted gives V, clamped
      if (m < blocks) {
        double s = marks[m];
        for (int64_t i = m * kMark, end = std::min(V, (m + 1) * kMark); i < end; ++i) {
          s += row[i];
          if (static_cast<float>(s) > target) {
            pick = i;
            break;
          }
        }
      }
      op[b] = pick;
    }
  });
  if (!finite) return {};
  return out;
}

#if defined(__x86_64__)
// The first index of the largest of a row's n values (float32, or bf16 as their bits), a NaN
// counting as the largest (as torch's argmax): one pass for the largest value and whether there is
// a NaN, one (from cache) for its first position.
template <bool BF16>
EMLAB_AVX512 int64_t greedy_row(const void* row, int64_t n) {
  using model_detail::lanes16;
  using model_detail::load16_as_f32;
  __m512 mx = _mm512_set1_ps(-INFINITY);
  __mmask16 nan = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    const __m512 v = load16_as_f32<BF16>(row, i, m);
    nan |= _mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q);
    mx = _mm512_mask_max_ps(mx, m, mx, v);
  }
  const __m512 best = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    const __m512 v = load16_as_f32<BF16>(row, i, m);
    const __mmask16 hit = nan ? _mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q)
                              : _mm512_mask_cmp_ps_mask(m, v, best, _CMP_EQ_OQ);
    if (hit) return i + __builtin_ctz(hit);
  }
  return 0;  // not reached: the largest value is in the row
}
#endif

// argmax(-1) of x (B, V) float32 or bf16, contiguous on a CPU with AVX-512: rows in parallel.
// Undefined otherwise (the caller keeps torch's ops).
torch::Tensor greedy_rows(const torch::Tensor& x) {
#if defined(__x86_64__)
  const auto dt = x.scalar_type();
  if (!x.device().is_cpu() || x.dim() != 2 || !x.is_contiguous() || x.size(1) == 0 ||
      (dt != torch::kFloat32 && dt != torch::kBFloat16) || !model_detail::cpu_has_avx512())
    return {};
  const int64_t B = x.size(0), V = x.size(1);
  const bool bf16 = dt == torch::kBFloat16;
  const auto* base = static_cast<const char*>(x.data_ptr());
  torch::Tensor out = torch::empty({B}, torch::kLong);
  int64_t* op = out.data_ptr<int64_t>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const void* row = base + b * V * x.element_size();
      op[b] = bf16 ? greedy_row<true>(row, V) : greedy_row<false>(row, V);
    }
  });
  return out;
#else
  (void)x;
  return {};
#endif
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
  if (options.temperature <= 0.0) {
    if (torch::Tensor t = greedy_rows(logits); t.defined()) return t;
    return logits.to(torch::kFloat32).argmax(-1);
  }
  torch::Tensor x = logits.to(torch::kFloat32);  // (B, V)
  if (options.temperature != 1.0) x = x / options.temperature;  // x / 1 is x
  const int64_t V = x.size(-1);
  const bool use_top_k = options.top_k > 0 && options.top_k < V;
  const bool use_top_p = options.top_p < 1.0;
  torch::Tensor u = uniform.to(x.device(), torch::kFloat32).unsqueeze(-1);  // (B, 1)
  if (!use_top_k && !use_top_p) {
    torch::Tensor probs = torch::softmax(x, -1);  // (B, V)
    if (probs.device().is_cpu() && probs.dim() == 2 && probs.is_contiguous())
      if (torch::Tensor t = draw_whole_vocabulary(probs, u.contiguous()); t.defined()) return t;
    return draw(probs, torch::Tensor(), u);
  }
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
