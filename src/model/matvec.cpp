// Small-row products with a weight matrix (see model/matvec.h): AVX-512 kernels (one weight row at a
// time for 1-4 rows, 4x4 tiles for more), chosen at run time when the CPU has the instructions; and
// with the same kernels, attention's two products over a KV cache at decode.
#include "model/matvec.h"

#include "emlab/runtime.h"
#include "model/avx512.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>

#if defined(__x86_64__)

#include <ATen/Parallel.h>

namespace emlab::model_detail {

namespace {

// 16 weights from `p` as floats (bf16 widened).
template <bool BF16>
EMLAB_AVX512 inline __m512 load16(const void* p) {
  if constexpr (BF16) {
    return widen16(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
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

// Independent partial sums per row for a kernel over R rows: enough chains of FMAs in flight to
// hide their latency when R is small (R x U accumulators stay in registers).
template <int R>
constexpr int kPartialSums = R == 1 ? 4 : R <= 3 ? 2 : 1;

// y[r * ldy + o] = sum_k W[o, k] x[r * C + k] for o in [o0, o1), r < R, with kPartialSums<R>
// partial sums per row.
template <int R, bool BF16>
EMLAB_AVX512 void rows_kernel(const void* w, const float* x, float* y, int64_t o0, int64_t o1, int64_t C,
                              int64_t ldy) {
  constexpr int U = kPartialSums<R>;
  using W = std::conditional_t<BF16, uint16_t, float>;
  const W* wbase = static_cast<const W*>(w);
  for (int64_t o = o0; o < o1; ++o) {
    const W* wr = wbase + o * C;
    __m512 acc[R][U] = {};  // zeros
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

// Sums of 4 vectors as one vector: in each 128-bit block b, lane j holds the sum of a_j's block b.
EMLAB_AVX512_INLINE inline __m512 sum4_blocks(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  return _mm512_add_ps(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
}

// The 16 horizontal sums of a[0..15] as one vector (lane i = sum of a[i]): a transpose and adds,
// ~3 instructions per sum instead of ~8 for one _mm512_reduce_add_ps each.
EMLAB_AVX512_INLINE inline __m512 sum16(const __m512* a) {
  const __m512 u0 = sum4_blocks(a[0], a[1], a[2], a[3]), u1 = sum4_blocks(a[4], a[5], a[6], a[7]);
  const __m512 u2 = sum4_blocks(a[8], a[9], a[10], a[11]), u3 = sum4_blocks(a[12], a[13], a[14], a[15]);
  const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(u2, u3, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(u2, u3, _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// y[(r0 + r) * ldy + o + n] = the sum of acc[r * 4 + n] for r < RT, n < 4.
template <int RT>
EMLAB_AVX512_INLINE inline void store_tile(const __m512* acc, float* y, int64_t o, int64_t r0, int64_t ldy) {
  alignas(64) float s[16];
  _mm512_store_ps(s, sum16(acc));
#pragma GCC unroll 4
  for (int r = 0; r < RT; ++r)
#pragma GCC unroll 4
    for (int n = 0; n < 4; ++n) y[(r0 + r) * ldy + o + n] = s[r * 4 + n];
}

// Asks for weight rows p0 .. p1 - 1 (counted from w0, the tile's first) at column k, one cache line
// each, into L2.
template <class W>
EMLAB_AVX512_INLINE inline void prefetch_rows(const W* w0, int64_t C, int64_t k, int p0, int p1) {
  for (int n = p0; n < p1; ++n) _mm_prefetch(reinterpret_cast<const char*>(w0 + n * C + k), _MM_HINT_T1);
}

// Calls tile(rows, o, r0, p0, p1) for every tile of outputs [o0, o1) (o1 - o0 a multiple of 4) and
// all R rows: 4 rows a tile, the last narrower, rows as std::integral_constant. [p0, p1): the weight
// rows (from o) the tile prefetches. The 4 weight rows `ahead` rows on (a multiple of 4) are shared
// out among an output block's row tiles, so that the reads from memory spread over the whole block.
template <class Tile>
EMLAB_AVX512_INLINE inline void walk_tiles(int64_t o0, int64_t o1, int64_t R, int ahead, const Tile& tile) {
  using std::integral_constant;
  const int64_t tiles = (R + 3) / 4;
  for (int64_t o = o0; o + 4 <= o1; o += 4) {
    const bool next = o + ahead + 4 <= o1;  // rows to prefetch within the range
    auto share = [&](int64_t t) { return next ? ahead + static_cast<int>(4 * t / tiles) : 0; };
    int64_t r = 0, t = 0;
    for (; r + 4 <= R; r += 4, ++t) tile(integral_constant<int, 4>{}, o, r, share(t), share(t + 1));
    switch (R - r) {
      case 1: tile(integral_constant<int, 1>{}, o, r, share(t), share(t + 1)); break;
      case 2: tile(integral_constant<int, 2>{}, o, r, share(t), share(t + 1)); break;
      case 3: tile(integral_constant<int, 3>{}, o, r, share(t), share(t + 1)); break;
      default: break;
    }
  }
}

// How many weight rows ahead of a tile's the tiles prefetch: the output blocks (4 rows of C elements
// of `bytes` each) within about 16 KB, at least one (8-64 KB measured alike, bench/RESULTS.md).
inline int prefetch_ahead(int64_t C, int64_t bytes) {
  constexpr int64_t kPrefetchAhead = 16384;
  return 4 * static_cast<int>(std::clamp<int64_t>(kPrefetchAhead / (4 * C * bytes), 1, 64));
}

// One tile: y[(r0 + r) * ldy + o + n] for RT <= 4 rows of x and the 4 weight rows o..o+3 (float32),
// one accumulator per (row, output) pair, reduced together by sum16. The 4 weight rows stay in L1
// while the caller walks all row tiles over them.
template <int RT>
EMLAB_AVX512_INLINE inline void tile_4x4(const float* w, const float* x, float* y, int64_t o, int64_t r0, int64_t C,
                                         int64_t ldy, int p0, int p1) {
  const float* w0 = w + o * C;
  const float* x0 = x + r0 * C;
  __m512 acc[16] = {};  // zeros
  auto step = [&](auto load) EMLAB_AVX512_INLINE {
    __m512 wv[4];
#pragma GCC unroll 4
    for (int n = 0; n < 4; ++n) wv[n] = load(w0 + n * C);
#pragma GCC unroll 4
    for (int r = 0; r < RT; ++r) {
      const __m512 xv = load(x0 + r * C);
#pragma GCC unroll 4
      for (int n = 0; n < 4; ++n) acc[r * 4 + n] = _mm512_fmadd_ps(wv[n], xv, acc[r * 4 + n]);
    }
  };
  int64_t k = 0;
  for (; k + 16 <= C; k += 16) {
    prefetch_rows(w0, C, k, p0, p1);
    step([k](const float* p) EMLAB_AVX512_INLINE { return _mm512_loadu_ps(p + k); });
  }
  if (k < C) {
    const __mmask16 m = lanes16(C - k);  // the width's tail, zeros beyond
    step([k, m](const float* p) EMLAB_AVX512_INLINE { return _mm512_maskz_loadu_ps(m, p + k); });
  }
  store_tile<RT>(acc, y, o, r0, ldy);
}

// y[r * ldy + o] for all R rows and o in [o0, o1), o1 - o0 a multiple of 4, in 4x4 tiles (float32).
EMLAB_AVX512 void tiles_kernel(const float* w, const float* x, float* y, int64_t o0, int64_t o1, int64_t C, int64_t R,
                               int64_t ldy) {
  walk_tiles(o0, o1, R, prefetch_ahead(C, 4), [&](auto rows, int64_t o, int64_t r0, int p0, int p1)
                                                  EMLAB_AVX512_INLINE {
    tile_4x4<decltype(rows)::value>(w, x, y, o, r0, C, ldy, p0, p1);
  });
}

// As tile_4x4 for bf16 weights and bf16 rows, with AVX512-BF16 dot products: each instruction
// multiplies 16 pairs of bf16 (32 products, exact in float32) and adds them to 16 float32 sums,
// twice the work of a widening FMA.
template <int RT>
EMLAB_AVX512BF16_INLINE inline void tile_4x4_bf16dot(const uint16_t* w, const uint16_t* x, float* y, int64_t o,
                                                   int64_t r0, int64_t C, int64_t ldy, int p0, int p1) {
  const uint16_t* w0 = w + o * C;
  const uint16_t* x0 = x + r0 * C;
  __m512 acc[16] = {};  // zeros
  auto step = [&](auto load) EMLAB_AVX512BF16_INLINE {
    __m512bh wv[4];
#pragma GCC unroll 4
    for (int n = 0; n < 4; ++n) wv[n] = (__m512bh)load(w0 + n * C);
#pragma GCC unroll 4
    for (int r = 0; r < RT; ++r) {
      const __m512bh xv = (__m512bh)load(x0 + r * C);
#pragma GCC unroll 4
      for (int n = 0; n < 4; ++n) acc[r * 4 + n] = _mm512_dpbf16_ps(acc[r * 4 + n], wv[n], xv);
    }
  };
  int64_t k = 0;
  for (; k + 32 <= C; k += 32) {
    prefetch_rows(w0, C, k, p0, p1);
    step([k](const uint16_t* p) EMLAB_AVX512BF16_INLINE { return _mm512_loadu_si512(p + k); });
  }
  if (k < C) {
    const __mmask32 m = static_cast<__mmask32>((1ull << (C - k)) - 1);  // the width's tail, zeros beyond
    step([k, m](const uint16_t* p) EMLAB_AVX512BF16_INLINE { return _mm512_maskz_loadu_epi16(m, p + k); });
  }
  store_tile<RT>(acc, y, o, r0, ldy);
}

EMLAB_AVX512BF16 void tiles_kernel_bf16dot(const uint16_t* w, const uint16_t* x, float* y, int64_t o0, int64_t o1,
                                           int64_t C, int64_t R, int64_t ldy) {
  // Not inlined into walk_tiles (its target lacks AVX512-BF16): one call per tile of 16 sums.
  walk_tiles(o0, o1, R, prefetch_ahead(C, 2), [&](auto rows, int64_t o, int64_t r0, int p0, int p1) EMLAB_AVX512BF16 {
    tile_4x4_bf16dot<decltype(rows)::value>(w, x, y, o, r0, C, ldy, p0, p1);
  });
}

// y[o] = sum_k W[o, k] x[k] for o in [o0, o1): one bf16 row x against bf16 weight rows with
// AVX512-BF16 dot products (32 products an instruction, no widening), four partial sums.
EMLAB_AVX512BF16 void row_kernel_bf16dot(const uint16_t* w, const uint16_t* x, float* y, int64_t o0, int64_t o1,
                                         int64_t C) {
  for (int64_t o = o0; o < o1; ++o) {
    const uint16_t* wr = w + o * C;
    __m512 acc[4] = {};  // zeros
    int64_t k = 0;
    for (; k + 128 <= C; k += 128)
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm512_dpbf16_ps(acc[u], (__m512bh)_mm512_loadu_si512(wr + k + 32 * u),
                                  (__m512bh)_mm512_loadu_si512(x + k + 32 * u));
    for (; k < C; k += 32) {
      const __mmask32 m = C - k >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1ull << (C - k)) - 1);
      acc[0] = _mm512_dpbf16_ps(acc[0], (__m512bh)_mm512_maskz_loadu_epi16(m, wr + k),
                                (__m512bh)_mm512_maskz_loadu_epi16(m, x + k));
    }
    y[o] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }
}

// The last out % 4 outputs of a tiled product, one masked dot product each.
template <bool BF16>
EMLAB_AVX512 void tail_outputs(const void* w, const float* x, float* y, int64_t o0, int64_t out, int64_t C,
                               int64_t R) {
  using W = std::conditional_t<BF16, uint16_t, float>;
  for (int64_t o = o0; o < out; ++o)
    for (int64_t r = 0; r < R; ++r) {
      const W* wr = static_cast<const W*>(w) + o * C;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t k = 0; k < C; k += 16) {
        const __mmask16 m = lanes16(C - k);
        acc = _mm512_fmadd_ps(load16_as_f32<BF16>(wr, k, m), _mm512_maskz_loadu_ps(m, x + r * C + k), acc);
      }
      y[r * out + o] = _mm512_reduce_add_ps(acc);
    }
}

using Kernel = void (*)(const void*, const float*, float*, int64_t, int64_t, int64_t, int64_t);

// The instance of a kernel templated on its row count for R rows, R in [1, sizeof...(Rs)] (null
// beyond): make(std::integral_constant<int, rows>) returns the instance for `rows`.
template <class Make, int... Rs>
auto kernel_for_rows(int64_t R, std::integer_sequence<int, Rs...>, Make make) {
  decltype(make(std::integral_constant<int, 1>{})) k = nullptr;
  ((R == Rs + 1 ? (k = make(std::integral_constant<int, Rs + 1>{}), 0) : 0), ...);
  return k;
}

// rows_kernel for R <= kRowsKernelMax rows (null beyond).
template <bool BF16>
Kernel rows_kernel_for(int64_t R) {
  return kernel_for_rows(R, std::make_integer_sequence<int, kRowsKernelMax>{},
                         [](auto rows) -> Kernel { return &rows_kernel<decltype(rows)::value, BF16>; });
}

}  // namespace

bool cpu_has_avx512_bf16() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
  }();
  return ok;
}

bool cpu_has_avx512() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return ok;
}

SmallRowsPath small_rows_path(int64_t rows, torch::ScalarType dtype) {
  if (!cpu_has_avx512() || rows < 1 || rows > kSmallRowsMax) return SmallRowsPath::kNone;
  if (dtype == torch::kFloat32) return rows <= kRowsKernelMax ? SmallRowsPath::kRows : SmallRowsPath::kTiles;
  if (dtype == torch::kBFloat16) {
    if (rows == 1) return SmallRowsPath::kRows;
    static const bool amx = cpu_bf16_support() == CpuBf16::Amx;
    if (rows <= (amx ? kBf16DotRowsMaxAmx : kBf16DotRowsMax) && cpu_has_avx512_bf16())
      return SmallRowsPath::kTilesBf16Dot;
    if (rows <= kRowsKernelMax) return SmallRowsPath::kRows;
  }
  return SmallRowsPath::kNone;
}

bool rows_product_reads_bf16(int64_t R, bool bf16) { return bf16 && R == 1 && cpu_has_avx512_bf16(); }

void rows_products(const RowsProductPart* parts, int64_t n, const float* x, int64_t R, int64_t C, bool bf16,
                   const uint16_t* xb) {
  const bool dot = xb && rows_product_reads_bf16(R, bf16);
  const Kernel kernel = bf16 ? rows_kernel_for<true>(R) : rows_kernel_for<false>(R);
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += parts[i].out;
  // Outputs [a, b) of the concatenation: each part's share of them, by its own kernel call.
  at::parallel_for(0, total, /*grain_size=*/64, [&](int64_t a, int64_t b) {
    int64_t base = 0;
    for (int64_t i = 0; i < n && base < b; base += parts[i].out, ++i) {
      const RowsProductPart& p = parts[i];
      const int64_t lo = std::max(a, base) - base, hi = std::min(b, base + p.out) - base;
      if (lo >= hi) continue;
      if (dot) row_kernel_bf16dot(static_cast<const uint16_t*>(p.w), xb, p.y, lo, hi, C);
      else kernel(p.w, x, p.y, lo, hi, C, p.out);
    }
  });
}

void rows_product(const void* w, const float* x, float* y, int64_t R, int64_t out, int64_t C, bool bf16,
                  const uint16_t* xb) {
  const RowsProductPart part{w, y, out};
  rows_products(&part, 1, x, R, C, bf16, xb);
}

torch::Tensor small_rows_linear(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto dt = weight.scalar_type();
  if (!weight.device().is_cpu() || !x.device().is_cpu() || weight.dim() != 2 || !weight.is_contiguous() ||
      x.scalar_type() != dt)
    return {};
  if (torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad())) return {};
  const int64_t out = weight.size(0), C = weight.size(1);
  if (C == 0 || x.numel() % C != 0) return {};
  const int64_t R = x.numel() / C;
  const SmallRowsPath path = small_rows_path(R, dt);
  if (path == SmallRowsPath::kNone) return {};
  const bool bf16 = dt == torch::kBFloat16;
  torch::Tensor y = torch::empty({R, out}, x.options().dtype(torch::kFloat32));  // (R, out)
  float* yp = y.data_ptr<float>();
  const void* wp = weight.data_ptr();
  torch::Tensor xf;  // x in float32 (R, C), made when a kernel reads it
  auto x_f32 = [&] {
    if (!xf.defined()) xf = x.reshape({R, C}).to(torch::kFloat32).contiguous();
    return static_cast<const float*>(xf.data_ptr<float>());
  };
  if (path == SmallRowsPath::kRows) {
    if (!rows_product_reads_bf16(R, bf16)) {
      rows_product(wp, x_f32(), yp, R, out, C, bf16);
    } else {
      const torch::Tensor xb = x.reshape({R, C}).contiguous();  // (R, C) bf16
      rows_product(wp, nullptr, yp, R, out, C, bf16, static_cast<const uint16_t*>(xb.data_ptr()));
    }
    return bf16 ? y.to(dt) : y;
  }
  const int64_t blocks = out / 4;  // the tiles run in parallel over blocks of 4 outputs
  if (path == SmallRowsPath::kTilesBf16Dot) {
    torch::Tensor xb = x.reshape({R, C}).contiguous();  // (R, C) bf16
    const auto* xp = static_cast<const uint16_t*>(xb.data_ptr());
    const auto* wb = static_cast<const uint16_t*>(wp);
    at::parallel_for(0, blocks, /*grain_size=*/16,
                     [&](int64_t a, int64_t b) { tiles_kernel_bf16dot(wb, xp, yp, 4 * a, 4 * b, C, R, out); });
  } else {  // kTiles: float32
    const float* xp = x_f32();
    const auto* wf = static_cast<const float*>(wp);
    at::parallel_for(0, blocks, /*grain_size=*/16,
                     [&](int64_t a, int64_t b) { tiles_kernel(wf, xp, yp, 4 * a, 4 * b, C, R, out); });
  }
  if (4 * blocks < out)  // the last out % 4 outputs
    bf16 ? tail_outputs<true>(wp, x_f32(), yp, 4 * blocks, out, C, R)
         : tail_outputs<false>(wp, x_f32(), yp, 4 * blocks, out, C, R);
  return bf16 ? y.to(dt) : y;
}

namespace {

// y (R, C) = p (R, S) V (S, C) for V's rows at stride C (bf16 widened as read): per 16 columns, R
// accumulators over the S positions, kPartialSums<R> partial sums each. Positions below P are read
// from `lo` instead of `v` (a shared prefix, KVCache), at the same offsets.
template <int R, bool BF16>
EMLAB_AVX512 void values_kernel(const float* p, const void* v, const void* lo, int64_t P, float* y, int64_t S,
                                int64_t C) {
  constexpr int U = kPartialSums<R>;
  using W = std::conditional_t<BF16, uint16_t, float>;
  const W* vb = static_cast<const W*>(v);
  const W* lb = static_cast<const W*>(lo);
  auto row = [&](int64_t j) { return (j < P ? lb : vb) + j * C; };
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = lanes16(C - c);
    __m512 acc[U][R] = {};  // zeros
    int64_t j = 0;
    for (; j + U <= S; j += U) {
      const W* group = j >= P || j + U <= P ? row(j) : nullptr;  // the U positions in one place, or null
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) {
        const __m512 vv = load16_as_f32<BF16>(group ? group : row(j + u) - u * C, u * C + c, m);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[u][r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * S + j + u]), vv, acc[u][r]);
      }
    }
    for (; j < S; ++j) {
      const __m512 vv = load16_as_f32<BF16>(row(j), c, m);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[0][r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * S + j]), vv, acc[0][r]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      __m512 s = acc[0][r];
      for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, acc[u][r]);
      _mm512_mask_storeu_ps(y + r * C + c, m, s);
    }
  }
}

