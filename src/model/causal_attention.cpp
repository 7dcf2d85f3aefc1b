// Fused causal self-attention on the CPU (see model/causal_attention.h).
#include "model/causal_attention.h"

#if defined(__x86_64__)

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include "model/avx512.h"

namespace emlab::model_detail {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The BLAS sgemm libtorch itself calls (Fortran interface, as ATen declares it): Debian's libtorch
// imports it from the system BLAS (OpenBLAS), the PyPI wheels define it (MKL). Looked up at run
// time, as libtorch's helper over it (at::native::cpublas::gemm) is not exported; null where no
// loaded library has it (then the fused path is not taken).
using Sgemm = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);
Sgemm blas_sgemm() {
  static const Sgemm fn = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return fn;
}

// Row-major C (M, N) = alpha op(A) op(B) + beta C with op(A) (M, K) and op(B) (K, N); ta: A is
// stored (K, M), tb: B is stored (N, K). Column-major BLAS sees each row-major matrix transposed,
// so it computes C^T = op(B)^T op(A)^T.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const char opa = tb ? 'T' : 'N', opb = ta ? 'T' : 'N';
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
  blas_sgemm()(&opa, &opb, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
}

// One row of probabilities in place. row[lo, hi) holds the raw scores q_i . k_j of the keys the
// causal and window masks allow; key_bias (0 or -inf per key, or null) adds the key mask. Writes
// softmax(scale * raw + key_bias) there and zeros over the rest of the row's T columns.
EMLAB_AVX512 void softmax_row(float* row, int64_t lo, int64_t hi, int64_t T, const float* key_bias, float scale) {
  std::fill(row, row + lo, 0.0f);
  std::fill(row + hi, row + T, 0.0f);
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(kNegInf);
  for (int64_t j = lo; j < hi; j += 16) {
    const __mmask16 m = lanes16(hi - j);
    __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + j), sc);
    if (key_bias) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, key_bias + j));
    _mm512_mask_storeu_ps(row + j, m, t);
    mx = _mm512_mask_max_ps(mx, m, mx, t);
  }
  const float top = _mm512_reduce_max_ps(mx);
  if (top == kNegInf) {  // no key allowed (a padding row): zeros
    std::fill(row + lo, row + hi, 0.0f);
    return;
  }
  const __m512 top16 = _mm512_set1_ps(top), neg_inf = _mm512_set1_ps(kNegInf);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = lo; j < hi; j += 16) {
    const __mmask16 m = lanes16(hi - j);
    const __m512 t = _mm512_maskz_loadu_ps(m, row + j);
    const __mmask16 keep = _mm512_mask_cmp_ps_mask(m, t, neg_inf, _CMP_GT_OQ);  // masked keys give 0
    const __m512 e = _mm512_maskz_mov_ps(keep, exp16(_mm512_sub_ps(t, top16)));
    _mm512_mask_storeu_ps(row + j, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t j = lo; j < hi; j += 16) {
    const __mmask16 m = lanes16(hi - j);
    _mm512_mask_storeu_ps(row + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + j), inv));
  }
}

// Softmax backward for one row, in place: d[j] = scale * p[j] (d[j] - sum_k p[k] d[k]) over n
// columns (d: the gradient of the probabilities in, of the raw scores out).
EMLAB_AVX512 void softmax_backward_row(const float* p, float* d, int64_t n, float scale) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes16(n - j);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p + j), _mm512_maskz_loadu_ps(m, d + j), acc);
  }
  const __m512 delta = _mm512_set1_ps(_mm512_reduce_add_ps(acc)), sc = _mm512_set1_ps(scale);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes16(n - j);
    const __m512 pj = _mm512_maskz_loadu_ps(m, p + j);
    const __m512 g = _mm512_mul_ps(_mm512_mul_ps(pj, sc), _mm512_sub_ps(_mm512_maskz_loadu_ps(m, d + j), delta));
    _mm512_mask_storeu_ps(d + j, m, g);
  }
}

