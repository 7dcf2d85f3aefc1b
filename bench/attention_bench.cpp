// Attention over a KV cache at decode: softmax(q k^T * scale + bias) v for R query rows per (batch
// row, kv head), through torch::matmul (batched products: B x Hkv small BLAS calls each, the
// reference and emlab's path before) and through emlab's kernels (model/matvec.h:
// attention_scores, attention_values), on the same cache views (capacity > filled positions), in
// fp32 and bf16. Shapes: the toy world's evaluation (batch 100, 4 heads of 32, ~90 positions), the
// llama.cpp comparison model (4 heads / 2 kv heads of 64) at batch 1, 16 and 64 after 128
// positions, and Qwen2.5-0.5B (14 heads / 2 kv heads of 64) at batch 16 after 512. Prints ms per
// layer and step for each, matmul / emlab, and the largest difference between the two outputs.
// Usage: attention_bench [--threads N]
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_timing.h"
#include "emlab/runtime.h"
#include "model/matvec.h"

using emlab::bench::best_ms;

int main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
  emlab::runtime_set_threads(threads);
  torch::NoGradGuard no_grad;
  std::printf("torch %s, %d threads\n", TORCH_VERSION, torch::get_num_threads());
  std::printf("%-28s %5s %4s %4s %4s %4s %5s %10s %9s %9s %9s\n", "shape", "dtype", "B", "Hkv", "R", "D", "S",
              "matmul ms", "emlab ms", "ratio", "max diff");
  struct Shape {
    const char* name;
    int64_t B, Hkv, R, D, S;
  } shapes[] = {{"toy world eval", 100, 4, 1, 32, 90},       {"llama.cpp model, batch 1", 1, 2, 2, 64, 128},
                {"llama.cpp model, batch 16", 16, 2, 2, 64, 128}, {"llama.cpp model, batch 64", 64, 2, 2, 64, 128},
                {"qwen2.5-0.5b, batch 16", 16, 2, 7, 64, 512}};
  for (const auto& s : shapes) {
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
      const int64_t cap = s.S + 64;  // a cache with room left, as during decode
      torch::Tensor q = torch::randn({s.B, s.Hkv, s.R, s.D}).to(dt);
      torch::Tensor k = torch::randn({s.B, s.Hkv, cap, s.D}).to(dt).narrow(2, 0, s.S);
      torch::Tensor v = torch::randn({s.B, s.Hkv, cap, s.D}).to(dt).narrow(2, 0, s.S);
      torch::Tensor bias = torch::zeros({s.B, 1, 1, s.S});  // padding keys masked as the model does
      bias.narrow(3, 0, 3).fill_(-1e30);
      const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
      auto reference = [&] {
        torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)).to(torch::kFloat32) * scale;
        return torch::matmul(torch::softmax(scores + bias, -1).to(dt), v);
      };
      auto kernels = [&] {
        torch::Tensor scores = emlab::model_detail::attention_scores(q, k) * scale;
        return emlab::model_detail::attention_values(torch::softmax(scores + bias, -1), v);
      };
      if (!emlab::model_detail::attention_scores(q, k).defined()) {
        std::printf("%-28s %5s: the kernels do not take this case on this CPU\n", s.name,
                    dt == torch::kFloat32 ? "fp32" : "bf16");
        continue;
      }
      const double diff = (reference().to(torch::kFloat32) - kernels().to(torch::kFloat32)).abs().max().item<double>();
      const int reps = 30;
      const double ref_ms = best_ms(reps, reference), emlab_ms = best_ms(reps, kernels);
      std::printf("%-28s %5s %4lld %4lld %4lld %4lld %5lld %10.4f %9.4f %8.2fx %9.2e\n", s.name,
                  dt == torch::kFloat32 ? "fp32" : "bf16", static_cast<long long>(s.B), static_cast<long long>(s.Hkv),
                  static_cast<long long>(s.R), static_cast<long long>(s.D), static_cast<long long>(s.S), ref_ms,
                  emlab_ms, ref_ms / emlab_ms, diff);
    }
  }
  return 0;
}
