// RMSNorm fused, with its own backward (see rms_norm.h).
#include "model/rms_norm.h"

#include "model/avx512.h"

#if defined(__x86_64__)

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace emlab::model_detail {

namespace {

constexpr int64_t kBlockRows = 64;  // rows per parallel task; the weight's gradient is summed per block

// 1 / sqrt(mean(x^2) + eps) of the row of C at x + o.
template <bool BF16>
EMLAB_AVX512 float row_rstd(const void* x, int64_t o, int64_t C, double eps) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) {
    const __m512 v = load16_as_f32<BF16>(x, o + c, lanes16(C - c));
    acc = _mm512_fmadd_ps(v, v, acc);
  }
  const float ms = _mm512_reduce_add_ps(acc) / static_cast<float>(C);
  return 1.0f / std::sqrt(ms + static_cast<float>(eps));
}

// Rows [r0, r1) of y = w * round(x r) (Llama) or x r (1 + w) (Gemma); rstd[r] = r (rstd may be null).
template <bool BF16>
EMLAB_AVX512 void forward_rows(const void* x, const void* w, void* y, float* rstd, int64_t C, double eps,
                               bool plus_one, int64_t r0, int64_t r1) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * C;
    const float rs = row_rstd<BF16>(x, o, C, eps);
    if (rstd) rstd[r] = rs;
    const __m512 rv = _mm512_set1_ps(rs);
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = lanes16(C - c);
      const __m512 n = _mm512_mul_ps(load16_as_f32<BF16>(x, o + c, m), rv);
      const __m512 wv = load16_as_f32<BF16>(w, c, m);
      __m512 out;
      if (plus_one) out = _mm512_mul_ps(n, _mm512_add_ps(one, wv));
      else out = _mm512_mul_ps(wv, BF16 ? round_bf16(n) : n);  // torch rounds n to x's dtype first
      store16_from_f32<BF16>(y, o + c, out, m);
    }
  }
}

// Rows [r0, r1) of dx = r (dn - n mean(dn n)) with dn = dy w (or dy (1 + w)), and dw_part (C) +=
// dy n (n as the forward multiplied it).
template <bool BF16>
EMLAB_AVX512 void backward_rows(const void* dy, const void* x, const void* w, const float* rstd, void* dx,
                                float* dw_part, int64_t C, bool plus_one, int64_t r0, int64_t r1) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * C;
    const __m512 rv = _mm512_set1_ps(rstd[r]);
    __m512 dot = _mm512_setzero_ps();
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = lanes16(C - c);
      const __m512 n = _mm512_mul_ps(load16_as_f32<BF16>(x, o + c, m), rv);
      const __m512 wv = load16_as_f32<BF16>(w, c, m);
      const __m512 g = load16_as_f32<BF16>(dy, o + c, m);
      const __m512 dn = _mm512_mul_ps(g, plus_one ? _mm512_add_ps(one, wv) : wv);
      dot = _mm512_fmadd_ps(dn, n, dot);
      if (dw_part) {
        const __m512 nw = (!plus_one && BF16) ? round_bf16(n) : n;
        _mm512_mask_storeu_ps(dw_part + c, m, _mm512_fmadd_ps(g, nw, _mm512_maskz_loadu_ps(m, dw_part + c)));
      }
    }
    const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(dot) / static_cast<float>(C));
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = lanes16(C - c);
      const __m512 n = _mm512_mul_ps(load16_as_f32<BF16>(x, o + c, m), rv);
      const __m512 wv = load16_as_f32<BF16>(w, c, m);
      const __m512 dn = _mm512_mul_ps(load16_as_f32<BF16>(dy, o + c, m), plus_one ? _mm512_add_ps(one, wv) : wv);
      store16_from_f32<BF16>(dx, o + c, _mm512_mul_ps(rv, _mm512_fnmadd_ps(n, mean, dn)), m);
    }
  }
}

class RmsNormFn : public torch::autograd::Function<RmsNormFn> {
 public:
  // x (..., C) contiguous, w (C) contiguous, the same dtype (float32 or bf16).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               double eps, bool plus_one) {
    const int64_t C = x.size(-1), rows = x.numel() / C;
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor rstd = torch::empty({rows}, x.options().dtype(torch::kFloat32));
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const void *xp = x.data_ptr(), *wp = w.data_ptr();
    void* yp = y.data_ptr();
    float* rp = rstd.data_ptr<float>();
    at::parallel_for(0, rows, kBlockRows, [&](int64_t lo, int64_t hi) {
      if (bf16) forward_rows<true>(xp, wp, yp, rp, C, eps, plus_one, lo, hi);
      else forward_rows<false>(xp, wp, yp, rp, C, eps, plus_one, lo, hi);
    });
    ctx->save_for_backward({x, w, rstd});
    ctx->saved_data["plus_one"] = plus_one;
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1], &rstd = saved[2];
    const bool plus_one = ctx->saved_data["plus_one"].toBool();
    const bool want_w = ctx->needs_input_grad(1);
    const torch::Tensor dy = grads[0].to(x.scalar_type()).contiguous();
    const int64_t C = x.size(-1), rows = x.numel() / C;
    const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
    torch::Tensor dx = torch::empty_like(x);
    // One partial sum of the weight's gradient per block of rows, added in block order: the same
    // result for any thread count.
    std::vector<float> parts(want_w ? static_cast<size_t>(blocks * C) : 0, 0.0f);
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const void *dyp = dy.data_ptr(), *xp = x.data_ptr(), *wp = w.data_ptr();
    void* dxp = dx.data_ptr();
    const float* rp = rstd.data_ptr<float>();
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* part = want_w ? parts.data() + b * C : nullptr;
        const int64_t r0 = b * kBlockRows, r1 = std::min(rows, r0 + kBlockRows);
        if (bf16) backward_rows<true>(dyp, xp, wp, rp, dxp, part, C, plus_one, r0, r1);
        else backward_rows<false>(dyp, xp, wp, rp, dxp, part, C, plus_one, r0, r1);
      }
    });
    torch::Tensor dw;
    if (want_w) {
      dw = torch::zeros({C}, torch::kFloat32);
      float* d = dw.data_ptr<float>();
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t c = 0; c < C; ++c) d[c] += parts[b * C + c];
      dw = dw.to(w.scalar_type());
    }
    return {dx, dw, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void rms_norm_rows(const void* x, const void* w, void* y, int64_t rows, int64_t C, double eps, bool plus_one,
                   bool bf16) {
  if (bf16) forward_rows<true>(x, w, y, nullptr, C, eps, plus_one, 0, rows);
  else forward_rows<false>(x, w, y, nullptr, C, eps, plus_one, 0, rows);
}

torch::Tensor rms_norm_fused(const torch::Tensor& x, const torch::Tensor& w, double eps, bool plus_one) {
  const auto dtype = x.scalar_type();
  if (!x.device().is_cpu() || !w.device().is_cpu() || !cpu_has_avx512()) return {};
  if ((dtype != torch::kFloat32 && dtype != torch::kBFloat16) || w.scalar_type() != dtype) return {};
  if (x.dim() < 1 || w.dim() != 1 || w.size(0) != x.size(-1) || x.numel() == 0) return {};
  return RmsNormFn::apply(x.contiguous(), w.contiguous(), eps, plus_one);
}

}  // namespace emlab::model_detail

#else  // not x86-64: the caller keeps torch's ops

namespace emlab::model_detail {
torch::Tensor rms_norm_fused(const torch::Tensor&, const torch::Tensor&, double, bool) { return {}; }
}  // namespace emlab::model_detail

#endif