// A (B, N, T, D)-indexed tensor's rows: element (b, n, t, :) at base + b*sb + n*sn + t*st. E: float
// for a float32 tensor, uint16_t (the bits) for a bf16 one.
template <typename E>
struct Rows {
  E* base;
  int64_t sb, sn, st;
  Rows(const torch::Tensor& x, bool bthd)  // bthd: x is (B, T, N, D) rather than (B, N, T, D)
      : base(elements(x)),
        sb(x.stride(0)),
        sn(x.stride(bthd ? 2 : 1)),
        st(x.stride(bthd ? 1 : 2)) {}
  E* at(int64_t b, int64_t n, int64_t t = 0) const { return base + b * sb + n * sn + t * st; }

 private:
  static E* elements(const torch::Tensor& x) {
    if constexpr (std::is_same_v<E, float>) return x.data_ptr<float>();
    else return reinterpret_cast<uint16_t*>(x.data_ptr<at::BFloat16>());
  }
};

// The first key query row i may see: 0, or with a window i - window + 1. For a block of rows
// [i0, i1), the first column it needs.
inline int64_t first_key(int64_t i, int64_t window) { return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; }

// x (4-D) as BLAS can take its rows: the last dimension contiguous and rows at least a row apart
// (a copy where not).
torch::Tensor rows_contiguous(const torch::Tensor& x) {
  return x.stride(3) == 1 && x.stride(2) >= x.size(3) && x.stride(1) >= x.size(3) ? x : x.contiguous();
}

// Forward: out (B, T, H, D) and, with save_probs (for backward), the probabilities (B, H, T, T);
// without, each block's probabilities live in a buffer of the thread's (the same values: only where
// they are kept differs) and the second tensor is undefined.
std::pair<torch::Tensor, torch::Tensor> attention_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                          const torch::Tensor& v, const torch::Tensor& key_bias,
                                                          int64_t window, float scale, bool save_probs) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), G = H / k.size(1);
  torch::Tensor out = torch::empty({B, T, H, D}, q.options());
  torch::Tensor probs = save_probs ? torch::empty({B, H, T, T}, q.options()) : torch::Tensor();
  const Rows<float> Q(q, false), K(k, false), V(v, false), O(out, true);
  float* P = save_probs ? probs.data_ptr<float>() : nullptr;
  const float* kb = key_bias.numel() > 0 ? key_bias.data_ptr<float>() : nullptr;
  at::parallel_for(0, B * H, 1, [&](int64_t a, int64_t e) {
    std::vector<float> block(save_probs ? 0 : static_cast<size_t>(kCausalBlockRows * T));
    for (int64_t n = a; n < e; ++n) {
      const int64_t b = n / H, h = n % H, g = h / G;
      for (int64_t i0 = 0; i0 < T; i0 += kCausalBlockRows) {
        const int64_t i1 = std::min(T, i0 + kCausalBlockRows), c0 = first_key(i0, window);
        float* Pb = save_probs ? P + (n * T + i0) * T : block.data();  // the block's rows of probabilities, T apart
        // Raw scores of the block's rows over the columns [c0, i1): Q[i0:i1] K[c0:i1]^T.
        gemm(false, true, i1 - i0, i1 - c0, D, 1.0f, Q.at(b, h, i0), Q.st, K.at(b, g, c0), K.st, 0.0f, Pb + c0, T);
        for (int64_t i = i0; i < i1; ++i)
          softmax_row(Pb + (i - i0) * T, first_key(i, window), i + 1, T, kb ? kb + b * T : nullptr, scale);
        // O[i0:i1] = P[i0:i1, c0:i1] V[c0:i1] (zeros beyond each row's last key).
        gemm(false, false, i1 - i0, D, i1 - c0, 1.0f, Pb + c0, T, V.at(b, g, c0), V.st, 0.0f, O.at(b, h, i0), O.st);
      }
    }
  });
  return {out, probs};
}

