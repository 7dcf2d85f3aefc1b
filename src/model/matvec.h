// Products of a few rows with a weight matrix on the CPU (decode at small batch), private to
// src/model. Decode reads every weight once per step for a handful of rows: bandwidth-bound work
// that matrix-matrix kernels (which pack the weight first, every call) do poorly. Also attention's
// two products over a KV cache at decode, many tiny products that batched BLAS calls do poorly.
#pragma once

#include <torch/torch.h>

namespace emlab::model_detail {

constexpr int64_t kSmallRowsMax = 64;  // rows of x up to which small_rows_linear may take the product
constexpr int64_t kRowsKernelMax = 4;  // rows up to which the one-weight-row-at-a-time kernels exist
constexpr int64_t kBf16DotRowsMax = 64;  // bf16 rows up to which the AVX512-BF16 tiles take the product
constexpr int64_t kBf16DotRowsMaxAmx = 32;  // the same where the CPU also has AMX (oneDNN's AMX beyond)

// Which kernel small_rows_linear uses (kNone: the caller uses torch's product).
enum class SmallRowsPath {
  kNone,
  kRows,   // each weight row read once for all R <= 4 rows, one dot product per (row, output)
  kTiles,  // 4 outputs x 4 rows per tile, the 16 sums reduced together; the 4 weight rows stay in L1
  kTilesBf16Dot,  // the same tiles on bf16 rows and weights with AVX512-BF16 dot products
};

// The choice for `rows` rows of a weight of `dtype`, on a CPU with AVX-512 (F, BW, VL), from
// bench/matvec_bench.cpp (bench/RESULTS.md; 2 threads, libtorch 1.13):
// - float32, 1 row: kRows (as fast as OpenBLAS's mv or 1.1-1.2x it from cache, the same from
//   memory on its own; in a whole decode step 1.07-1.16x, bench/RESULTS.md "Weights in huge pages");
// - float32, 2-4 rows: kRows (1.1-3.6x linear; the tiles are 1.1-2.2x it where the weight is in
//   cache but down to 0.7x on a large one read from memory); 5-64 rows: kTiles (1.2-4.5x linear, cold
//   or cached, but for a 4864-wide weight at 64 rows: 1.0x);
// - bfloat16, 1 row: kRows (1.7-2.5x oneDNN; on a CPU with AVX512-BF16 by its dot products, no
//   widening: 1.3-1.6x the widening kernel from cache, bench/RESULTS.md "Decode at batch 1 as one
//   fused step"); 2-64 rows on a CPU with AVX512-BF16: kTilesBf16Dot (1.1-3.9x oneDNN, cold or
//   cached; at 2-4 rows 0.9-3.9x the widening row kernels and at 48-64 rows 1.0-1.6x oneDNN,
//   bench/RESULTS.md "Small-row tiles prefetching"; on a CPU with AMX only 2-32 rows, as before
//   that measurement: oneDNN's AMX products were not measured against the tiles); elsewhere 2-4
//   rows: kRows, 5-64 rows left to oneDNN (widening bf16 to float32 in the float32 tiles was
//   0.9-1.5x oneDNN at 2-8 rows);
// - anything else: kNone.
SmallRowsPath small_rows_path(int64_t rows, torch::ScalarType dtype);

// y (R, out) = x (R, in) W^T for W (out, in) contiguous on the CPU, no gradient wanted, through the
// kernel small_rows_path picks. Dot products accumulate in float32 (bf16 weights widened as read, or
// multiplied pairwise by AVX512-BF16 instructions: one row, and the tiles);
// the result has x's dtype. Parallel over outputs on torch's intra-op threads. Returns an undefined
// tensor where the path is kNone or the inputs are not of this form.
torch::Tensor small_rows_linear(const torch::Tensor& x, const torch::Tensor& weight);

// The kRows product on raw rows (CPU with AVX-512 only; R <= kRowsKernelMax): y (R, out) float32 =
// x (R, C) float32 W^T for W (out, C) float32 or bf16 (`bf16`), parallel over outputs as above.
// xb: the same rows in bf16 (bf16 weights), read instead of x where rows_product_reads_bf16 (x may
// then be null); null: always the widening kernel on x.
void rows_product(const void* w, const float* x, float* y, int64_t R, int64_t out, int64_t C, bool bf16,
                  const uint16_t* xb = nullptr);
// One weight of rows_products: W (out, C) float32 or bf16, and its output y (R, out) float32.
struct RowsProductPart {
  const void* w;  // W (out, C)
  float* y;       // (R, out)
  int64_t out;    // W's rows
};
// rows_product for n weights on the same rows x (xb), in one parallel pass over all their outputs:
// one fork-join of the threads instead of one per weight; every output's sum as rows_product's.
void rows_products(const RowsProductPart* parts, int64_t n, const float* x, int64_t R, int64_t C, bool bf16,
                   const uint16_t* xb = nullptr);
// Whether rows_product reads the bf16 rows xb rather than x: one bf16 row on a CPU with AVX512-BF16
// (its dot products, no widening).
bool rows_product_reads_bf16(int64_t R, bool bf16);

// Attention over a KV cache at decode: R = (query heads per kv head) x (new positions) rows per
// (batch row, kv head) against that head's S cached positions. Through torch::matmul these are
// B x Hkv separate BLAS calls per product, layer and step (each a few hundred FLOPs); here one
// parallel loop over the pairs with the kernels above. CPU with AVX-512, float32 or bf16, no
// gradient wanted, R <= kAttentionRowsMax; otherwise an undefined tensor (the caller uses matmul).
constexpr int64_t kAttentionRowsMax = 16;
// Whether the two kernels below read a cache like `cache` (B, Hkv, capacity, D): on a CPU with
// AVX-512, float32 or bf16, rows of D contiguous (KVCache then leaves finished rows in place).
bool attention_kernels_read(const torch::Tensor& cache);
// scores (B, Hkv, R, S) float32 = q (B, Hkv, R, D) k^T for k (B, Hkv, S, D) of q's dtype with
// rows of D contiguous and its B x Hkv blocks evenly strided: a cache (B, Hkv, capacity, D)
// narrowed to its S filled positions. With `cache_rows` ((B) int64 on the CPU), q's row b reads
// the cache's row cache_rows[b] (k then has any number of rows: a cache whose finished rows stay in place).
// With `prefix`, positions [0, prefix->length) of row b come from the prefix's row prefix->rows[b]
// instead (KVCache's shared prefix), the cache's own row supplying the rest.
struct SharedPrefix {
  torch::Tensor side;  // (U, Hkv, >= length, D): keys or values of the shared positions, as the cache
  torch::Tensor rows;  // (B) int64 on the CPU: the prefix row of each batch row
  int64_t length = 0;  // positions shared
};
torch::Tensor attention_scores(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& cache_rows = {},
                               const SharedPrefix* prefix = nullptr);
// out (B, Hkv, R, D) in v's dtype = p (B, Hkv, R, S) float32 v for v (B, Hkv, S, D) as k above.
torch::Tensor attention_values(const torch::Tensor& p, const torch::Tensor& v, const torch::Tensor& cache_rows = {},
                               const SharedPrefix* prefix = nullptr);

// The two products above for one batch row on raw memory (CPU with AVX-512 only), the same kernels
// and values: kv head h's S keys or values (S, D), float32 or bf16 (`bf16`), at k or v + h *
// block_stride elements (a contiguous cache (1, Hkv, capacity, D): block_stride = capacity * D).
// scores: y (Hkv, R, S) float32 of q (Hkv, R, D) float32, with qb the same rows in bf16 (read by
// the AVX512-BF16 tiles; may be null in float32). values: y (Hkv, R, D) float32 of p (Hkv, R, S)
// float32. False (nothing written) where no kernel takes R rows.
bool attention_scores_row(const float* q, const uint16_t* qb, const void* k, int64_t block_stride, int64_t Hkv,
                          int64_t R, int64_t S, int64_t D, bool bf16, float* y);
bool attention_values_row(const float* p, const void* v, int64_t block_stride, int64_t Hkv, int64_t R, int64_t S,
                          int64_t D, bool bf16, float* y);

}  // namespace emlab::model_detail