// y[o] = sum_k W[o, k] x[k] for o < S, one row of x against S short weight rows (attention scores
// of one query: C = the head width, too short for rows_kernel's one reduction per output to pay):
// 16 outputs per block, their 16 sums reduced together by sum16; the last S % 16 one by one. Rows
// below P are read from `lo` instead of `w` (a shared prefix, KVCache), at the same offsets.
template <bool BF16>
EMLAB_AVX512 void one_row_kernel(const void* w, const void* lo, int64_t P, const float* x, float* y, int64_t S,
                                 int64_t C) {
  using W = std::conditional_t<BF16, uint16_t, float>;
  const W* wb = static_cast<const W*>(w);
  const W* lb = static_cast<const W*>(lo);
  auto row = [&](int64_t o) { return (o < P ? lb : wb) + o * C; };
  int64_t o = 0;
  for (; o + 16 <= S; o += 16) {
    __m512 acc[16] = {};  // zeros
    if (o >= P || o + 16 <= P) {  // the block's rows in one place
      const W* w0 = row(o);
      for (int64_t k = 0; k < C; k += 16) {
        const __mmask16 m = lanes16(C - k);
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
#pragma GCC unroll 16
        for (int n = 0; n < 16; ++n) acc[n] = _mm512_fmadd_ps(load16_as_f32<BF16>(w0, n * C + k, m), xv, acc[n]);
      }
    } else {  // the block straddles the prefix's end
      for (int n = 0; n < 16; ++n)
        for (int64_t k = 0; k < C; k += 16) {
          const __mmask16 m = lanes16(C - k);
          acc[n] = _mm512_fmadd_ps(load16_as_f32<BF16>(row(o + n), k, m), _mm512_maskz_loadu_ps(m, x + k), acc[n]);
        }
    }
    _mm512_storeu_ps(y + o, sum16(acc));
  }
  if (o >= P) tail_outputs<BF16>(w, x, y, o, S, C, 1);  // the last S % 16 rows, all the row's own
  else
    for (; o < S; ++o) tail_outputs<BF16>(row(o) - o * C, x, y, o, o + 1, C, 1);
}