// Backward: dq (B, T, H, D), dk and dv (B, T, Hkv, D) from the output's gradient dout (B, T, H, D).
// One task per (batch row, kv head), so the G query heads sharing a kv head add to its dk, dv in turn.
std::vector<torch::Tensor> attention_backward(const torch::Tensor& dout, const torch::Tensor& q, const torch::Tensor& k,
                                              const torch::Tensor& v, const torch::Tensor& probs, int64_t window,
                                              float scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), Hkv = k.size(1), G = H / Hkv;
  torch::Tensor dq = torch::empty({B, T, H, D}, q.options());
  torch::Tensor dk = torch::zeros({B, T, Hkv, D}, q.options());
  torch::Tensor dv = torch::zeros({B, T, Hkv, D}, q.options());
  const Rows<float> Q(q, false), K(k, false), V(v, false), dO(dout, true), dQ(dq, true), dK(dk, true), dV(dv, true);
  const float* P = probs.data_ptr<float>();
  at::parallel_for(0, B * Hkv, 1, [&](int64_t a, int64_t e) {
    std::vector<float> work(static_cast<size_t>(kCausalBlockRows * T));  // dP, then dS, of one block
    for (int64_t n = a; n < e; ++n) {
      const int64_t b = n / Hkv, g = n % Hkv;
      for (int64_t h = g * G; h < (g + 1) * G; ++h) {
        const float* Pn = P + (b * H + h) * T * T;
        for (int64_t i0 = 0; i0 < T; i0 += kCausalBlockRows) {
          const int64_t i1 = std::min(T, i0 + kCausalBlockRows), c0 = first_key(i0, window);
          const int64_t rows = i1 - i0, cols = i1 - c0;
          float* W = work.data();
          // dP = dO[i0:i1] V[c0:i1]^T, then dS (the raw scores' gradient) row by row.
          gemm(false, true, rows, cols, D, 1.0f, dO.at(b, h, i0), dO.st, V.at(b, g, c0), V.st, 0.0f, W, cols);
          for (int64_t r = 0; r < rows; ++r) softmax_backward_row(Pn + (i0 + r) * T + c0, W + r * cols, cols, scale);
          // dQ[i0:i1] = dS K[c0:i1]; dK[c0:i1] += dS^T Q[i0:i1]; dV[c0:i1] += P[i0:i1, c0:i1]^T dO[i0:i1].
          gemm(false, false, rows, D, cols, 1.0f, W, cols, K.at(b, g, c0), K.st, 0.0f, dQ.at(b, h, i0), dQ.st);
          gemm(true, false, cols, D, rows, 1.0f, W, cols, Q.at(b, h, i0), Q.st, 1.0f, dK.at(b, g, c0), dK.st);
          gemm(true, false, cols, D, rows, 1.0f, Pn + i0 * T + c0, T, dO.at(b, h, i0), dO.st, 1.0f, dV.at(b, g, c0),
               dV.st);
        }
      }
    }
  });
  return {dq, dk, dv};
}

// ---- bf16 q, k, v with AVX512-BF16 products ----
//
// The same blocks as above with every product a bf16 one: each dot-product instruction multiplies
// 16 pairs of bf16 and adds them to 16 float32 sums. The scores, probabilities, their gradients and
// all sums stay float32; what enters a product is bf16: q, k, v and the output's gradient as given,
// the probabilities and the scores' gradients rounded to bf16 (as flash attention does on GPUs).
// Operands are packed as pairs along the summed dimension ("pairs" below: two bf16 in one 32-bit
// word, the first in the low half).

