// Fused softmax cross-entropy over bf16 logits (see model/cross_entropy_rows.h).
#include "model/cross_entropy_rows.h"

#if defined(__x86_64__)

#include <cmath>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

#include "model/avx512.h"

namespace emlab::model_detail {

namespace {

// One row: -log softmax(x)[t], and g = softmax(x) - onehot(t) rounded to bf16. e: V floats of
// work space (the exps between the second and third pass).
EMLAB_AVX512 double row_cross_entropy(const uint16_t* x, int64_t V, int64_t t, uint16_t* g, float* e) {
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < V; j += 16) {
    const __mmask16 m = lanes16(V - j);
    mx = _mm512_mask_max_ps(mx, m, mx, load16_as_f32<true>(x, j, m));
  }
  const float top = _mm512_reduce_max_ps(mx);
  const __m512 top16 = _mm512_set1_ps(top);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < V; j += 16) {
    const __mmask16 m = lanes16(V - j);
    const __m512 ej = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(load16_as_f32<true>(x, j, m), top16)));
    _mm512_mask_storeu_ps(e + j, m, ej);
    sum = _mm512_add_ps(sum, ej);
  }
  const float total = _mm512_reduce_add_ps(sum);
  const __m512 inv = _mm512_set1_ps(1.0f / total);
  for (int64_t j = 0; j < V; j += 16) {
    const __mmask16 m = lanes16(V - j);
    __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, e + j), inv);
    if (t >= j && t < j + 16) {
      alignas(64) float lane[16];
      _mm512_store_ps(lane, p);
      lane[t - j] -= 1.0f;
      p = _mm512_load_ps(lane);
    }
    store16_from_f32<true>(g, j, p, m);
  }
  // -log(e_t / total) with e_t = exp(x_t - top): log(total) - (x_t - top).
  const float xt = widen16(_mm256_set1_epi16(static_cast<short>(x[t])))[0];
  return static_cast<double>(std::log(total)) - static_cast<double>(xt - top);
}

}  // namespace

torch::Tensor cross_entropy_rows_bf16(const torch::Tensor& logits, const torch::Tensor& targets, torch::Tensor* grad) {
  if (!cpu_has_avx512() || logits.scalar_type() != torch::kBFloat16 || !logits.device().is_cpu() ||
      logits.dim() != 2 || !logits.is_contiguous() || targets.dim() != 1 || targets.size(0) != logits.size(0) ||
      targets.scalar_type() != torch::kInt64 || !targets.device().is_cpu())
    return {};
  const int64_t n = logits.size(0), V = logits.size(1);
  const torch::Tensor tg = targets.contiguous();
  const int64_t* tp = tg.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (tp[i] < 0 || tp[i] >= V) return {};
  torch::Tensor g = torch::empty({n, V}, logits.options());
  std::vector<double> row_loss(static_cast<size_t>(n));
  const auto* x = reinterpret_cast<const uint16_t*>(logits.data_ptr<at::BFloat16>());
  auto* gp = reinterpret_cast<uint16_t*>(g.data_ptr<at::BFloat16>());
  at::parallel_for(0, n, 16, [&](int64_t a, int64_t b) {
    std::vector<float> e(static_cast<size_t>(V));
    for (int64_t i = a; i < b; ++i) row_loss[i] = row_cross_entropy(x + i * V, V, tp[i], gp + i * V, e.data());
  });
  double total = 0;  // in row order, whatever the threads
  for (double l : row_loss) total += l;
  *grad = g;
  return torch::tensor(static_cast<float>(total), torch::TensorOptions().dtype(torch::kFloat32));
}

}  // namespace emlab::model_detail

#else  // not x86-64: the caller keeps torch's ops

namespace emlab::model_detail {
torch::Tensor cross_entropy_rows_bf16(const torch::Tensor&, const torch::Tensor&, torch::Tensor*) { return {}; }
}  // namespace emlab::model_detail

#endif
