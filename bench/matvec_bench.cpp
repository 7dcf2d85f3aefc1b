// Small-row products (decode at batch 1-64): y = x W^T for x of R rows, through torch's linear (a
// matrix-matrix product, the reference), a matrix-vector product (torch::mv, R = 1, fp32) and
// emlab's linear_small_rows_aware (whichever of its paths it takes for R rows), on the same data,
// in fp32 and bf16, for the output projection and the layer projections of Qwen2.5-0.5B (hidden
// 896, vocab 151936, intermediate 4864), of the llama.cpp comparison model (hidden 256), of the
// engine benchmark model and of the toy-world model. Prints ms per product, linear / emlab,
// mv / emlab, the weight bandwidth emlab reaches and its largest difference from a float64 product.
// With --cold, each call reads one of several copies of the weight (together >= 256 MB, beyond the
// last-level cache), as decode of a model larger than the cache does; without it the weight stays
// in cache between calls. The weights lie in huge pages, as the model loader places them
// (huge_page_tensors); --small-pages puts them in ordinary memory instead. The reference for the
// bandwidth: a plain AVX-512 sum over the same bytes on the same threads ("sum GB/s"), what any
// product that reads each weight once can at most reach on this machine at that moment.
// Usage: matvec_bench [--threads N] [--rows 1,4,16] [--cold] [--small-pages]
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_memory.h"
#include "bench_timing.h"
#include "emlab/lora.h"
#include "emlab/runtime.h"

using emlab::bench::best_ms;
using emlab::bench::plain_sum;



int main(int argc, char** argv) {
  int threads = 0;
  std::vector<int64_t> rows = {1, 4, 16};
  bool cold = false, small_pages = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--cold")) cold = true;
    else if (!std::strcmp(argv[i], "--small-pages")) small_pages = true;
    else if (i + 1 >= argc) break;
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rows")) rows = emlab::bench::int_list(argv[++i]);
  }
  emlab::runtime_set_threads(threads);
  torch::NoGradGuard no_grad;
  std::printf("torch %s, %d threads, weights %s, in %s pages\n", TORCH_VERSION, torch::get_num_threads(),
              cold ? "cold (copies beyond the cache)" : "in cache", small_pages ? "ordinary" : "huge");
  std::printf("%-26s %5s %4s %10s %8s %9s %9s %8s %10s %9s %8s %9s\n", "product (out x in)", "dtype", "rows",
              "linear ms", "mv ms", "emlab ms", "lin/emlab", "mv/emlab", "emlab GB/s", "sum GB/s", "of sum",
              "max diff");
  struct Shape {
    const char* name;
    int64_t out, in;
  } shapes[] = {{"qwen2.5-0.5b lm_head", 151936, 896}, {"qwen2.5-0.5b down_proj", 896, 4864},
                {"qwen2.5-0.5b gate/up_proj", 4864, 896}, {"llama.cpp model lm_head", 151936, 256},
                {"llama.cpp model up_proj", 1024, 256}, {"engine model lm_head", 8000, 512},
                {"engine model up_proj", 1376, 512}, {"toy-world model lm_head", 2048, 128},
                {"toy-world model up_proj", 384, 128}};
  for (const auto& s : shapes) {
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
      torch::Tensor w = (torch::randn({s.out, s.in}) * 0.02).to(dt);
      const int64_t bytes = w.numel() * w.element_size();
      int64_t n_copies = 1;
      while (cold && n_copies * bytes < (256LL << 20) && n_copies < 64) ++n_copies;
      std::vector<torch::Tensor> copies;
      if (small_pages) {
        for (int64_t c = 0; c < n_copies; ++c) copies.push_back(w.clone());
      } else {
        copies = emlab::huge_page_tensors(std::vector<std::vector<int64_t>>(n_copies, {s.out, s.in}), dt);
        for (auto& c : copies) c.copy_(w);
      }
      size_t next = 0;
      auto weight = [&]() -> const torch::Tensor& { return copies[next++ % copies.size()]; };
      for (int64_t R : rows) {
        torch::Tensor x = torch::randn({R, 1, s.in}).to(dt);
        const int reps = s.out * s.in > 50'000'000 ? 10 : 50;
        const double lin = best_ms(reps, [&] { torch::nn::functional::linear(x, weight()); });
        const double mv =
            R == 1 && dt == torch::kFloat32 ? best_ms(reps, [&] { torch::mv(weight(), x.reshape({s.in})); }) : 0;
        const double ours = best_ms(reps, [&] { emlab::linear_small_rows_aware(x, weight()); });
        volatile float sink = 0;
        const double sum = best_ms(reps, [&] { sink = sink + plain_sum(weight()); });
        torch::Tensor ref = torch::nn::functional::linear(x.to(torch::kFloat64), w.to(torch::kFloat64));
        const double diff = (emlab::linear_small_rows_aware(x, w).to(torch::kFloat64) - ref).abs().max().item<double>();
        const double gbs = static_cast<double>(bytes) / (ours * 1e-3) / 1e9;
        const double sum_gbs = static_cast<double>(bytes) / (sum * 1e-3) / 1e9;
        std::printf("%-26s %5s %4lld %10.3f %8.3f %9.3f %8.2fx %7.2fx %10.1f %9.1f %7.2fx %9.1e\n", s.name,
                    dt == torch::kFloat32 ? "fp32" : "bf16", static_cast<long long>(R), lin, mv, ours, lin / ours,
                    mv > 0 ? mv / ours : 0.0, gbs, sum_gbs, gbs / sum_gbs, diff);
      }
    }
  }
  return 0;
}
