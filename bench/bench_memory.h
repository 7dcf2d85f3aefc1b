// The machine's read bandwidth at the moment of a measurement, the reference for benchmarks of work
// bound by reading memory (decode at small batch reads every weight once per step): a plain AVX-512
// sum over the same bytes on torch's threads. A benchmark including this header compiles with
// OpenMP (bench/CMakeLists.txt), else at::parallel_for runs on one thread.
#pragma once

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace emlab::bench {

#if defined(__x86_64__)
// The sum of the floats at p[0, n) (n a multiple of 64), four chains of 16.
__attribute__((target("avx512f"))) inline float sum_floats(const float* p, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
#endif

// Reads the bytes of the CPU tensor w once, in parallel over torch's threads (its bytes as floats,
// whatever the dtype; a last partial block of 256 bytes skipped). 0 off x86-64 or without AVX-512.
inline float plain_sum(const torch::Tensor& w) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f")) return 0;
  const int64_t blocks = w.numel() * w.element_size() / 256;  // 64 floats each
  const float* p = static_cast<const float*>(w.data_ptr());
  std::vector<float> parts(static_cast<size_t>(at::get_num_threads()), 0.0f);
  at::parallel_for(0, blocks, 1024, [&](int64_t a, int64_t b) {
    parts[at::get_thread_num()] += sum_floats(p + a * 64, (b - a) * 64);
  });
  float s = 0;
  for (float v : parts) s += v;
  return s;
#else
  (void)w;
  return 0;
#endif
}

}  // namespace emlab::bench