using ValuesKernel = void (*)(const float*, const void*, const void*, int64_t, float*, int64_t, int64_t);

// values_kernel for R <= kAttentionRowsMax rows (null beyond).
template <bool BF16>
ValuesKernel values_kernel_for(int64_t R) {
  return kernel_for_rows(R, std::make_integer_sequence<int, kAttentionRowsMax>{},
                         [](auto rows) -> ValuesKernel { return &values_kernel<decltype(rows)::value, BF16>; });
}

// For t (B, H, S, D) with contiguous rows of D: the stride between the B x H (S, D) blocks taken as
// one batch dimension, or -1 where the two dimensions do not merge.
int64_t merged_block_stride(const torch::Tensor& t) {
  if (t.stride(3) != 1 || (t.size(2) > 1 && t.stride(2) != t.size(3))) return -1;
  if (t.size(1) == 1) return t.stride(0);
  if (t.size(0) > 1 && t.stride(0) != t.size(1) * t.stride(1)) return -1;
  return t.stride(1);
}

// The checks both attention products share: CPU tensors of 4 dims, float32 or bf16, no gradient
// wanted, R rows within the kernels' range, a's rows in the cache (through `rows` where given).
bool attention_kernels_take(const torch::Tensor& a, const torch::Tensor& cache, const torch::Tensor& rows) {
  const auto dt = cache.scalar_type();
  if (!cpu_has_avx512() || !a.device().is_cpu() || !cache.device().is_cpu() || a.dim() != 4 || cache.dim() != 4)
    return false;
  if (dt != torch::kFloat32 && dt != torch::kBFloat16) return false;
  if (torch::GradMode::is_enabled() && (a.requires_grad() || cache.requires_grad())) return false;
  if (rows.defined()) {
    if (!rows.device().is_cpu() || rows.scalar_type() != torch::kLong || !rows.is_contiguous() ||
        rows.numel() != a.size(0))
      return false;
    const int64_t* r = rows.data_ptr<int64_t>();
    for (int64_t i = 0; i < rows.numel(); ++i)
      if (r[i] < 0 || r[i] >= cache.size(0)) return false;
  } else if (a.size(0) != cache.size(0)) {
    return false;
  }
  return a.size(1) == cache.size(1) && a.size(2) >= 1 &&
         a.size(2) <= kAttentionRowsMax && cache.size(2) >= 1 && cache.size(3) >= 1;
}

}  // namespace

