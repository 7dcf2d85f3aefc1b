// What the AVX-512 kernels of src/model share (matvec.cpp, causal_attention.cpp): the run-time
// checks that the CPU has the instructions, and on x86-64 the target attributes the kernels are
// compiled with and the lane mask of a 16-wide step. Private to src/model.
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

namespace emlab::model_detail {

// The lanes of a 16-wide step with `left` elements remaining: all 16, or the first `left`.
inline __mmask16 lanes16(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

}  // namespace emlab::model_detail

#endif
