#include "emlab/runtime.h"

#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <mutex>
#include <thread>

#include <ATen/Parallel.h>
#include <omp.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <c10/util/accumulate.h>

#include "emlab/error.h"

namespace emlab {

void runtime_set_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  // runtime_side_by_side's threads besides the caller: libtorch's inter-op pool, which starts with
  // half the cores (x86: for hyper-threads) and can be sized only before its first use.
  static std::once_flag interop;
  std::call_once(interop, [n] {
    if (n - 1 > at::get_num_interop_threads()) at::set_num_interop_threads(n - 1);
  });
}

void runtime_side_by_side(size_t n, const std::function<void(size_t)>& fn) {
  std::mutex mu;
  std::condition_variable finished;
  size_t left = n;
  std::exception_ptr error;
  auto one = [&](size_t i) {
    // This thread's OpenMP thread count (what at::parallel_for and OpenBLAS read), for this call
    // only: libtorch's own setting is process-wide and rebuilds its thread pools. Asking libtorch
    // first runs its once-per-thread setup, which would otherwise set the count back on first use.
    const int threads = at::get_num_threads();
    omp_set_num_threads(1);
    std::exception_ptr failure;
    try {
      fn(i);
    } catch (...) {
      failure = std::current_exception();
    }
    omp_set_num_threads(threads);
    std::lock_guard<std::mutex> lock(mu);
    if (failure && !error) error = failure;
    if (--left == 0) finished.notify_all();
  };
  for (size_t i = 1; i < n; ++i) at::launch([&one, i]() { one(i); });
  if (n > 0) one(0);  // the caller takes the first
  std::unique_lock<std::mutex> lock(mu);
  finished.wait(lock, [&] { return left == 0; });
  if (error) std::rethrow_exception(error);
}

torch::Device device_from_name(const std::string& name) {
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name);
  } catch (const c10::Error&) {
    throw InputError("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw InputError("--device " + name + ": this libtorch has no CUDA or no GPU is visible");
  return device;
}

torch::ScalarType dtype_from_option(const std::string& name, const torch::Device& device) {
  if (name == "auto") return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  if (name == "float32" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16") return torch::kFloat16;
  if (name == "float64" || name == "fp64") return torch::kFloat64;  // finite-difference gradient tests
  throw InputError("unknown dtype '" + name + "' (expected auto, float32, bfloat16, float16 or float64)");
}

std::string dtype_to_string(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    default: return c10::toString(dtype);
  }
}

std::vector<torch::Tensor> huge_page_tensors(const std::vector<std::vector<int64_t>>& shapes, torch::ScalarType dtype) {
  constexpr size_t kAlign = 64, kPage = size_t{2} << 20;
  const size_t esize = c10::elementSize(dtype);
  std::vector<size_t> offsets;
  size_t total = 0;
  for (const auto& shape : shapes) {
    offsets.push_back(total);
    total += (static_cast<size_t>(c10::multiply_integers(shape)) * esize + kAlign - 1) / kAlign * kAlign;
  }
  const size_t bytes = std::max(kPage, (total + kPage - 1) / kPage * kPage);
  void* raw = std::aligned_alloc(kPage, bytes);
  if (raw == nullptr) throw std::bad_alloc();
  std::shared_ptr<void> block(raw, [](void* p) { std::free(p); });
#if defined(MADV_HUGEPAGE)
  ::madvise(raw, bytes, MADV_HUGEPAGE);  // advice only: a refusal leaves ordinary pages
#endif
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < shapes.size(); ++i)
    out.push_back(torch::from_blob(static_cast<char*>(raw) + offsets[i], shapes[i], [block](void*) {},
                                   torch::TensorOptions().dtype(dtype)));
  return out;
}

CpuBf16 cpu_bf16_support() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("amx-bf16")) return CpuBf16::Amx;
  if (__builtin_cpu_supports("avx512bf16")) return CpuBf16::Avx512Bf16;
#endif
  return CpuBf16::None;
}

std::string cpu_bf16_name(CpuBf16 support) {
  switch (support) {
    case CpuBf16::Amx: return "AMX";
    case CpuBf16::Avx512Bf16: return "AVX512-BF16";
    default: return "none";
  }
}

std::string cpu_bf16_note(torch::ScalarType dtype, const torch::Device& device) {
  if (dtype != torch::kBFloat16 || !device.is_cpu() || cpu_bf16_support() != CpuBf16::None) return "";
  return "this CPU has neither AMX nor AVX512-BF16: bfloat16 matmuls are converted in software and run slower than "
         "float32 (--dtype float32 is the fast choice here)";
}

}  // namespace emlab