bool attention_kernels_read(const torch::Tensor& cache) {
  const auto dt = cache.scalar_type();
  return cpu_has_avx512() && cache.device().is_cpu() && cache.dim() == 4 &&
         (dt == torch::kFloat32 || dt == torch::kBFloat16) && merged_block_stride(cache) >= 0;
}

namespace {

// Pairs per task for the parallel loops: enough work that a thread's share outweighs waking it.
int64_t attention_grain(int64_t R, int64_t S, int64_t D) { return std::max<int64_t>(1, 16384 / (R * S * D)); }

}  // namespace

// The cache block of pair n = b * Hkv + h: b's cache row through `rows` where given.
inline int64_t cache_block(int64_t n, int64_t Hkv, const int64_t* rows) {
  return rows ? rows[n / Hkv] * Hkv + n % Hkv : n;
}

// The (S, D) block of keys or values that pair n = b * Hkv + h attends: the cache's block (row b,
// or cache_rows[b]), whose first `prefix_length()` positions come from a shared prefix's block
// instead where there is one (KVCache). The kernels read both blocks at the same offsets as one
// block holding every position, so their results are the same.
class PairBlocks {
 public:
  // nullopt where the cache `side` (B, Hkv, S, D) has no even block stride, or `prefix` does not
  // fit it and its S positions.
  static std::optional<PairBlocks> make(const torch::Tensor& side, int64_t B, const torch::Tensor& cache_rows,
                                        const SharedPrefix* prefix) {
    const int64_t stride = merged_block_stride(side);
    if (stride < 0) return std::nullopt;
    PairBlocks p;
    p.Hkv_ = side.size(1);
    p.base_ = static_cast<const char*>(side.data_ptr());
    p.block_bytes_ = stride * side.element_size();
    p.rows_ = cache_rows.defined() ? cache_rows.data_ptr<int64_t>() : nullptr;
    p.block_len_bytes_ = side.size(2) * side.size(3) * side.element_size();
    p.position_bytes_ = side.size(3) * side.element_size();
    if (!prefix || prefix->length == 0) return p;
    const torch::Tensor& ps = prefix->side;
    const torch::Tensor& pr = prefix->rows;
    if (ps.dim() != 4 || !ps.device().is_cpu() || ps.scalar_type() != side.scalar_type() ||
        ps.size(1) != side.size(1) || ps.size(3) != side.size(3) || ps.size(2) < prefix->length ||
        prefix->length > side.size(2) || merged_block_stride(ps) < 0 || !pr.defined() || !pr.device().is_cpu() ||
        pr.scalar_type() != torch::kLong || !pr.is_contiguous() || pr.numel() != B)
      return std::nullopt;
    const int64_t* r = pr.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i)
      if (r[i] < 0 || r[i] >= ps.size(0)) return std::nullopt;
    p.prefix_base_ = static_cast<const char*>(ps.data_ptr());
    p.prefix_block_bytes_ = merged_block_stride(ps) * ps.element_size();
    p.prefix_rows_ = r;
    p.prefix_length_ = prefix->length;
    return p;
  }

  const void* own(int64_t n) const { return base_ + cache_block(n, Hkv_, rows_) * block_bytes_; }
  // The prefix's block for pair n (own(n) without a prefix: positions below 0 are never read there).
  const void* prefix(int64_t n) const {
    return prefix_base_ ? prefix_base_ + cache_block(n, Hkv_, prefix_rows_) * prefix_block_bytes_ : own(n);
  }
  int64_t prefix_length() const { return prefix_length_; }
  // Pair n's positions as one block: own(n) without a prefix, else a per-thread copy of both parts.
  const void* whole(int64_t n) const {
    if (!prefix_base_) return own(n);
    thread_local std::vector<char> scratch;
    if (scratch.size() < static_cast<size_t>(block_len_bytes_)) scratch.resize(block_len_bytes_);
    const int64_t lo = prefix_length_ * position_bytes_;
    std::memcpy(scratch.data(), prefix(n), lo);
    std::memcpy(scratch.data() + lo, static_cast<const char*>(own(n)) + lo, block_len_bytes_ - lo);
    return scratch.data();
  }

 private:
  PairBlocks() = default;
  int64_t Hkv_ = 1, block_bytes_ = 0, block_len_bytes_ = 0, position_bytes_ = 0;  // block_len: S positions
  const char* base_ = nullptr;
  const int64_t* rows_ = nullptr;
  const char* prefix_base_ = nullptr;  // null: no shared prefix
  const int64_t* prefix_rows_ = nullptr;
  int64_t prefix_block_bytes_ = 0, prefix_length_ = 0;
};