inline uint32_t pair_at(const uint16_t* p) {  // the 32-bit pair at p (p need not be 4-byte aligned)
  uint32_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// C (M, N) = A B, or C += A B with ACC (float32 C), or C = A B rounded to bf16 (Out uint16_t):
// A's row m holds K2 pairs from a + m * lda (bf16 elements; lda and the pairs' offsets even), B is
// packed by pairs: b + 2 * (k2 * ldb + n) holds the pair of column n for the sums' k2-th pair, and
// columns up to round_up(N, 16) may be read (their values only reach columns not stored).
template <int R, int U, typename Out, bool ACC>
EMLAB_AVX512BF16_INLINE inline void pairs_tile(int64_t K2, const uint16_t* a, int64_t lda, const uint16_t* b,
                                               int64_t ldb, Out* c, int64_t ldc, int64_t n_left) {
  __m512 acc[R * U] = {};  // zeros
  for (int64_t k2 = 0; k2 < K2; ++k2) {
    __m512bh bv[U];
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) bv[u] = (__m512bh)_mm512_loadu_si512(b + 2 * (k2 * ldb + 16 * u));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair_at(a + r * lda + 2 * k2)));
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[r * U + u] = _mm512_dpbf16_ps(acc[r * U + u], av, bv[u]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const __mmask16 m = lanes16(n_left - 16 * u);
      Out* cr = c + r * ldc + 16 * u;
      if constexpr (std::is_same_v<Out, uint16_t>) {
        store_bf16x16(cr, acc[r * U + u], m);
      } else {
        __m512 x = acc[r * U + u];
        if constexpr (ACC) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, cr));
        _mm512_mask_storeu_ps(cr, m, x);
      }
    }
}

template <int R, typename Out, bool ACC>
EMLAB_AVX512BF16_INLINE inline void pairs_rows(int64_t N, int64_t K2, const uint16_t* a, int64_t lda,
                                               const uint16_t* b, int64_t ldb, Out* c, int64_t ldc) {
  for (int64_t n = 0; n < N; n += 64) {
    const int64_t left = N - n;
    const uint16_t* bn = b + 2 * n;
    Out* cn = c + n;
    switch (std::min<int64_t>(4, (left + 15) / 16)) {
      case 4: pairs_tile<R, 4, Out, ACC>(K2, a, lda, bn, ldb, cn, ldc, left); break;
      case 3: pairs_tile<R, 3, Out, ACC>(K2, a, lda, bn, ldb, cn, ldc, left); break;
      case 2: pairs_tile<R, 2, Out, ACC>(K2, a, lda, bn, ldb, cn, ldc, left); break;
      default: pairs_tile<R, 1, Out, ACC>(K2, a, lda, bn, ldb, cn, ldc, left); break;
    }
  }
}

// The product over all M rows, four at a time.
template <typename Out, bool ACC = false>
EMLAB_AVX512BF16 void pairs_gemm(int64_t M, int64_t N, int64_t K2, const uint16_t* a, int64_t lda, const uint16_t* b,
                                 int64_t ldb, Out* c, int64_t ldc) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) pairs_rows<4, Out, ACC>(N, K2, a + m * lda, lda, b, ldb, c + m * ldc, ldc);
  switch (M - m) {
    case 3: pairs_rows<3, Out, ACC>(N, K2, a + m * lda, lda, b, ldb, c + m * ldc, ldc); break;
    case 2: pairs_rows<2, Out, ACC>(N, K2, a + m * lda, lda, b, ldb, c + m * ldc, ldc); break;
    case 1: pairs_rows<1, Out, ACC>(N, K2, a + m * lda, lda, b, ldb, c + m * ldc, ldc); break;
    default: break;
  }
}

// Rows x[0, n) (D bf16 each, st apart) packed so that they are the B of a product summing over D:
// dst pair (d2, j) = (x[j][2 d2], x[j][2 d2 + 1]), ldb = ld pairs per d2; columns [n, ld) zero.
void pack_transposed(const uint16_t* x, int64_t st, int64_t n, int64_t D, uint16_t* dst, int64_t ld) {
  uint32_t* out = reinterpret_cast<uint32_t*>(dst);
  for (int64_t d2 = 0; d2 < D / 2; ++d2) {
    uint32_t* o = out + d2 * ld;
    for (int64_t j = 0; j < n; ++j) o[j] = pair_at(x + j * st + 2 * d2);
    std::fill(o + n, o + ld, 0u);
  }
}

