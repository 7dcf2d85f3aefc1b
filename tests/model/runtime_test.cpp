// CPU bf16 detection against the kernel's own view of the CPU (/proc/cpuinfo flags); tensors in
// huge pages against the kernel's record of the advice (/proc/self/smaps); work side by side.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "emlab/runtime.h"

namespace emlab {
namespace {

// The VmFlags line of the mapping of this process holding `address` (/proc/self/smaps), or "" where
// no mapping holds it or the file cannot be read.
std::string vm_flags_at(const void* address) {
  std::ifstream f("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(f, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = lo <= a && a < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(Runtime, HugePageTensorsAreCarvedFromOneAdvisedBlock) {
  const std::vector<std::vector<int64_t>> shapes = {{3, 5}, {0}, {1000, 257}, {7}, {2, 3, 4}};
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    std::vector<torch::Tensor> ts = huge_page_tensors(shapes, dtype);
    ASSERT_EQ(ts.size(), shapes.size());
    const size_t esize = c10::elementSize(dtype);
    uintptr_t next = reinterpret_cast<uintptr_t>(ts[0].data_ptr());
    EXPECT_EQ(next % (2u << 20), 0u) << "the block starts on a 2 MiB boundary";
    for (size_t i = 0; i < ts.size(); ++i) {
      EXPECT_EQ(ts[i].sizes(), torch::IntArrayRef(shapes[i]));
      EXPECT_EQ(ts[i].scalar_type(), dtype);
      EXPECT_TRUE(ts[i].is_contiguous());
      // Each in turn, on a 64-byte boundary, right after the one before: no overlap, no gaps.
      if (ts[i].numel() > 0) EXPECT_EQ(reinterpret_cast<uintptr_t>(ts[i].data_ptr()), next) << i;  // empty: null
      next += (ts[i].numel() * esize + 63) / 64 * 64;
      ts[i].fill_(static_cast<double>(i + 1));
    }
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].numel() > 0) EXPECT_TRUE((ts[i] == static_cast<double>(i + 1)).all().item<bool>()) << i;
    // One tensor keeps the block alive after the others are gone (a sanitizer build would catch a use after free).
    torch::Tensor kept = ts[2];
    ts.clear();
    EXPECT_TRUE((kept == 3.0).all().item<bool>());
    kept.add_(1.0);
    EXPECT_EQ(kept[999][256].item<double>(), 4.0);

    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string modes;
    std::getline(thp, modes);
    if (modes.empty() || modes.find("[never]") != std::string::npos) continue;  // no THP here: ordinary pages
    const std::string flags = vm_flags_at(kept.data_ptr());
    if (flags.empty()) continue;  // no /proc/self/smaps
    std::istringstream words(flags.substr(8));
    std::set<std::string> set;
    for (std::string w; words >> w;) set.insert(w);
    EXPECT_TRUE(set.count("hg")) << "the block was not advised for huge pages: " << flags;
  }
}

TEST(Runtime, CpuBf16SupportAgreesWithProcCpuinfo) {
  std::ifstream f("/proc/cpuinfo");
  if (!f) GTEST_SKIP() << "no /proc/cpuinfo on this system";
  std::set<std::string> flags;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) flags.insert(w);
    break;
  }
  if (flags.empty()) GTEST_SKIP() << "/proc/cpuinfo lists no flags (not an x86 CPU?)";
  const CpuBf16 expected = flags.count("amx_bf16")      ? CpuBf16::Amx
                           : flags.count("avx512_bf16") ? CpuBf16::Avx512Bf16
                                                        : CpuBf16::None;
  EXPECT_EQ(cpu_bf16_name(cpu_bf16_support()), cpu_bf16_name(expected));
  // The note is for bf16 on a CPU without the instructions only.
  EXPECT_EQ(cpu_bf16_note(torch::kFloat32, torch::Device(torch::kCPU)), "");
  EXPECT_EQ(cpu_bf16_note(torch::kBFloat16, torch::Device(torch::kCUDA)), "");
  EXPECT_EQ(cpu_bf16_note(torch::kBFloat16, torch::Device(torch::kCPU)).empty(), expected != CpuBf16::None);
}

// Every call runs once, at least two on different threads at the same time (each waits for the
// other to have started), each with one intra-op thread and the caller's grad mode; the caller's
// thread count is as before; the first exception comes back after all calls ended.
TEST(Runtime, SideBySideRunsEveryCallAtOnceWithOneThreadEach) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  std::vector<int> ran(4, 0), intra(4, 0);
  std::vector<bool> grad(4, true);
  std::set<std::thread::id> ids;
  {
    torch::NoGradGuard no_grad;
    runtime_side_by_side(4, [&](size_t i) {
      std::unique_lock<std::mutex> lock(mu);
      ++ran[i];
      intra[i] = torch::get_num_threads();
      grad[i] = torch::GradMode::is_enabled();
      ids.insert(std::this_thread::get_id());
      if (i < 2) {  // the first two meet: they run at the same time
        ++started;
        cv.notify_all();
        EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return started >= 2; })) << "call " << i;
      }
    });
  }
  EXPECT_EQ(ran, std::vector<int>(4, 1));
  EXPECT_EQ(intra, std::vector<int>(4, 1));
  EXPECT_EQ(grad, std::vector<bool>(4, false));
  EXPECT_GE(ids.size(), 2u);
  EXPECT_EQ(torch::get_num_threads(), 2);
  EXPECT_TRUE(torch::GradMode::is_enabled());
  std::vector<int> after(3, 0);
  try {
    runtime_side_by_side(3, [&](size_t i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++after[i];
      }
      if (i == 1) throw std::runtime_error("call 1 failed");
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "call 1 failed");
  }
  EXPECT_EQ(after, std::vector<int>(3, 1));
  EXPECT_EQ(torch::get_num_threads(), 2);
  torch::set_num_threads(threads);
}

}  // namespace
}  // namespace emlab
