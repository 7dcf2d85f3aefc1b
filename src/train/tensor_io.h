// Named tensors <-> safetensors files, any dtype the trainer keeps (float32/64, half types, integer
// and byte tensors such as RNG states). Private to src/train.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace emlab::train_detail {

// Writes every tensor (copied to the CPU, contiguous) atomically.
void tensors_save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata = {});
// Reads every tensor into owned CPU tensors of the stored dtype. *metadata gets __metadata__.
std::map<std::string, torch::Tensor> tensors_load(const std::string& path,
                                                  std::map<std::string, std::string>* metadata = nullptr);

// Reads a JSON file; InputError naming the file when unreadable or malformed.
nlohmann::json json_read_file(const std::string& path);
// Writes pretty JSON atomically (temporary file + rename).
void json_write_file(const std::string& path, const nlohmann::json& j);

}  // namespace emlab::train_detail