// Rows x[0, n) (D values each, float32 or bf16, st apart) packed so that they are the B of a product
// summing over the rows: dst pair (j2, d) = (x[2 j2][d], x[2 j2 + 1][d]) for j2 < ceil(n / 2),
// ld pairs per j2 (ld >= round_up(D, 16)); a missing odd row and the columns [D, ld) zero. float32
// values are rounded to bf16.
template <typename In>
EMLAB_AVX512 void pack_interleaved(const In* x, int64_t st, int64_t n, int64_t D, uint16_t* dst, int64_t ld) {
  constexpr bool kF32 = std::is_same_v<In, float>;
  // Output pair d of a 32-pair chunk: lane 2d of the permutation from row 2 j2, lane 2d + 1 from
  // row 2 j2 + 1 (indices >= 32 pick the second operand).
  alignas(64) uint16_t lo_idx[32], hi_idx[32];
  for (int d = 0; d < 16; ++d) {
    lo_idx[2 * d] = static_cast<uint16_t>(d), lo_idx[2 * d + 1] = static_cast<uint16_t>(32 + d);
    hi_idx[2 * d] = static_cast<uint16_t>(16 + d), hi_idx[2 * d + 1] = static_cast<uint16_t>(48 + d);
  }
  const __m512i lo = _mm512_load_si512(lo_idx), hi = _mm512_load_si512(hi_idx);
  auto load32 = [&](const In* row, int64_t d, int64_t left) EMLAB_AVX512_INLINE {  // 32 values as bf16
    if (row == nullptr) return _mm512_setzero_si512();
    if constexpr (kF32) {
      const __m512i a = _mm512_srli_epi32(round_bf16_bits(_mm512_maskz_loadu_ps(lanes16(left), row + d)), 16);
      const __mmask16 m2 = left > 16 ? lanes16(left - 16) : __mmask16{0};
      const __m512i b = _mm512_srli_epi32(round_bf16_bits(_mm512_maskz_loadu_ps(m2, row + d + 16)), 16);
      return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)), _mm512_cvtepi32_epi16(b), 1);
    } else {
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1ull << left) - 1);
      return _mm512_maskz_loadu_epi16(m, row + d);
    }
  };
  for (int64_t j2 = 0; 2 * j2 < n; ++j2) {
    const In* r0 = x + 2 * j2 * st;
    const In* r1 = 2 * j2 + 1 < n ? r0 + st : nullptr;
    uint16_t* o = dst + 2 * j2 * ld;
    int64_t d = 0;
    for (; d < D; d += 32) {
      const int64_t left = D - d;
      const __m512i a = load32(r0, d, left), b = load32(r1, d, left);
      // Pairs d .. d + 31 (the second half's lanes beyond D are zero: both rows were zero there).
      _mm512_storeu_si512(o + 2 * d, _mm512_permutex2var_epi16(a, lo, b));
      _mm512_storeu_si512(o + 2 * d + 32, _mm512_permutex2var_epi16(a, hi, b));
    }
    std::fill(o + 2 * d, o + 2 * ld, uint16_t{0});
  }
}

// Rows x[0, rows) (D bf16 each, st apart) packed as the A of a product over the rows:
// dst pair (d, i2) = (x[2 i2][d], x[2 i2 + 1][d]), lda = 2 * ceil(rows / 2) bf16 per d.
void pack_columns(const uint16_t* x, int64_t st, int64_t rows, int64_t D, uint16_t* dst) {
  const int64_t R2 = (rows + 1) / 2;
  for (int64_t d = 0; d < D; ++d)
    for (int64_t i2 = 0; i2 < R2; ++i2) {
      dst[2 * (d * R2 + i2)] = x[2 * i2 * st + d];
      dst[2 * (d * R2 + i2) + 1] = 2 * i2 + 1 < rows ? x[(2 * i2 + 1) * st + d] : uint16_t{0};
    }
}

// rows x n float32 values (ld apart) rounded to bf16 rows of n_even values (ldd apart; the value at
// n, when n < n_even, zero).
EMLAB_AVX512 void round_rows(const float* x, int64_t ld, int64_t rows, int64_t n, int64_t n_even, uint16_t* dst,
                             int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = lanes16(n - j);
      store_bf16x16(dst + r * ldd + j, _mm512_maskz_loadu_ps(m, x + r * ld + j), m);
    }
    if (n < n_even) dst[r * ldd + n] = 0;
  }
}

