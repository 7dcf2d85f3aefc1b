// Process-wide tensor runtime settings: threads, device and dtype parsing.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace emlab {

// Sets libtorch's intra-op thread count; n <= 0 means all cores. Debian's libtorch starts with
// one thread, so every entry point calls this. The first call also sizes the inter-op pool.
void runtime_set_threads(int n);

// Runs fn(0) .. fn(n - 1) side by side, fn(0) on the caller and the others on libtorch's inter-op
// threads (persistent, as many as runtime_set_threads's first count less one; the caller's grad
// mode and other thread-local state travel with each call), each call with one intra-op thread,
// and waits for all of them; rethrows the first exception. For whole computations that
// parallelise poorly inside (small products, one autograd graph each): several at once, each
// serial, keep the cores busy without a barrier per op.
void runtime_side_by_side(size_t n, const std::function<void(size_t)>& fn);

// "cpu", "cuda", "cuda:1" -> device; throws InputError if CUDA is asked for but unavailable.
torch::Device device_from_name(const std::string& name);
// "float32"/"fp32", "bfloat16"/"bf16", "float16"/"fp16"; "auto" = fp32 on CPU, bf16 on CUDA.
torch::ScalarType dtype_from_option(const std::string& name, const torch::Device& device);
std::string dtype_to_string(torch::ScalarType dtype);

// Empty tensors of `shapes` in `dtype` on the CPU, carved from one block that Linux backs with 2 MiB
// pages where it can (transparent huge pages; in "madvise" mode only memory that asks gets them).
// Reading the weights of a decode step streams faster from them: 1.45x here for a plain sum over
// 155 MB (bench/RESULTS.md). Each tensor keeps the block alive; each starts on a 64-byte boundary.
// Elsewhere (no madvise, or it is refused) the block is ordinary memory.
std::vector<torch::Tensor> huge_page_tensors(const std::vector<std::vector<int64_t>>& shapes, torch::ScalarType dtype);

// What this CPU offers bfloat16 matmuls: AMX tiles (Intel Sapphire Rapids and later: several times
// the fp32 rate), AVX512-BF16 dot products (about 2x fp32: bench/RESULTS.md), or neither (libtorch
// then converts bf16 in software, slower than fp32). fp32 stays the default dtype on the CPU
// either way (exact results); bf16 is asked for with --dtype bfloat16.
enum class CpuBf16 { None, Avx512Bf16, Amx };
CpuBf16 cpu_bf16_support();
std::string cpu_bf16_name(CpuBf16 support);  // "AMX", "AVX512-BF16", "none"
// One line for a run asking for `dtype` on `device` where the CPU lacks bf16 instructions, else "".
std::string cpu_bf16_note(torch::ScalarType dtype, const torch::Device& device);

}  // namespace emlab
