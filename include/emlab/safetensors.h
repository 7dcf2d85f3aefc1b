// safetensors files: memory-mapped reading with a validated header, and writing.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the data buffer; offsets are relative to the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace emlab {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

// "F32" -> DType::F32; throws InputError naming `context` for an unknown name.
DType dtype_from_name(const std::string& name, const std::string& context = "");
const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

// A tensor inside a file (or, for writing, inside caller-owned memory). Row-major, contiguous.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // points into the mapping (reading) or the caller's buffer (writing)
  size_t nbytes = 0;
};

class SafetensorsFile {
 public:
  // Maps the file and validates the header: JSON well-formed, every dtype known, offsets inside
  // the data buffer, no overlaps, nbytes == dtype size x product(shape). Throws InputError naming
  // the file (and the tensor) on any violation.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensor names in file order (by data offset).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  // Throws InputError naming the file and tensor when absent.
  const TensorView& get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<std::string> names_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any order; stored sorted by name) and string metadata. Writes to a temporary
// file in the same folder and renames it, so a crash never leaves a truncated file behind.
void safetensors_write(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace emlab
