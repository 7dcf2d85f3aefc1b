// Fused causal self-attention on the CPU (see model/causal_attention.h).
#include "model/causal_attention.h"

#if defined(__x86_64__)

#include <algorithm>
#include <cmath>
#include <limits>
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

// A (B, N, T, D)-indexed float32 tensor's rows: element (b, n, t, :) at base + b*sb + n*sn + t*st.
struct Rows {
  float* base;
  int64_t sb, sn, st;
  Rows(const torch::Tensor& x, bool bthd)  // bthd: x is (B, T, N, D) rather than (B, N, T, D)
      : base(x.data_ptr<float>()),
        sb(x.stride(0)),
        sn(x.stride(bthd ? 2 : 1)),
        st(x.stride(bthd ? 1 : 2)) {}
  float* at(int64_t b, int64_t n, int64_t t = 0) const { return base + b * sb + n * sn + t * st; }
};

// The first key query row i may see: 0, or with a window i - window + 1. For a block of rows
// [i0, i1), the first column it needs.
inline int64_t first_key(int64_t i, int64_t window) { return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; }

// x (4-D) as BLAS can take its rows: the last dimension contiguous and rows at least a row apart
// (a copy where not).
torch::Tensor rows_contiguous(const torch::Tensor& x) {
  return x.stride(3) == 1 && x.stride(2) >= x.size(3) && x.stride(1) >= x.size(3) ? x : x.contiguous();
}

// Forward: out (B, T, H, D) and the probabilities (B, H, T, T).
std::pair<torch::Tensor, torch::Tensor> attention_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                          const torch::Tensor& v, const torch::Tensor& key_bias,
                                                          int64_t window, float scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), G = H / k.size(1);
  torch::Tensor out = torch::empty({B, T, H, D}, q.options());
  torch::Tensor probs = torch::empty({B, H, T, T}, q.options());
  const Rows Q(q, false), K(k, false), V(v, false), O(out, true);
  float* P = probs.data_ptr<float>();
  const float* kb = key_bias.numel() > 0 ? key_bias.data_ptr<float>() : nullptr;
  at::parallel_for(0, B * H, 1, [&](int64_t a, int64_t e) {
    for (int64_t n = a; n < e; ++n) {
      const int64_t b = n / H, h = n % H, g = h / G;
      float* Pn = P + n * T * T;
      for (int64_t i0 = 0; i0 < T; i0 += kCausalBlockRows) {
        const int64_t i1 = std::min(T, i0 + kCausalBlockRows), c0 = first_key(i0, window);
        // Raw scores of the block's rows over the columns [c0, i1): Q[i0:i1] K[c0:i1]^T.
        gemm(false, true, i1 - i0, i1 - c0, D, 1.0f, Q.at(b, h, i0), Q.st, K.at(b, g, c0), K.st, 0.0f,
             Pn + i0 * T + c0, T);
        for (int64_t i = i0; i < i1; ++i)
          softmax_row(Pn + i * T, first_key(i, window), i + 1, T, kb ? kb + b * T : nullptr, scale);
        // O[i0:i1] = P[i0:i1, c0:i1] V[c0:i1] (zeros beyond each row's last key).
        gemm(false, false, i1 - i0, D, i1 - c0, 1.0f, Pn + i0 * T + c0, T, V.at(b, g, c0), V.st, 0.0f,
             O.at(b, h, i0), O.st);
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
  const Rows Q(q, false), K(k, false), V(v, false), dO(dout, true), dQ(dq, true), dK(dk, true), dV(dv, true);
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

struct CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn> {
  // Returns out (B, T, H, D).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& key_bias, int64_t window, double scale) {
    auto [out, probs] = attention_forward(q, k, v, key_bias, window, static_cast<float>(scale));
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["window"] = window;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor dout = rows_contiguous(grads[0]);  // (B, T, H, D)
    auto d = attention_backward(dout, saved[0], saved[1], saved[2], saved[3], ctx->saved_data["window"].toInt(),
                                static_cast<float>(ctx->saved_data["scale"].toDouble()));
    // Back to (B, H, T, D) (views of the (B, T, H, D) buffers).
    return {d[0].transpose(1, 2), d[1].transpose(1, 2), d[2].transpose(1, 2), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& key_mask, int64_t window, double scale) {
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
  // bf16 q, k, v are widened (exactly) and the output rounded back: the products, probabilities and
  // sums in float32.
  auto in = [](const torch::Tensor& t) { return rows_contiguous(t.to(torch::kFloat32)); };
  torch::Tensor out = CausalAttentionFn::apply(in(q), in(k), in(v), key_bias, window, scale);  // (B, T, H, D)
  return out.to(dtype).transpose(1, 2);                                                        // (B, H, T, D)
}

}  // namespace emlab::model_detail

#else  // not x86-64: the caller keeps torch's ops

namespace emlab::model_detail {
torch::Tensor causal_attention(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                               int64_t, double) {
  return {};
}
}  // namespace emlab::model_detail

#endif
