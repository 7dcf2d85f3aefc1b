// The small-row products (src/model/matvec.h) against float64 products, in the cases they take,
// and the cases they leave to torch.
#include <gtest/gtest.h>

#include "emlab/lora.h"
#include "emlab/runtime.h"
#include "model/avx512.h"
#include "model/matvec.h"

#include <string>

namespace emlab::model_detail {
namespace {

// The product of x (R rows) and w against float64 on the same rounded inputs, directly and through
// the layer entry point (with a bias and x's leading shape).
void expect_matches_float64(const torch::Tensor& x, const torch::Tensor& w, const std::string& what) {
  const auto dt = w.scalar_type();
  const int64_t out = w.size(0), C = w.size(1), R = x.numel() / C;
  torch::Tensor y = small_rows_linear(x, w);
  ASSERT_TRUE(y.defined()) << what;
  EXPECT_EQ(y.scalar_type(), dt);
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({R, out}));
  torch::Tensor ref = torch::matmul(x.to(torch::kFloat64).reshape({R, C}), w.to(torch::kFloat64).t());
  // fp32: accumulation-order rounding only; bf16: the output rounded to 8 significant bits (half an
  // ulp, 2^-9 relative), elementwise.
  const double rel = dt == torch::kFloat32 ? 1e-5 : 1.0 / 256;
  EXPECT_TRUE(((y.to(torch::kFloat64) - ref).abs() <= rel * ref.abs() + 1e-4).all().item<bool>())
      << what << " max diff " << (y.to(torch::kFloat64) - ref).abs().max().item<double>();
  // The bias is added in the dtype: one more rounding.
  torch::Tensor bias = torch::randn({out}).to(dt);
  torch::Tensor b64 = bias.to(torch::kFloat64);
  torch::Tensor z = linear_small_rows_aware(x, w, bias);
  EXPECT_EQ(z.sizes(), torch::IntArrayRef({R, 1, out}));
  EXPECT_TRUE(((z.to(torch::kFloat64).reshape({R, out}) - ref - b64).abs() <= 2 * rel * (ref.abs() + b64.abs()) + 1e-4)
                  .all()
                  .item<bool>())
      << what;
}

TEST(SmallRowsLinear, PathFollowsTheMeasuredRule) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the kernels are never taken";
  for (int64_t R = 1; R <= kRowsKernelMax; ++R) EXPECT_EQ(small_rows_path(R, torch::kFloat32), SmallRowsPath::kRows);
  for (int64_t R = kRowsKernelMax + 1; R <= kSmallRowsMax; ++R)
    EXPECT_EQ(small_rows_path(R, torch::kFloat32), SmallRowsPath::kTiles);
  EXPECT_EQ(small_rows_path(kSmallRowsMax + 1, torch::kFloat32), SmallRowsPath::kNone);
  // bf16: one row by the row kernel; 2-64 rows by the AVX512-BF16 tiles where the CPU has them
  // (2-32 where it also has AMX), else the row kernels up to 4 rows and torch beyond.
  EXPECT_EQ(small_rows_path(1, torch::kBFloat16), SmallRowsPath::kRows);
  const bool dot = cpu_has_avx512_bf16();
  const int64_t dot_max = cpu_bf16_support() == CpuBf16::Amx ? kBf16DotRowsMaxAmx : kBf16DotRowsMax;
  for (int64_t R = 2; R <= kRowsKernelMax; ++R)
    EXPECT_EQ(small_rows_path(R, torch::kBFloat16), dot ? SmallRowsPath::kTilesBf16Dot : SmallRowsPath::kRows);
  for (int64_t R = kRowsKernelMax + 1; R <= kSmallRowsMax + 1; ++R)
    EXPECT_EQ(small_rows_path(R, torch::kBFloat16),
              dot && R <= dot_max ? SmallRowsPath::kTilesBf16Dot : SmallRowsPath::kNone)
        << R << " rows";
  EXPECT_EQ(small_rows_path(2, torch::kFloat64), SmallRowsPath::kNone);
  EXPECT_EQ(small_rows_path(0, torch::kFloat32), SmallRowsPath::kNone);
}

