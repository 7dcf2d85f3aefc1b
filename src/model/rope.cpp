// Rotary position embedding fused, with its own backward (see rope.h). Compiled with
// -ffp-contract=off (CMakeLists.txt): a product and a sum must stay two roundings, as in torch.
#include "model/rope.h"

#include "model/avx512.h"

#if defined(__x86_64__)

#include <ATen/Parallel.h>

namespace emlab::model_detail {

namespace {

// x * c + r * s with each operation rounded as torch's ops on this dtype round it: float32 each;
// bf16 each result rounded to bf16 (torch computes a bf16 op in float32 and rounds the result).
template <bool BF16>
EMLAB_AVX512 inline __m512 mul_add(__m512 x, __m512 c, __m512 r, __m512 s) {
  __m512 a = _mm512_mul_ps(x, c), b = _mm512_mul_ps(r, s);
  if constexpr (BF16) a = round_bf16(a), b = round_bf16(b);
  return _mm512_add_ps(a, b);
}

// -v, exactly as torch negates (the sign bit flipped).
EMLAB_AVX512 inline __m512 neg(__m512 v) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign));
}

// For rows [lo, hi) of x viewed as (N, H, D) with cos/sin (N, D) (one row per x row's position):
// forward (BACKWARD = false) out = x cos + rotate_half(x) sin, i.e. for i < D/2
//   out[i] = x[i] c[i] + (-x[i + D/2]) s[i],  out[i + D/2] = x[i + D/2] c[i + D/2] + x[i] s[i + D/2];
// backward (BACKWARD = true) its transpose for the gradient g:
//   dx[i] = g[i] c[i] + g[i + D/2] s[i + D/2],  dx[i + D/2] = g[i + D/2] c[i + D/2] + (-g[i]) s[i].
// (torch's backward: g c plus rotate_half's transpose of g s, whose rounding is that of g s.)
template <bool BF16, bool BACKWARD>
EMLAB_AVX512 void rope_rows(const void* x, const void* cos, const void* sin, void* out, int64_t lo, int64_t hi,
                            int64_t H, int64_t D) {
  const int64_t half = D / 2;
  for (int64_t n = lo; n < hi; ++n)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t row = (n * H + h) * D, cs = n * D;
      for (int64_t i = 0; i < half; i += 16) {
        const __mmask16 m = lanes16(half - i);
        const __m512 a = load16_as_f32<BF16>(x, row + i, m), b = load16_as_f32<BF16>(x, row + half + i, m);
        const __m512 c1 = load16_as_f32<BF16>(cos, cs + i, m), c2 = load16_as_f32<BF16>(cos, cs + half + i, m);
        const __m512 s1 = load16_as_f32<BF16>(sin, cs + i, m), s2 = load16_as_f32<BF16>(sin, cs + half + i, m);
        __m512 first, second;
        if constexpr (BACKWARD) {
          first = mul_add<BF16>(a, c1, b, s2);
          second = mul_add<BF16>(b, c2, neg(a), s1);
        } else {
          first = mul_add<BF16>(a, c1, neg(b), s1);
          second = mul_add<BF16>(b, c2, a, s2);
        }
        store16_from_f32<BF16>(out, row + i, first, m);
        store16_from_f32<BF16>(out, row + half + i, second, m);
      }
    }
}

// out = rope (or its transpose) of x (N, H, D) with cos/sin (N, D), all contiguous, one dtype.
torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool backward) {
  const int64_t D = x.size(-1), H = x.size(-2), N = x.numel() / (H * D);
  torch::Tensor out = torch::empty_like(x);
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  const void *xp = x.data_ptr(), *cp = cos.data_ptr(), *sp = sin.data_ptr();
  void* op = out.data_ptr();
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / (H * D));
  at::parallel_for(0, N, grain, [&](int64_t lo, int64_t hi) {
    if (bf16 && backward) rope_rows<true, true>(xp, cp, sp, op, lo, hi, H, D);
    else if (bf16) rope_rows<true, false>(xp, cp, sp, op, lo, hi, H, D);
    else if (backward) rope_rows<false, true>(xp, cp, sp, op, lo, hi, H, D);
    else rope_rows<false, false>(xp, cp, sp, op, lo, hi, H, D);
  });
  return out;
}

class RopeFn : public torch::autograd::Function<RopeFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return rotate(x, cos, sin, false);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor g = grads[0].to(saved[0].scalar_type()).contiguous();
    return {rotate(g, saved[0], saved[1], true), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void rope_heads(const void* x, const void* cos, const void* sin, void* out, int64_t H, int64_t D, bool bf16) {
  if (bf16) rope_rows<true, false>(x, cos, sin, out, 0, 1, H, D);
  else rope_rows<false, false>(x, cos, sin, out, 0, 1, H, D);
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto dt = x.scalar_type();
  if (!cpu_has_avx512() || !x.device().is_cpu() || !cos.device().is_cpu() || !sin.device().is_cpu()) return {};
  if (dt != torch::kFloat32 && dt != torch::kBFloat16) return {};
  if (cos.scalar_type() != dt || sin.scalar_type() != dt) return {};
  if (cos.requires_grad() || sin.requires_grad()) return {};
  const int64_t n = x.dim();
  if (n < 2 || x.size(-1) % 2 != 0 || cos.dim() != n || cos.sizes() != sin.sizes() || cos.size(-1) != x.size(-1) ||
      cos.size(-2) != 1)
    return {};
  for (int64_t d = 0; d < n - 2; ++d)
    if (cos.size(d) != x.size(d)) return {};  // one cos/sin row per position, no broadcasting
  return RopeFn::apply(x.contiguous(), cos.contiguous(), sin.contiguous());
}

}  // namespace emlab::model_detail

#else  // not x86-64: the caller keeps torch's ops

namespace emlab::model_detail {
torch::Tensor rope(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) { return {}; }
}  // namespace emlab::model_detail

#endif
