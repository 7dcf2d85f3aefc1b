// silu(gate) * up fused, with its own backward (see swiglu.h).
#include "model/swiglu.h"

#include "model/avx512.h"

#if defined(__x86_64__)

#include <ATen/Parallel.h>

namespace emlab::model_detail {

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per parallel task

// 1 / (1 + exp(-g)).
EMLAB_AVX512 inline __m512 sigmoid16(__m512 g) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

// out[i] = g s(g) u over [lo, hi).
template <bool BF16>
EMLAB_AVX512 void forward_range(const void* g, const void* u, void* out, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; i += 16) {
    const __mmask16 m = lanes16(hi - i);
    const __m512 gv = load16_as_f32<BF16>(g, i, m);
    store16_from_f32<BF16>(out, i, _mm512_mul_ps(_mm512_mul_ps(gv, sigmoid16(gv)), load16_as_f32<BF16>(u, i, m)), m);
  }
}

// du = d g s(g); dg = d u (s + g s (1 - s)), the derivative of g s(g), over [lo, hi).
template <bool BF16>
EMLAB_AVX512 void backward_range(const void* d, const void* g, const void* u, void* dg, void* du, int64_t lo,
                                 int64_t hi) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = lo; i < hi; i += 16) {
    const __mmask16 m = lanes16(hi - i);
    const __m512 dv = load16_as_f32<BF16>(d, i, m), gv = load16_as_f32<BF16>(g, i, m), uv = load16_as_f32<BF16>(u, i, m);
    const __m512 s = sigmoid16(gv);
    const __m512 gs = _mm512_mul_ps(gv, s);
    store16_from_f32<BF16>(du, i, _mm512_mul_ps(dv, gs), m);
    const __m512 ds = _mm512_fmadd_ps(gs, _mm512_sub_ps(one, s), s);
    store16_from_f32<BF16>(dg, i, _mm512_mul_ps(_mm512_mul_ps(dv, uv), ds), m);
  }
}

class SwigluFn : public torch::autograd::Function<SwigluFn> {
 public:
  // gate, up: contiguous, same shape, float32 or bf16.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gate,
                               const torch::Tensor& up) {
    torch::Tensor out = torch::empty_like(gate);
    const bool bf16 = gate.scalar_type() == torch::kBFloat16;
    const void *g = gate.data_ptr(), *u = up.data_ptr();
    void* o = out.data_ptr();
    at::parallel_for(0, gate.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      if (bf16) forward_range<true>(g, u, o, lo, hi);
      else forward_range<false>(g, u, o, lo, hi);
    });
    ctx->save_for_backward({gate, up});
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &gate = saved[0], &up = saved[1];
    const torch::Tensor d = grads[0].to(gate.scalar_type()).contiguous();
    torch::Tensor dg = torch::empty_like(gate), du = torch::empty_like(up);
    const bool bf16 = gate.scalar_type() == torch::kBFloat16;
    const void *dp = d.data_ptr(), *g = gate.data_ptr(), *u = up.data_ptr();
    void *dgp = dg.data_ptr(), *dup = du.data_ptr();
    at::parallel_for(0, gate.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      if (bf16) backward_range<true>(dp, g, u, dgp, dup, lo, hi);
      else backward_range<false>(dp, g, u, dgp, dup, lo, hi);
    });
    return {dg, du};
  }
};

}  // namespace

void swiglu_range(const void* gate, const void* up, void* out, int64_t n, bool bf16) {
  if (bf16) forward_range<true>(gate, up, out, 0, n);
  else forward_range<false>(gate, up, out, 0, n);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  const auto dtype = gate.scalar_type();
  if (!gate.device().is_cpu() || !up.device().is_cpu() || !cpu_has_avx512()) return {};
  if ((dtype != torch::kFloat32 && dtype != torch::kBFloat16) || up.scalar_type() != dtype) return {};
  if (gate.sizes() != up.sizes()) return {};
  return SwigluFn::apply(gate.contiguous(), up.contiguous());
}

}  // namespace emlab::model_detail

#else  // not x86-64: the caller keeps torch's ops

namespace emlab::model_detail {
torch::Tensor swiglu(const torch::Tensor&, const torch::Tensor&) { return {}; }
}  // namespace emlab::model_detail

#endif
