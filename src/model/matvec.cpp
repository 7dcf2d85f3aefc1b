// Small-row products with a weight matrix (see model/matvec.h): AVX-512 kernels, one per row count,
// chosen at run time when the CPU has the instructions.
#include "model/matvec.h"

#include <cstdint>

#if defined(__x86_64__)

#include <ATen/Parallel.h>
#include <immintrin.h>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized inside _mm512_reduce_add_ps (a false alarm).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace emlab::model_detail {

namespace {

#define EMLAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 weights from `p` as floats (bf16 widened: its bits are the high half of a float32).
template <bool BF16>
EMLAB_AVX512 inline __m512 load16(const void* p) {
  if constexpr (BF16) {
    const __m256i h = _mm256_loadu_si256(static_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_loadu_ps(p);
  }
}

template <bool BF16>
inline float widen(const void* p, int64_t i) {
  if constexpr (BF16) {
    const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
  } else {
    return static_cast<const float*>(p)[i];
  }
}

// y[r * ldy + o] = sum_k W[o, k] x[r * C + k] for o in [o0, o1), r < R. U independent partial sums
// per row keep the FMA units busy when R is small (R * U accumulators stay in registers).
template <int R, bool BF16>
EMLAB_AVX512 void rows_kernel(const void* w, const float* x, float* y, int64_t o0, int64_t o1, int64_t C,
                              int64_t ldy) {
  constexpr int U = R == 1 ? 4 : R <= 3 ? 2 : 1;
  using W = std::conditional_t<BF16, uint16_t, float>;
  const W* wbase = static_cast<const W*>(w);
  for (int64_t o = o0; o < o1; ++o) {
    const W* wr = wbase + o * C;
    __m512 acc[R][U];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[r][u] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 * U <= C; k += 16 * U)
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) {
        const __m512 wv = load16<BF16>(wr + k + 16 * u);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * C + k + 16 * u), acc[r][u]);
      }
    for (; k + 16 <= C; k += 16) {
      const __m512 wv = load16<BF16>(wr + k);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * C + k), acc[r][0]);
    }
    for (int r = 0; r < R; ++r) {
      __m512 s = acc[r][0];
      for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, acc[r][u]);
      float t = _mm512_reduce_add_ps(s);
      for (int64_t j = k; j < C; ++j) t += widen<BF16>(wr, j) * x[r * C + j];
      y[r * ldy + o] = t;
    }
  }
}

using Kernel = void (*)(const void*, const float*, float*, int64_t, int64_t, int64_t, int64_t);

template <bool BF16, int... Rs>
Kernel pick(int64_t R, std::integer_sequence<int, Rs...>) {
  Kernel k = nullptr;
  ((R == Rs + 1 ? (k = &rows_kernel<Rs + 1, BF16>, 0) : 0), ...);
  return k;
}

bool cpu_has_avx512() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return ok;
}

}  // namespace

torch::Tensor small_rows_linear(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto dt = weight.scalar_type();
  if (!cpu_has_avx512() || !weight.device().is_cpu() || !x.device().is_cpu() || weight.dim() != 2 ||
      !weight.is_contiguous() || x.scalar_type() != dt || (dt != torch::kFloat32 && dt != torch::kBFloat16))
    return {};
  if (torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad())) return {};
  const int64_t out = weight.size(0), C = weight.size(1);
  if (C == 0 || x.numel() % C != 0) return {};
  const int64_t R = x.numel() / C;
  if (dt == torch::kFloat32 ? (R < 2 || R > kSmallRowsMax) : R != 1) return {};
  const Kernel kernel = dt == torch::kFloat32
                            ? pick<false>(R, std::make_integer_sequence<int, kSmallRowsMax>{})
                            : pick<true>(R, std::make_integer_sequence<int, kSmallRowsMax>{});
  torch::Tensor xf = x.reshape({R, C}).to(torch::kFloat32).contiguous();  // (R, C)
  torch::Tensor y = torch::empty({R, out}, x.options().dtype(torch::kFloat32));  // (R, out)
  const float* xp = xf.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const void* wp = weight.data_ptr();
  at::parallel_for(0, out, /*grain_size=*/64, [&](int64_t a, int64_t b) { kernel(wp, xp, yp, a, b, C, out); });
  return dt == torch::kFloat32 ? y : y.to(dt);
}

}  // namespace emlab::model_detail

#else  // not x86-64: no kernels, torch's products everywhere

namespace emlab::model_detail {
torch::Tensor small_rows_linear(const torch::Tensor&, const torch::Tensor&) { return {}; }
}  // namespace emlab::model_detail

#endif