TEST(SmallRowsLinear, EqualsFloat64ProductForEveryRowCountAndWidth) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the kernels are never taken";
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  // Widths: a multiple of 64 (all partial sums), of 16 only, and with a masked tail; outputs: fewer
  // than one tile, tiles and a remainder, many tiles split across threads; rows: every count of the
  // row kernels, full and partial row tiles, the largest.
  for (int64_t C : {256, 48, 203}) {
    for (int64_t out : {1, 37, 1000}) {
      torch::Tensor w64 = torch::randn({out, C}, torch::kFloat64);
      for (int64_t R : {1, 2, 3, 4, 5, 6, 7, 8, 13, 16, 31, 32, 33, 64}) {
        torch::Tensor x64 = torch::randn({R, 1, C}, torch::kFloat64);
        for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
          torch::Tensor w = w64.to(dt), x = x64.to(dt);
          const std::string what = "C=" + std::to_string(C) + " out=" + std::to_string(out) + " R=" +
                                   std::to_string(R) + (dt == torch::kFloat32 ? " fp32" : " bf16");
          const bool taken = small_rows_path(R, dt) != SmallRowsPath::kNone;
          ASSERT_EQ(small_rows_linear(x, w).defined(), taken) << what;
          if (taken) expect_matches_float64(x, w, what);
        }
      }
    }
  }
}

TEST(SmallRowsLinear, LeavesGradientsFloat64AndLargerBatchesToTorch) {
  torch::Tensor w = torch::randn({8, 32}), x = torch::randn({2, 32});
  EXPECT_FALSE(small_rows_linear(x.to(torch::kFloat64), w.to(torch::kFloat64)).defined());
  EXPECT_FALSE(small_rows_linear(torch::randn({kSmallRowsMax + 1, 32}), w).defined());
  EXPECT_FALSE(small_rows_linear(x, w.t().contiguous().t()).defined());  // not row-major
  torch::Tensor wg = w.clone().requires_grad_(true);
  EXPECT_FALSE(small_rows_linear(x, wg).defined());
  // And the gradient still flows through the entry point (linear), equal to x^T g.
  torch::Tensor y = linear_small_rows_aware(x, wg);
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(wg.grad(), torch::ones({2, 8}).t().matmul(x)));
}

// A cache view like the transformer's: (B, Hkv, S, D) of a (B, Hkv, capacity, D) allocation.
torch::Tensor cache_view(const torch::Tensor& full, int64_t S) { return full.narrow(2, 0, S); }

