// Helpers shared by the benchmarks: wall-clock seconds, best-of-N milliseconds, the
// machine's matmul rate measured in the same process (the reference the FLOP/s columns divide by)
// and comma-separated argument lists.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace emlab::bench {

// "1,16,64" -> {1, 16, 64} (the benchmarks' --batches, --rows).
inline std::vector<int64_t> int_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::atoll(item.c_str()));
  return out;
}

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

inline void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Milliseconds of the fastest of `reps` calls of f, after one warm-up call.
template <class F>
double best_ms(int reps, F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  return best;
}

// FLOP/s of a 1024^3 matmul in `dtype` on `device`, the best of five runs.
inline double matmul_flops(const torch::Device& device, torch::ScalarType dtype = torch::kFloat32) {
  const int64_t n = 1024;
  auto opts = torch::TensorOptions().dtype(dtype).device(device);
  torch::Tensor a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  torch::matmul(a, b);
  sync(device);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const int iters = device.is_cuda() ? 50 : 4;
    auto t = Clock::now();
    for (int i = 0; i < iters; ++i) torch::matmul(a, b);
    sync(device);
    best = std::max(best, iters * 2.0 * n * n * n / seconds_since(t));
  }
  return best;
}

}  // namespace emlab::bench
