// The fused causal attention (src/model/causal_attention.h): output and the gradients of q, k and v
// against the same attention written with torch ops in float64 and differentiated by autograd,
// over head counts (grouped queries), head widths, lengths around the row blocks, key masks
// (right and left padding) and sliding windows; and the cases it leaves to torch.
#include <gtest/gtest.h>

#include "model/avx512.h"
#include "model/causal_attention.h"

#include <string>
#include <vector>

namespace emlab::model_detail {
namespace {

struct Case {
  int64_t B, H, Hkv, T, D;
  int64_t window;  // 0: none
  int mask;        // 0: no key mask, 1: right padding, 2: left padding
};

std::string name(const Case& c) {
  return "B" + std::to_string(c.B) + " H" + std::to_string(c.H) + "/" + std::to_string(c.Hkv) + " T" +
         std::to_string(c.T) + " D" + std::to_string(c.D) + " window " + std::to_string(c.window) + " mask " +
         std::to_string(c.mask);
}

// (B, T) key mask: row b keeps T - 3b keys at the end (left padding) or the start (right).
torch::Tensor key_mask(const Case& c) {
  if (c.mask == 0) return {};
  torch::Tensor m = torch::ones({c.B, c.T}, torch::kLong);
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t pad = std::min(c.T - 1, 3 * b);
    if (pad == 0) continue;
    if (c.mask == 1) m[b].narrow(0, c.T - pad, pad).zero_();
    else m[b].narrow(0, 0, pad).zero_();
  }
  return m;
}

// The reference: scores in float64, -inf where not allowed, softmax, rows with no key allowed set
// to zero (as the fused operation defines them).
torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask,
                        int64_t window, double scale) {
  const int64_t H = q.size(1), T = q.size(2), G = H / k.size(1);
  torch::Tensor kk = k.repeat_interleave(G, 1), vv = v.repeat_interleave(G, 1);  // (B, H, T, D)
  torch::Tensor i = torch::arange(T).unsqueeze(1), j = torch::arange(T).unsqueeze(0);
  torch::Tensor allowed = (j <= i).unsqueeze(0);  // (1, T, T)
  if (window > 0) allowed = allowed & (i - j < window).unsqueeze(0);
  if (mask.defined()) allowed = allowed & (mask != 0).unsqueeze(1);  // (B, T, T)
  allowed = allowed.unsqueeze(1);                                     // (B|1, 1, T, T)
  torch::Tensor s = torch::matmul(q, kk.transpose(-1, -2)) * scale;
  s = s.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  torch::Tensor any = allowed.any(-1, true);  // (B|1, 1, T, 1)
  torch::Tensor p = torch::softmax(s.masked_fill(any.logical_not(), 0.0), -1) * any.to(torch::kFloat64);
  return torch::matmul(p, vv);
}

// q, k, v laid out as the model makes them: (B, H, T, D) views of (B, T, H, D) memory.
torch::Tensor heads_view(int64_t B, int64_t N, int64_t T, int64_t D) { return torch::randn({B, T, N, D}).transpose(1, 2); }

// dtype float32: float32 rounding of the sums only; bfloat16: q, k, v are bf16 (the reference
// takes the same rounded values), the output and the gradients rounded to bf16 (2^-9 relative), and
// with bf16_products the probabilities and the scores' gradients too on their way into a product.
void expect_matches_reference(const Case& c, torch::ScalarType dtype = torch::kFloat32, bool bf16_products = true) {
  torch::manual_seed(c.B * 1000 + c.T * 10 + c.D);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  torch::Tensor q = heads_view(c.B, c.H, c.T, c.D).to(dtype).requires_grad_();
  torch::Tensor k = heads_view(c.B, c.Hkv, c.T, c.D).to(dtype).requires_grad_();
  torch::Tensor v = heads_view(c.B, c.Hkv, c.T, c.D).to(dtype).requires_grad_();
  const torch::Tensor mask = key_mask(c);
  torch::Tensor out = causal_attention(q, k, v, mask, c.window, scale, bf16_products);
  ASSERT_TRUE(out.defined()) << name(c);
  ASSERT_EQ(out.sizes(), q.sizes()) << name(c);
  ASSERT_EQ(out.scalar_type(), dtype) << name(c);
  torch::Tensor grad = torch::randn(out.sizes()).to(dtype);
  out.backward(grad);

  auto to64 = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64).requires_grad_(); };
  torch::Tensor q64 = to64(q), k64 = to64(k), v64 = to64(v);
  torch::Tensor ref = reference(q64, k64, v64, mask, c.window, scale);
  ref.backward(grad.to(torch::kFloat64));

  auto expect_close = [&](const torch::Tensor& got, const torch::Tensor& want, const char* what) {
    ASSERT_TRUE(got.defined()) << name(c) << " " << what;
    const double err = (got.to(torch::kFloat64) - want).abs().max().item<double>();
    const double tol = (dtype == torch::kFloat32 ? 1e-5 : 1.0 / 128) * (1.0 + want.abs().max().item<double>());
    EXPECT_LE(err, tol) << name(c) << " " << what;
    EXPECT_FALSE(got.isnan().any().item<bool>()) << name(c) << " " << what;
  };
  expect_close(out.detach(), ref.detach(), "out");
  expect_close(q.grad(), q64.grad(), "dq");
  expect_close(k.grad(), k64.grad(), "dk");
  expect_close(v.grad(), v64.grad(), "dv");
}

