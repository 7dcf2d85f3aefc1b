#include "emlab/tensor_io.h"

#include <filesystem>

#include "emlab/error.h"

namespace fs = std::filesystem;

namespace emlab {

DType dtype_from_torch(torch::ScalarType t, const std::string& name) {
  switch (t) {
    case torch::kFloat32: return DType::F32;
    case torch::kFloat64: return DType::F64;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: throw Error("cannot save tensor " + name + " of type " + c10::toString(t));
  }
}

torch::ScalarType dtype_to_torch(DType d) {
  switch (d) {
    case DType::F32: return torch::kFloat32;
    case DType::F64: return torch::kFloat64;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  return torch::kFloat32;
}

void tensors_save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;
  std::vector<TensorView> views;
  keep.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    torch::Tensor cpu = t.detach().to(torch::kCPU).contiguous();
    keep.push_back(cpu);
    TensorView v;
    v.name = name;
    v.dtype = dtype_from_torch(cpu.scalar_type(), name);
    v.shape = cpu.sizes().vec();
    v.data = cpu.data_ptr();
    v.nbytes = cpu.numel() * cpu.element_size();
    views.push_back(v);
  }
  safetensors_write(path, views, metadata);
}

std::map<std::string, torch::Tensor> tensors_load(const std::string& path,
                                                  std::map<std::string, std::string>* metadata) {
  if (!fs::exists(path)) throw InputError(path + ": file does not exist");
  SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : file.names()) {
    const TensorView& v = file.get(name);
    torch::Tensor t = torch::from_blob(const_cast<void*>(v.data), v.shape,
                                       torch::TensorOptions().dtype(dtype_to_torch(v.dtype)));
    out[name] = t.clone();  // the mapping goes away with `file`
  }
  if (metadata) *metadata = file.metadata();
  return out;
}

}  // namespace emlab