// A block's first column rounded down to even (pairs start on even columns; probabilities and
// their gradients left of the block's first key are zero).
inline int64_t first_even_key(int64_t i0, int64_t window) { return first_key(i0, window) & ~int64_t{1}; }

// As attention_forward for bf16 q, k, v (D even): out (B, T, H, D) bf16, probabilities float32.
EMLAB_AVX512BF16 std::pair<torch::Tensor, torch::Tensor> attention_forward_bf16(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& key_bias,
    int64_t window, float scale, bool save_probs) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), G = H / k.size(1);
  torch::Tensor out = torch::empty({B, T, H, D}, q.options());
  torch::Tensor probs = save_probs ? torch::empty({B, H, T, T}, q.options().dtype(torch::kFloat32)) : torch::Tensor();
  const Rows<uint16_t> Q(q, false), K(k, false), V(v, false), O(out, true);
  float* P = save_probs ? probs.data_ptr<float>() : nullptr;
  const float* kb = key_bias.numel() > 0 ? key_bias.data_ptr<float>() : nullptr;
  const int64_t Tp = round_up(T, 2), ldk = round_up(T, 16) + 16, ldv = round_up(D, 32);
  at::parallel_for(0, B * H, 1, [&](int64_t a, int64_t e) {
    std::vector<uint16_t> kt(static_cast<size_t>(D * ldk)), vp(static_cast<size_t>(Tp * ldv)),
        pb(static_cast<size_t>(kCausalBlockRows * Tp));
    std::vector<float> block(save_probs ? 0 : static_cast<size_t>(kCausalBlockRows * T));
    for (int64_t n = a; n < e; ++n) {
      const int64_t b = n / H, h = n % H, g = h / G;
      if (n == a || h % G == 0) {  // the kv head's keys and values packed (once per kv head in a range)
        pack_transposed(K.at(b, g), K.st, T, D, kt.data(), ldk);
        pack_interleaved(V.at(b, g), V.st, T, D, vp.data(), ldv);
      }
      for (int64_t i0 = 0; i0 < T; i0 += kCausalBlockRows) {
        const int64_t i1 = std::min(T, i0 + kCausalBlockRows), c0 = first_even_key(i0, window);
        const int64_t rows = i1 - i0, cols = i1 - c0, cols_even = round_up(cols, 2);
        float* Pb = save_probs ? P + (n * T + i0) * T : block.data();  // the block's rows of probabilities, T apart
        // Raw scores of the block's rows over the columns [c0, i1).
        pairs_gemm<float>(rows, cols, D / 2, Q.at(b, h, i0), Q.st, kt.data() + 2 * c0, ldk, Pb + c0, T);
        for (int64_t i = i0; i < i1; ++i)
          softmax_row(Pb + (i - i0) * T, first_key(i, window), i + 1, T, kb ? kb + b * T : nullptr, scale);
        // O = P V, P rounded to bf16 (its column past T, when cols is odd, zero).
        round_rows(Pb + c0, T, rows, std::min(cols_even, T - c0), cols_even, pb.data(), cols_even);
        pairs_gemm<uint16_t>(rows, D, cols_even / 2, pb.data(), cols_even, vp.data() + c0 * ldv, ldv,
                             O.at(b, h, i0), O.st);
      }
    }
  });
  return {out, probs};
}