// Lengths around the row blocks (1, a block less one, a block, a block and one, more than two
// blocks; odd and even), grouped queries (H / Hkv = 2, 3), head widths that are and are not
// multiples of 16 (and an odd one), windows shorter and longer than a block (blocks starting on odd
// and even keys).
std::vector<Case> cases() {
  const int64_t n = kCausalBlockRows;
  return {
      {2, 4, 4, 1, 32, 0, 0},        {2, 4, 2, n - 1, 32, 0, 0},  {1, 2, 1, n, 8, 0, 0},
      {3, 4, 2, n + 1, 40, 0, 1},    {2, 6, 3, 2 * n + 5, 64, 0, 2}, {1, 2, 2, 2 * n + 3, 7, 0, 0},
      {2, 4, 4, n + 7, 32, 5, 0},    {2, 4, 2, 2 * n + 3, 16, n / 2 + 3, 1}, {3, 2, 1, 45, 24, n + 2, 2},
      {4, 4, 4, 110, 32, 0, 1},      {2, 6, 3, 2 * n + 5, 64, n / 2, 2},  {1, 2, 1, 3 * n + 9, 48, n + 1, 0},
  };
}

TEST(CausalAttention, MatchesFloat64AutogradReference) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the fused attention is never taken";
  for (const Case& c : cases()) expect_matches_reference(c);
}

// Where the CPU has AVX512-BF16, the bf16 products (the default) and the widened float32 products;
// elsewhere twice the widened ones.
TEST(CausalAttention, Bfloat16MatchesFloat64AutogradReference) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the fused attention is never taken";
  for (const Case& c : cases()) {
    expect_matches_reference(c, torch::kBFloat16, true);
    expect_matches_reference(c, torch::kBFloat16, false);
  }
}

// Without gradients the forward keeps no (B, H, T, T) probabilities: the output must not change by
// a bit, for float32 and both bf16 paths.
TEST(CausalAttention, ForwardWithoutGradientIsBitIdentical) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the fused attention is never taken";
  for (const Case& c : cases())
    for (const auto [dtype, bf16_products] : {std::pair{torch::kFloat32, true}, std::pair{torch::kBFloat16, true},
                                              std::pair{torch::kBFloat16, false}}) {
      torch::manual_seed(c.T * 7 + c.D);
      const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
      torch::Tensor q = heads_view(c.B, c.H, c.T, c.D).to(dtype).requires_grad_();
      torch::Tensor k = heads_view(c.B, c.Hkv, c.T, c.D).to(dtype).requires_grad_();
      torch::Tensor v = heads_view(c.B, c.Hkv, c.T, c.D).to(dtype).requires_grad_();
      const torch::Tensor mask = key_mask(c);
      const torch::Tensor with_grad = causal_attention(q, k, v, mask, c.window, scale, bf16_products);
      ASSERT_TRUE(with_grad.requires_grad()) << name(c);
      torch::NoGradGuard no_grad;
      const torch::Tensor without = causal_attention(q, k, v, mask, c.window, scale, bf16_products);
      ASSERT_TRUE(without.defined()) << name(c);
      EXPECT_TRUE(torch::equal(with_grad.detach(), without))
          << name(c) << " " << c10::toString(dtype) << (bf16_products ? "" : " widened");
    }
}

TEST(CausalAttention, RowsWithoutKeysGiveZerosAndNoGradient) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512: the fused attention is never taken";
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    // Left padding: the first 5 query rows of row 0 see no key.
    const int64_t B = 2, H = 2, T = 9, D = 16;
    auto leaf = [&] { return torch::randn({B, H, T, D}).to(dtype).requires_grad_(); };
    torch::Tensor q = leaf(), k = leaf(), v = leaf();
    torch::Tensor mask = torch::ones({B, T}, torch::kLong);
    mask[0].narrow(0, 0, 5).zero_();
    torch::Tensor out = causal_attention(q, k, v, mask, 0, 0.25);
    ASSERT_TRUE(out.defined());
    EXPECT_TRUE(out[0].narrow(1, 0, 5).eq(0).all().item<bool>());
    EXPECT_TRUE(out[0].narrow(1, 5, 4).ne(0).any().item<bool>());
    out.sum().backward();
    EXPECT_TRUE(q.grad()[0].narrow(1, 0, 5).eq(0).all().item<bool>());
    EXPECT_TRUE(k.grad()[0].narrow(1, 0, 5).eq(0).all().item<bool>());  // masked keys: no gradient
    EXPECT_FALSE(q.grad().isnan().any().item<bool>());
  }
}

TEST(CausalAttention, LeavesOtherCasesToTorch) {
  torch::Tensor q = torch::randn({1, 2, 4, 8}), k = torch::randn({1, 2, 4, 8});
  EXPECT_FALSE(causal_attention(q.to(torch::kFloat64), k.to(torch::kFloat64), k.to(torch::kFloat64), {}, 0, 1.0).defined());
  EXPECT_FALSE(causal_attention(q.to(torch::kHalf), k.to(torch::kHalf), k.to(torch::kHalf), {}, 0, 1.0).defined());
  EXPECT_FALSE(causal_attention(q, k.to(torch::kBFloat16), k.to(torch::kBFloat16), {}, 0, 1.0).defined());  // mixed
  EXPECT_FALSE(causal_attention(q, torch::randn({1, 3, 4, 8}), torch::randn({1, 3, 4, 8}), {}, 0, 1.0).defined());  // 2 % 3
  EXPECT_FALSE(causal_attention(q, torch::randn({1, 2, 5, 8}), torch::randn({1, 2, 5, 8}), {}, 0, 1.0).defined());  // keys != queries
}

}  // namespace
}  // namespace emlab::model_detail