namespace {

// The blocks of a plain cache for one batch row: pair h's (S, D) block at base + h * stride
// elements, no shared prefix (PairBlocks' interface).
class PlainBlocks {
 public:
  PlainBlocks(const void* base, int64_t stride, bool bf16)
      : base_(static_cast<const char*>(base)), block_bytes_(stride * (bf16 ? 2 : 4)) {}
  const void* own(int64_t n) const { return base_ + n * block_bytes_; }
  const void* prefix(int64_t n) const { return own(n); }
  int64_t prefix_length() const { return 0; }
  const void* whole(int64_t n) const { return own(n); }

 private:
  const char* base_;
  int64_t block_bytes_;
};

// The kernels that take scores of R query rows per pair: one row: 16-output blocks; more: the 4x4
// tiles (bf16: with AVX512-BF16 dot products, else the row kernels up to 4 rows). nullopt where
// none does (bf16, more than 4 rows, no AVX512-BF16).
struct ScoreKernels {
  bool bf16 = false, dot = false;
  Kernel rows = nullptr;
};
std::optional<ScoreKernels> score_kernels(int64_t R, bool bf16) {
  ScoreKernels k;
  k.bf16 = bf16;
  k.dot = bf16 && R > 1 && cpu_has_avx512_bf16();
  k.rows = bf16 && R > 1 && !k.dot ? rows_kernel_for<true>(R) : nullptr;  // null beyond 4 rows
  if (bf16 && R > 1 && !k.dot && !k.rows) return std::nullopt;
  return k;
}

// y (pairs, R, S) = the scores of xp (pairs, R, D) float32 (xb: the same in bf16, read by the dot
// tiles) against each pair's S keys in `blocks`, in parallel over the pairs.
template <class Blocks>
void scores_loop(const ScoreKernels& kern, const Blocks& blocks, const float* xp, const uint16_t* xb, float* yp,
                 int64_t pairs, int64_t R, int64_t S, int64_t D) {
  const int64_t full = 4 * (S / 4);  // outputs the tiles take; the rest one by one
  at::parallel_for(0, pairs, attention_grain(R, S, D), [&](int64_t a, int64_t b) {
    for (int64_t n = a; n < b; ++n) {
      const float* x = xp + n * R * D;
      float* yn = yp + n * R * S;
      if (R == 1) {
        const void* w = blocks.own(n);
        const void* lo = blocks.prefix(n);
        const int64_t P = blocks.prefix_length();
        kern.bf16 ? one_row_kernel<true>(w, lo, P, x, yn, S, D) : one_row_kernel<false>(w, lo, P, x, yn, S, D);
        continue;
      }
      const void* w = blocks.whole(n);
      if (kern.rows) {
        kern.rows(w, x, yn, 0, S, D, S);
      } else if (kern.dot) {
        tiles_kernel_bf16dot(static_cast<const uint16_t*>(w), xb + n * R * D, yn, 0, full, D, R, S);
        if (full < S) tail_outputs<true>(w, x, yn, full, S, D, R);
      } else {
        tiles_kernel(static_cast<const float*>(w), x, yn, 0, full, D, R, S);
        if (full < S) tail_outputs<false>(w, x, yn, full, S, D, R);
      }
    }
  });
}

// y (pairs, R, D) float32 = p (pairs, R, S) times each pair's S values in `blocks`.
template <class Blocks>
void values_loop(ValuesKernel kernel, const Blocks& blocks, const float* pp, float* yp, int64_t pairs, int64_t R,
                 int64_t S, int64_t D) {
  at::parallel_for(0, pairs, attention_grain(R, S, D), [&](int64_t a, int64_t b) {
    for (int64_t n = a; n < b; ++n)
      kernel(pp + n * R * S, blocks.own(n), blocks.prefix(n), blocks.prefix_length(), yp + n * R * D, S, D);
  });
}

}  // namespace

