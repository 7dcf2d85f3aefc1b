// CPU bf16 detection against the kernel's own view of the CPU (/proc/cpuinfo flags).
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "emlab/runtime.h"

namespace emlab {
namespace {

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

}  // namespace
}  // namespace emlab