TEST(AttentionKernels, EqualFloat64ProductsForEveryRowCountAndWidth) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the kernels are never taken";
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  // Head widths: two full vectors, one with a masked tail, below one vector, 128; positions: fewer
  // than one tile, tiles and a remainder, many; rows: the row kernels, the tiles, the largest.
  for (int64_t D : {32, 40, 7, 128}) {
    for (int64_t S : {1, 3, 17, 90}) {
      for (int64_t R : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{5}, int64_t{7}, int64_t{8}, int64_t{13}, kAttentionRowsMax}) {
        const int64_t B = 3, Hkv = 2, cap = S + 5;
        torch::Tensor q64 = torch::randn({B, Hkv, R, D}, torch::kFloat64);
        torch::Tensor k64 = torch::randn({B, Hkv, cap, D}, torch::kFloat64);
        torch::Tensor v64 = torch::randn({B, Hkv, cap, D}, torch::kFloat64);
        torch::Tensor p = torch::softmax(torch::randn({B, Hkv, R, S}), -1);  // float32
        for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
          const std::string what = "D=" + std::to_string(D) + " S=" + std::to_string(S) + " R=" + std::to_string(R) +
                                   (dt == torch::kFloat32 ? " fp32" : " bf16");
          torch::Tensor q = q64.to(dt), k = cache_view(k64.to(dt), S), v = cache_view(v64.to(dt), S);
          torch::Tensor scores = attention_scores(q, k);
          const bool taken = dt == torch::kFloat32 || R <= kRowsKernelMax || cpu_has_avx512_bf16();
          ASSERT_EQ(scores.defined(), taken) << what;
          if (taken) {
            EXPECT_EQ(scores.scalar_type(), torch::kFloat32) << what;
            torch::Tensor ref = torch::matmul(q.to(torch::kFloat64), k.to(torch::kFloat64).transpose(-1, -2));
            EXPECT_TRUE(((scores.to(torch::kFloat64) - ref).abs() <= 1e-5 * ref.abs() + 1e-5).all().item<bool>())
                << what << " max diff " << (scores.to(torch::kFloat64) - ref).abs().max().item<double>();
          }
          torch::Tensor out = attention_values(p, v);
          ASSERT_TRUE(out.defined()) << what;
          EXPECT_EQ(out.scalar_type(), dt) << what;
          torch::Tensor ref = torch::matmul(p.to(torch::kFloat64), v.to(torch::kFloat64));
          // fp32: accumulation order; bf16: the output rounded to 8 significant bits.
          const double rel = dt == torch::kFloat32 ? 1e-5 : 1.0 / 256;
          EXPECT_TRUE(((out.to(torch::kFloat64) - ref).abs() <= rel * ref.abs() + 1e-5).all().item<bool>())
              << what << " max diff " << (out.to(torch::kFloat64) - ref).abs().max().item<double>();
          // Through a row map into a cache of 5 rows: the same values as those rows gathered.
          const torch::Tensor rows = torch::tensor(std::vector<int64_t>{4, 0, 2});
          torch::Tensor k5 = torch::randn({5, Hkv, cap, D}).to(dt), v5 = torch::randn({5, Hkv, cap, D}).to(dt);
          if (taken)
            EXPECT_TRUE(torch::equal(attention_scores(q, cache_view(k5, S), rows),
                                     attention_scores(q, cache_view(k5.index_select(0, rows), S))))
                << what << " row map";
          EXPECT_TRUE(torch::equal(attention_values(p, cache_view(v5, S), rows),
                                   attention_values(p, cache_view(v5.index_select(0, rows), S))))
              << what << " row map";
        }
      }
    }
  }
}