// As attention_backward for bf16: dq (B, T, H, D), dk and dv (B, T, Hkv, D) in bf16, from dout
// (B, T, H, D) bf16. dk and dv are summed (over the blocks and the query heads of a kv head) in
// float32, transposed (D, T), and rounded once at the end.
EMLAB_AVX512BF16 std::vector<torch::Tensor> attention_backward_bf16(const torch::Tensor& dout, const torch::Tensor& q,
                                                                    const torch::Tensor& k, const torch::Tensor& v,
                                                                    const torch::Tensor& probs, int64_t window,
                                                                    float scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), Hkv = k.size(1), G = H / Hkv;
  torch::Tensor dq = torch::empty({B, T, H, D}, q.options());
  torch::Tensor dk = torch::empty({B, T, Hkv, D}, q.options());
  torch::Tensor dv = torch::empty({B, T, Hkv, D}, q.options());
  const Rows<uint16_t> Q(q, false), K(k, false), V(v, false), dO(dout, true), dQ(dq, true), dK(dk, true), dV(dv, true);
  const float* P = probs.data_ptr<float>();
  const int64_t Tp = round_up(T, 2), ldt = round_up(T, 16) + 16, ldd = round_up(D, 32);
  const int64_t R = kCausalBlockRows, R2 = R / 2;
  at::parallel_for(0, B * Hkv, 1, [&](int64_t a, int64_t e) {
    std::vector<uint16_t> vt(static_cast<size_t>(D * ldt)), kp(static_cast<size_t>(Tp * ldd)),
        sb(static_cast<size_t>(R * Tp)), spack(static_cast<size_t>(2 * R2 * ldt)),
        ppack(static_cast<size_t>(2 * R2 * ldt)), qcols(static_cast<size_t>(2 * D * R2)),
        ocols(static_cast<size_t>(2 * D * R2));
    std::vector<float> w(static_cast<size_t>(R * Tp)), dkt(static_cast<size_t>(D * Tp)),
        dvt(static_cast<size_t>(D * Tp));
    for (int64_t n = a; n < e; ++n) {
      const int64_t b = n / Hkv, g = n % Hkv;
      pack_transposed(V.at(b, g), V.st, T, D, vt.data(), ldt);
      pack_interleaved(K.at(b, g), K.st, T, D, kp.data(), ldd);
      std::fill(dkt.begin(), dkt.end(), 0.0f);
      std::fill(dvt.begin(), dvt.end(), 0.0f);
      for (int64_t h = g * G; h < (g + 1) * G; ++h) {
        const float* Pn = P + (b * H + h) * T * T;
        for (int64_t i0 = 0; i0 < T; i0 += R) {
          const int64_t i1 = std::min(T, i0 + R), c0 = first_even_key(i0, window);
          const int64_t rows = i1 - i0, cols = i1 - c0, cols_even = round_up(cols, 2), rows2 = (rows + 1) / 2;
          float* W = w.data();
          // dP = dO V^T, then dS row by row (in W, cols apart).
          pairs_gemm<float>(rows, cols, D / 2, dO.at(b, h, i0), dO.st, vt.data() + 2 * c0, ldt, W, cols);
          for (int64_t r = 0; r < rows; ++r) softmax_backward_row(Pn + (i0 + r) * T + c0, W + r * cols, cols, scale);
          // dQ = dS K (dS rounded to bf16).
          round_rows(W, cols, rows, cols, cols_even, sb.data(), cols_even);
          pairs_gemm<uint16_t>(rows, D, cols_even / 2, sb.data(), cols_even, kp.data() + c0 * ldd, ldd,
                               dQ.at(b, h, i0), dQ.st);
          // dK^T[:, c0:i1] += Q^T dS and dV^T[:, c0:i1] += dO^T P: the block's rows are the sums.
          pack_interleaved(W, cols, rows, cols, spack.data(), ldt);
          pack_interleaved(Pn + i0 * T + c0, T, rows, cols, ppack.data(), ldt);
          pack_columns(Q.at(b, h, i0), Q.st, rows, D, qcols.data());
          pack_columns(dO.at(b, h, i0), dO.st, rows, D, ocols.data());
          pairs_gemm<float, true>(D, cols, rows2, qcols.data(), 2 * rows2, spack.data(), ldt, dkt.data() + c0, Tp);
          pairs_gemm<float, true>(D, cols, rows2, ocols.data(), 2 * rows2, ppack.data(), ldt, dvt.data() + c0, Tp);
        }
      }
      // (D, T) float32 sums to (T, D) bf16 rows.
      for (int64_t t = 0; t < T; ++t) {
        uint16_t* kr = dK.at(b, g, t);
        uint16_t* vr = dV.at(b, g, t);
        for (int64_t d = 0; d < D; ++d) {
          kr[d] = c10::BFloat16(dkt[d * Tp + t]).x;
          vr[d] = c10::BFloat16(dvt[d * Tp + t]).x;
        }
      }
    }
  });
  return {dq, dk, dv};
}