torch::Tensor attention_scores(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& cache_rows,
                               const SharedPrefix* prefix) {
  if (!attention_kernels_take(q, k, cache_rows) || q.scalar_type() != k.scalar_type() || q.size(3) != k.size(3))
    return {};
  const std::optional<PairBlocks> blocks = PairBlocks::make(k, q.size(0), cache_rows, prefix);
  if (!blocks) return {};
  const int64_t B = q.size(0), Hkv = q.size(1), R = q.size(2), D = q.size(3), S = k.size(2);
  const std::optional<ScoreKernels> kern = score_kernels(R, k.scalar_type() == torch::kBFloat16);
  if (!kern) return {};
  torch::Tensor qf = q.to(torch::kFloat32).contiguous();          // (B, Hkv, R, D)
  torch::Tensor qb = kern->dot ? q.contiguous() : torch::Tensor();  // (B, Hkv, R, D) bf16
  torch::Tensor y = torch::empty({B, Hkv, R, S}, q.options().dtype(torch::kFloat32));  // (B, Hkv, R, S)
  scores_loop(*kern, *blocks, qf.data_ptr<float>(), kern->dot ? static_cast<const uint16_t*>(qb.data_ptr()) : nullptr,
              y.data_ptr<float>(), B * Hkv, R, S, D);
  return y;
}

