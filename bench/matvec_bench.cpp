// One-row products (decode at batch 1): y = x W^T for x of one row, through torch's linear (a
// matrix-matrix product) against a matrix-vector product (torch::mv) on the same data, for the
// output projection and the layer projections of Qwen2.5-0.5B (hidden 896, vocab 151936,
// intermediate 4864) and of the engine benchmark model. Prints ms per product and the ratio.
// Usage: matvec_bench [--threads N]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>

#include "emlab/runtime.h"

using Clock = std::chrono::steady_clock;

namespace {

double best_ms(const std::function<void()>& f, int reps) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
  emlab::runtime_set_threads(threads);
  torch::NoGradGuard no_grad;
  std::printf("torch %s, %d threads\n", TORCH_VERSION, torch::get_num_threads());
  std::printf("%-34s %8s %8s %12s %10s %8s\n", "product (out x in)", "out", "in", "linear ms", "mv ms", "ratio");
  struct Shape {
    const char* name;
    int64_t out, in;
  } shapes[] = {{"qwen2.5-0.5b lm_head", 151936, 896}, {"qwen2.5-0.5b down_proj", 896, 4864},
                {"qwen2.5-0.5b gate/up_proj", 4864, 896}, {"engine model lm_head", 8000, 512},
                {"engine model up_proj", 1376, 512}};
  for (const auto& s : shapes) {
    torch::Tensor w = torch::randn({s.out, s.in}) * 0.02, x = torch::randn({1, 1, s.in});
    const int reps = s.out * s.in > 50'000'000 ? 10 : 50;
    const double lin = best_ms([&] { torch::nn::functional::linear(x, w); }, reps);
    const double mv = best_ms([&] { torch::mv(w, x.reshape({s.in})); }, reps);
    const double diff = (torch::nn::functional::linear(x, w).reshape({s.out}) - torch::mv(w, x.reshape({s.in})))
                            .abs().max().item<double>();
    std::printf("%-34s %8lld %8lld %12.3f %10.3f %7.2fx  (max diff %.1e)\n", s.name, static_cast<long long>(s.out),
                static_cast<long long>(s.in), lin, mv, lin / mv, diff);
  }
  return 0;
}
