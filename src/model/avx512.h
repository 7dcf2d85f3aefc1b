// What the AVX-512 kernels of src/model share (matvec.cpp, causal_attention.cpp, swiglu.cpp,
// rms_norm.cpp, rope.cpp; src/train's adamw_update.cpp and src/generate's sampler.cpp): the run-time
// checks that the CPU has the instructions, and on x86-64 the target attributes the kernels are
// compiled with, the lane mask of a 16-wide step, exp, and bf16 loads, rounding and stores. Private
// to those files.
#pragma once

namespace emlab::model_detail {
// Whether this CPU has AVX-512 F, BW and VL (what EMLAB_AVX512 code needs); false off x86-64.
bool cpu_has_avx512();
// Whether it also has AVX512-BF16 (the bf16 dot-product tiles); false off x86-64.
bool cpu_has_avx512_bf16();
}  // namespace emlab::model_detail

#if defined(__x86_64__)

#include <cstdint>

#include <immintrin.h>

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside _mm512_reduce_add_ps and the masked
// loads (false alarms).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define EMLAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
// Helpers whose vector arguments must stay in registers (not inlined, an accumulator array passed
// by pointer would live on the stack).
#define EMLAB_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline))
// The same with AVX512-BF16 (its dot products), for code run only where cpu_has_avx512_bf16().
#define EMLAB_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define EMLAB_AVX512BF16_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline))

namespace emlab::model_detail {

// The lanes of a 16-wide step with `left` elements remaining: all 16, or the first `left`.
inline __mmask16 lanes16(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// exp of 16 floats: 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts), exp(r) by
// Cephes' expf polynomial (about 1 ulp). Inputs below -87.3 give ~1e-38, not 0.
EMLAB_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.72283f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// 16 bf16 as floats (exact): a bf16's bits are the high half of a float32's.
EMLAB_AVX512 inline __m512 widen16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 float32 values rounded to bf16 (to nearest, ties to even, as torch rounds), in the high half of
// each lane (the low half is garbage).
EMLAB_AVX512 inline __m512i round_bf16_bits(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
}

// 16 float32 values rounded to bf16 and widened back (exactly what a bf16 store and load give).
EMLAB_AVX512 inline __m512 round_bf16(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(round_bf16_bits(x), _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// 16 float32 values rounded to bf16 into the lanes of `m`.
EMLAB_AVX512 inline void store_bf16x16(uint16_t* p, __m512 x, __mmask16 m) {
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(round_bf16_bits(x), 16)));
}

// 16 values of float32 (BF16 = false) or bf16 (true) from p + i as float32, in the lanes of `m`
// (zeros elsewhere; nothing past them is read: a row's tail).
template <bool BF16>
EMLAB_AVX512 inline __m512 load16_as_f32(const void* p, int64_t i, __mmask16 m) {
  if constexpr (BF16) return widen16(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  else return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
}

// 16 float32 values to p + i as float32 or (rounded) bf16, in the lanes of `m`.
template <bool BF16>
EMLAB_AVX512 inline void store16_from_f32(void* p, int64_t i, __m512 x, __mmask16 m) {
  if constexpr (BF16) store_bf16x16(static_cast<uint16_t*>(p) + i, x, m);
  else _mm512_mask_storeu_ps(static_cast<float*>(p) + i, m, x);
}

}  // namespace emlab::model_detail

#endif