torch::Tensor attention_values(const torch::Tensor& p, const torch::Tensor& v, const torch::Tensor& cache_rows,
                               const SharedPrefix* prefix) {
  if (!attention_kernels_take(p, v, cache_rows) || p.scalar_type() != torch::kFloat32 || p.size(3) != v.size(2))
    return {};
  const std::optional<PairBlocks> blocks = PairBlocks::make(v, p.size(0), cache_rows, prefix);
  if (!blocks) return {};
  const int64_t B = p.size(0), Hkv = p.size(1), R = p.size(2), S = p.size(3), D = v.size(3);
  const bool bf16 = v.scalar_type() == torch::kBFloat16;
  torch::Tensor pc = p.contiguous();                                                   // (B, Hkv, R, S)
  torch::Tensor y = torch::empty({B, Hkv, R, D}, p.options().dtype(torch::kFloat32));  // (B, Hkv, R, D)
  values_loop(bf16 ? values_kernel_for<true>(R) : values_kernel_for<false>(R), *blocks, pc.data_ptr<float>(),
              y.data_ptr<float>(), B * Hkv, R, S, D);
  return bf16 ? y.to(v.scalar_type()) : y;
}

bool attention_scores_row(const float* q, const uint16_t* qb, const void* k, int64_t block_stride, int64_t Hkv,
                          int64_t R, int64_t S, int64_t D, bool bf16, float* y) {
  const std::optional<ScoreKernels> kern = score_kernels(R, bf16);
  if (!kern || R > kAttentionRowsMax || (kern->dot && !qb)) return false;
  scores_loop(*kern, PlainBlocks(k, block_stride, bf16), q, qb, y, Hkv, R, S, D);
  return true;
}

bool attention_values_row(const float* p, const void* v, int64_t block_stride, int64_t Hkv, int64_t R, int64_t S,
                          int64_t D, bool bf16, float* y) {
  const ValuesKernel kernel = bf16 ? values_kernel_for<true>(R) : values_kernel_for<false>(R);
  if (!kernel) return false;
  values_loop(kernel, PlainBlocks(v, block_stride, bf16), p, y, Hkv, R, S, D);
  return true;
}

}  // namespace emlab::model_detail

#else  // not x86-64: no kernels, torch's products everywhere

namespace emlab::model_detail {
bool cpu_has_avx512() { return false; }
bool cpu_has_avx512_bf16() { return false; }
SmallRowsPath small_rows_path(int64_t, torch::ScalarType) { return SmallRowsPath::kNone; }
torch::Tensor small_rows_linear(const torch::Tensor&, const torch::Tensor&) { return {}; }
bool attention_kernels_read(const torch::Tensor&) { return false; }
torch::Tensor attention_scores(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const SharedPrefix*) {
  return {};
}
torch::Tensor attention_values(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const SharedPrefix*) {
  return {};
}
}  // namespace emlab::model_detail

#endif
