// AdamW's update, with torch ops and fused (see adamw_update.h). Compiled with -ffp-contract=off
// (CMakeLists.txt): the products and sums that torch rounds separately stay separate here.
#include "train/adamw_update.h"

#include <cmath>
#include <initializer_list>

#include "model/avx512.h"

namespace emlab::train_detail {

void adamw_update_torch(torch::Tensor& p, torch::Tensor& m, torch::Tensor& v, const torch::Tensor& g,
                        const AdamWUpdate& u) {
  if (u.decay != 1.0) p.mul_(u.decay);
  m.mul_(u.beta1).add_(g, 1.0 - u.beta1);
  v.mul_(u.beta2).addcmul_(g, g, 1.0 - u.beta2);
  torch::Tensor denom = (v.sqrt() / u.bc2_sqrt).add_(u.eps);
  p.addcdiv_(m, denom, -u.step_size);
}

}  // namespace emlab::train_detail

#if defined(__x86_64__)

#include <ATen/Parallel.h>

namespace emlab::train_detail {

namespace {

// Elements [lo, hi). Scalars as torch uses them on float32 tensors: rounded to float.
EMLAB_AVX512 void update_range(float* p, float* m, float* v, const float* g, int64_t lo, int64_t hi,
                               const AdamWUpdate& u) {
  const __m512 decay = _mm512_set1_ps(static_cast<float>(u.decay)), b1 = _mm512_set1_ps(static_cast<float>(u.beta1));
  const __m512 a1 = _mm512_set1_ps(static_cast<float>(1.0 - u.beta1)), b2 = _mm512_set1_ps(static_cast<float>(u.beta2));
  const __m512 a2 = _mm512_set1_ps(static_cast<float>(1.0 - u.beta2));
  const __m512 bc2 = _mm512_set1_ps(static_cast<float>(u.bc2_sqrt)), eps = _mm512_set1_ps(static_cast<float>(u.eps));
  const __m512 step = _mm512_set1_ps(static_cast<float>(-u.step_size));
  for (int64_t i = lo; i < hi; i += 16) {
    const __mmask16 k = model_detail::lanes16(hi - i);
    const __m512 G = _mm512_maskz_loadu_ps(k, g + i);
    __m512 P = _mm512_maskz_loadu_ps(k, p + i);
    if (u.decay != 1.0) P = _mm512_mul_ps(P, decay);
    // m.mul_(beta1).add_(g, 1 - beta1); v.mul_(beta2).addcmul_(g, g, 1 - beta2)
    const __m512 M = _mm512_fmadd_ps(G, a1, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, m + i), b1));
    const __m512 V = _mm512_fmadd_ps(_mm512_mul_ps(a2, G), G, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + i), b2));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(V), bc2), eps);
    P = _mm512_add_ps(P, _mm512_div_ps(_mm512_mul_ps(step, M), denom));  // addcdiv_
    _mm512_mask_storeu_ps(p + i, k, P);
    _mm512_mask_storeu_ps(m + i, k, M);
    _mm512_mask_storeu_ps(v + i, k, V);
  }
}

// The fused pass over contiguous float32 CPU tensors of one size (the caller checks).
void fused_pass(torch::Tensor& p, torch::Tensor& m, torch::Tensor& v, const torch::Tensor& g, const AdamWUpdate& u) {
  float *pp = p.data_ptr<float>(), *mp = m.data_ptr<float>(), *vp = v.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  at::parallel_for(0, p.numel(), 1 << 14, [&](int64_t lo, int64_t hi) { update_range(pp, mp, vp, gp, lo, hi, u); });
}

}  // namespace

bool adamw_fused_matches_torch() {
  static const bool matches = [] {
    if (!model_detail::cpu_has_avx512()) return false;
    // Values spread over magnitudes without drawing from torch's generator (a training run's
    // random stream stays as it was); a size with a partial 16-wide step; a step of tiny gradients.
    const int64_t n = 4099;
    const torch::Tensor i = torch::arange(n, torch::kFloat32);
    for (bool decay : {false, true}) {
      torch::Tensor p = torch::sin(i * 0.731f) * 2.0f, m = torch::zeros({n}), v = torch::zeros({n});
      torch::Tensor p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
      for (int step = 1; step <= 3; ++step) {
        const torch::Tensor g = torch::cos(i * (0.37f * step)) * torch::exp(torch::sin(i * 1.3f) * 6.0f) *
                                (step == 2 ? 1e-7f : 1e-3f);
        AdamWUpdate u;
        u.decay = decay ? 1.0 - 3e-4 * 0.01 : 1.0;
        u.bc2_sqrt = std::sqrt(1.0 - std::pow(u.beta2, step));
        u.step_size = 3e-4 / (1.0 - std::pow(u.beta1, step));
        fused_pass(p, m, v, g, u);
        adamw_update_torch(p2, m2, v2, g, u);
      }
      if (!torch::equal(p, p2) || !torch::equal(m, m2) || !torch::equal(v, v2)) return false;
    }
    return true;
  }();
  return matches;
}

bool adamw_update_fused(torch::Tensor& p, torch::Tensor& m, torch::Tensor& v, const torch::Tensor& g,
                        const AdamWUpdate& u) {
  for (const torch::Tensor* t : std::initializer_list<const torch::Tensor*>{&p, &m, &v, &g})
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat32 || !t->is_contiguous() ||
        t->numel() != p.numel())
      return false;
  if (!adamw_fused_matches_torch()) return false;
  fused_pass(p, m, v, g, u);
  return true;
}

}  // namespace emlab::train_detail

#else  // not x86-64: torch's ops

namespace emlab::train_detail {
bool adamw_fused_matches_torch() { return false; }
bool adamw_update_fused(torch::Tensor&, torch::Tensor&, torch::Tensor&, const torch::Tensor&, const AdamWUpdate&) {
  return false;
}
}  // namespace emlab::train_detail

#endif
