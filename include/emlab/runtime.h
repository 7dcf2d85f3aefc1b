// Process-wide tensor runtime settings: threads, device and dtype parsing.
#pragma once

#include <torch/torch.h>

#include <string>

namespace emlab {

// Sets libtorch's intra-op thread count; n <= 0 means all cores. Debian's libtorch starts with
// one thread, so every entry point calls this.
void runtime_set_threads(int n);

// "cpu", "cuda", "cuda:1" -> device; throws InputError if CUDA is asked for but unavailable.
torch::Device device_from_name(const std::string& name);
// "float32"/"fp32", "bfloat16"/"bf16", "float16"/"fp16"; "auto" = fp32 on CPU, bf16 on CUDA.
torch::ScalarType dtype_from_option(const std::string& name, const torch::Device& device);
std::string dtype_to_string(torch::ScalarType dtype);

}  // namespace emlab