// A shared prefix (KVCache): row b's first P positions read from prefix row prefix_rows[b], the rest
// from its own cache row. The kernels must give exactly what they give on one cache holding every
// position, for the one-row kernels (which read both blocks in place) and the tiles (which read a
// copy), with and without a row map.
TEST(AttentionKernels, ASharedPrefixGivesExactlyTheWholeRows) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the kernels are never taken";
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const int64_t B = 5, U = 2, Hkv = 2;
  const torch::Tensor prefix_rows = torch::tensor(std::vector<int64_t>{1, 0, 1, 1, 0});
  const torch::Tensor rows = torch::tensor(std::vector<int64_t>{6, 0, 3, 2, 5});  // into 7 cache rows
  for (int64_t D : {32, 7}) {
    for (int64_t S : {5, 17, 40}) {
      for (int64_t P : {int64_t{1}, int64_t{3}, int64_t{16}, S - 1, S}) {
        if (P > S) continue;
        for (int64_t R : {int64_t{1}, int64_t{3}, int64_t{8}}) {
          for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
            if (dt == torch::kBFloat16 && R > kRowsKernelMax && !cpu_has_avx512_bf16()) continue;  // not taken
            const std::string what = "D=" + std::to_string(D) + " S=" + std::to_string(S) + " P=" + std::to_string(P) +
                                     " R=" + std::to_string(R) + (dt == torch::kFloat32 ? " fp32" : " bf16");
            const int64_t cap = S + 3;
            torch::Tensor q = torch::randn({B, Hkv, R, D}).to(dt);
            torch::Tensor p = torch::softmax(torch::randn({B, Hkv, R, S}), -1);
            for (bool mapped : {false, true}) {
              const int64_t Bc = mapped ? 7 : B;
              torch::Tensor pk = torch::randn({U, Hkv, cap, D}).to(dt), pv = torch::randn({U, Hkv, cap, D}).to(dt);
              torch::Tensor k = torch::randn({Bc, Hkv, cap, D}).to(dt), v = torch::randn({Bc, Hkv, cap, D}).to(dt);
              // The whole rows: the batch's own rows with the prefix written over their first P positions.
              auto whole = [&](const torch::Tensor& own, const torch::Tensor& pre) {
                torch::Tensor w = (mapped ? own.index_select(0, rows) : own).clone();
                w.narrow(2, 0, P).copy_(pre.index_select(0, prefix_rows).narrow(2, 0, P));
                return cache_view(w, S);
              };
              const torch::Tensor r = mapped ? rows : torch::Tensor();
              const SharedPrefix sk{pk, prefix_rows, P}, sv{pv, prefix_rows, P};
              torch::Tensor scores = attention_scores(q, cache_view(k, S), r, &sk);
              ASSERT_TRUE(scores.defined()) << what;
              EXPECT_TRUE(torch::equal(scores, attention_scores(q, whole(k, pk)))) << what << (mapped ? " mapped" : "");
              torch::Tensor out = attention_values(p, cache_view(v, S), r, &sv);
              ASSERT_TRUE(out.defined()) << what;
              EXPECT_TRUE(torch::equal(out, attention_values(p, whole(v, pv)))) << what << (mapped ? " mapped" : "");
            }
          }
        }
      }
    }
  }
  // Prefixes that do not fit: left to the caller.
  torch::Tensor q = torch::randn({B, Hkv, 1, 32}), k = torch::randn({B, Hkv, 9, 32});
  const SharedPrefix too_long{torch::randn({U, Hkv, 9, 32}), prefix_rows, 10};
  const SharedPrefix beyond{torch::randn({U, Hkv, 9, 32}), torch::tensor(std::vector<int64_t>{0, 2, 0, 0, 0}), 4};
  const SharedPrefix other_width{torch::randn({U, Hkv, 9, 16}), prefix_rows, 4};
  for (const SharedPrefix* bad : {&too_long, &beyond, &other_width})
    EXPECT_FALSE(attention_scores(q, k, {}, bad).defined());
}

TEST(AttentionKernels, LeaveGradientsFloat64ManyRowsAndOtherLayoutsToTorch) {
  torch::Tensor q = torch::randn({1, 2, 1, 32}), k = torch::randn({1, 2, 9, 32}), p = torch::rand({1, 2, 1, 9});
  EXPECT_FALSE(attention_scores(q.to(torch::kFloat64), k.to(torch::kFloat64)).defined());
  EXPECT_FALSE(attention_scores(torch::randn({1, 2, kAttentionRowsMax + 1, 32}), k).defined());
  EXPECT_FALSE(attention_values(torch::rand({1, 2, kAttentionRowsMax + 1, 9}), k).defined());
  EXPECT_FALSE(attention_scores(q, k.transpose(-1, -2).contiguous().transpose(-1, -2)).defined());  // columns
  // Two heads of three: the batch and head dimensions do not merge into one stride.
  EXPECT_FALSE(attention_values(torch::rand({2, 2, 1, 9}), torch::randn({2, 3, 9, 32}).narrow(1, 0, 2)).defined());
  EXPECT_FALSE(attention_values(p.to(torch::kBFloat16), k).defined());  // probabilities in float32 only
  // Row maps of the wrong length or beyond the cache's rows.
  EXPECT_FALSE(attention_scores(q, k, torch::tensor(std::vector<int64_t>{0, 0})).defined());
  EXPECT_FALSE(attention_scores(q, k, torch::tensor(std::vector<int64_t>{1})).defined());
  EXPECT_FALSE(attention_values(p, k, torch::tensor(std::vector<int64_t>{-1})).defined());
  EXPECT_TRUE(attention_values(p, k, torch::tensor(std::vector<int64_t>{0})).defined() || !cpu_has_avx512());
  torch::Tensor kg = k.clone().requires_grad_(true);
  EXPECT_FALSE(attention_scores(q, kg).defined());
  EXPECT_FALSE(attention_values(p, kg).defined());
}

}  // namespace
}  // namespace emlab::model_detail