// BF16DOT: bf16 q, k, v through the AVX512-BF16 products; otherwise float32 q, k, v.
template <bool BF16DOT>
struct CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn<BF16DOT>> {
  // Returns out (B, T, H, D).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& key_bias, int64_t window, double scale) {
    auto [out, probs] = BF16DOT ? attention_forward_bf16(q, k, v, key_bias, window, static_cast<float>(scale), true)
                                : attention_forward(q, k, v, key_bias, window, static_cast<float>(scale), true);
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["window"] = window;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor dout = rows_contiguous(grads[0].to(saved[0].scalar_type()));  // (B, T, H, D)
    const int64_t window = ctx->saved_data["window"].toInt();
    const auto scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    auto d = BF16DOT ? attention_backward_bf16(dout, saved[0], saved[1], saved[2], saved[3], window, scale)
                     : attention_backward(dout, saved[0], saved[1], saved[2], saved[3], window, scale);
    // Back to (B, H, T, D) (views of the (B, T, H, D) buffers).
    return {d[0].transpose(1, 2), d[1].transpose(1, 2), d[2].transpose(1, 2), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& key_mask, int64_t window, double scale, bool bf16_products) {
  if (!cpu_has_avx512() || !blas_sgemm()) return {};
  const auto dtype = q.scalar_type();
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16) return {};
  for (const auto* t : {&q, &k, &v})
    if (!t->device().is_cpu() || t->scalar_type() != dtype || t->dim() != 4) return {};
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), Hkv = k.size(1);
  if (Hkv == 0 || H % Hkv != 0 || k.sizes() != v.sizes() || k.size(0) != B || k.size(2) != T || k.size(3) != D)
    return {};
  if (key_mask.defined() && (key_mask.dim() != 2 || key_mask.size(0) != B || key_mask.size(1) != T)) return {};
  // The key mask as an additive bias: 0 where a key may be attended, -inf where not; empty: no mask
  // (autograd functions take no undefined tensors).
  const auto f32 = q.options().dtype(torch::kFloat32);
  torch::Tensor key_bias = torch::empty({0}, f32);
  if (key_mask.defined())
    key_bias = torch::zeros({B, T}, f32).masked_fill(key_mask.to(torch::kCPU) == 0, kNegInf).contiguous();
  // Without gradients (prefill, scoring, evaluation) the forward alone, keeping no (B, H, T, T)
  // probabilities: the same values.
  const bool grad = torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  const auto sc = static_cast<float>(scale);
  if (dtype == torch::kBFloat16 && bf16_products && cpu_has_avx512_bf16() && D % 2 == 0) {
    const torch::Tensor qc = rows_contiguous(q), kc = rows_contiguous(k), vc = rows_contiguous(v);
    torch::Tensor out = grad ? CausalAttentionFn<true>::apply(qc, kc, vc, key_bias, window, scale)
                             : attention_forward_bf16(qc, kc, vc, key_bias, window, sc, false).first;  // (B, T, H, D)
    return out.transpose(1, 2);                                                                         // (B, H, T, D)
  }
  // float32, or bf16 q, k, v widened (exactly) and the output rounded back: the products,
  // probabilities and sums in float32.
  auto in = [](const torch::Tensor& t) { return rows_contiguous(t.to(torch::kFloat32)); };
  torch::Tensor out = grad ? CausalAttentionFn<false>::apply(in(q), in(k), in(v), key_bias, window, scale)
                           : attention_forward(in(q), in(k), in(v), key_bias, window, sc, false).first;  // (B, T, H, D)
  return out.to(dtype).transpose(1, 2);                                                                 // (B, H, T, D)
}

}  // namespace emlab::model_detail

#else  // not x86-64: the caller keeps torch's ops

namespace emlab::model_detail {
torch::Tensor causal_attention(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                               int64_t, double, bool) {
  return {};
}
}  // namespace emlab::model_detail

#endif
