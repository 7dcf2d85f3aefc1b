// Named torch tensors <-> safetensors files, in any dtype emlab keeps (float32/64, half types,
// integer and byte tensors such as RNG states), and the one mapping between safetensors dtypes and
// torch scalar types. Adapters, steering vectors, directions and checkpoints are written with it.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "emlab/safetensors.h"

namespace emlab {

// Safetensors dtype <-> torch scalar type. dtype_from_torch throws Error naming `what` for a type
// safetensors cannot hold.
torch::ScalarType dtype_to_torch(DType dtype);
DType dtype_from_torch(torch::ScalarType type, const std::string& what);

// Writes every tensor (copied to the CPU, contiguous) atomically.
void tensors_save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata = {});
// Reads every tensor into owned CPU tensors of the stored dtype. *metadata gets __metadata__.
// InputError naming the file when it is missing or malformed.
std::map<std::string, torch::Tensor> tensors_load(const std::string& path,
                                                  std::map<std::string, std::string>* metadata = nullptr);

}  // namespace emlab
