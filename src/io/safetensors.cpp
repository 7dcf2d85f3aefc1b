// safetensors reading (mmap + header validation) and writing (sorted, padded, atomic rename).
// Layout rules follow the reference implementation (huggingface/safetensors): u64 LE header length,
// JSON header padded with spaces to 8 bytes, offsets relative to the data buffer. Unlike the
// reference we accept gaps between tensors (only overlaps and out-of-range offsets are errors).
#include "emlab/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "emlab/error.h"
#include "emlab/file_util.h"

namespace emlab {

namespace {

// The reference implementation refuses headers above 100 MB; a real header is a few hundred KB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& info : kDTypes)
    if (info.dtype == dtype) return info;
  throw Error("invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

std::string known_dtype_list() {
  std::string s;
  for (const auto& info : kDTypes) s += std::string(s.empty() ? "" : ", ") + info.name;
  return s;
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void write_u64_le(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

// Element count of `shape`; throws (via `fail`) on negative dimensions or overflow.
template <typename Fail>
uint64_t element_count(const std::vector<int64_t>& shape, Fail fail) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("negative dimension " + std::to_string(d) + " in shape");
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      fail("shape overflows 64-bit element count");
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

DType dtype_from_name(const std::string& name, const std::string& context) {
  for (const auto& info : kDTypes)
    if (name == info.name) return info.dtype;
  throw InputError((context.empty() ? "" : context + ": ") + "unknown dtype \"" + name +
                   "\" (expected one of " + known_dtype_list() + ")");
}

const char* dtype_name(DType dtype) { return dtype_info(dtype).name; }

size_t dtype_size(DType dtype) { return dtype_info(dtype).size; }

// ---------------------------------------------------------------------------------------------
// Reading

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const std::string where = path + ": ";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(where + "cannot open safetensors file: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(where + "not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw InputError(where + "truncated safetensors file: " + std::to_string(file_size) +
                     " bytes, expected at least the 8-byte header length");
  }
  map_ = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw InputError(where + "cannot mmap: " + std::strerror(map_errno));
  }
  map_size_ = file_size;

  try {
    const auto* bytes = static_cast<const unsigned char*>(map_);
    const uint64_t header_len = read_u64_le(bytes);
    if (header_len > file_size - 8)
      throw InputError(where + "header length " + std::to_string(header_len) +
                       " exceeds the file (" + std::to_string(file_size - 8) +
                       " bytes after the length field); truncated or not a safetensors file");
    if (header_len > kMaxHeaderBytes)
      throw InputError(where + "header length " + std::to_string(header_len) +
                       " exceeds the 100 MB limit");
    if (header_len < 2 || bytes[8] != '{')
      throw InputError(where + "header does not start with '{' (not a safetensors file?)");

    const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(header_begin, header_begin + header_len);
    } catch (const nlohmann::json::parse_error& e) {
      throw InputError(where + "header is not valid JSON: " + e.what());
    }
    if (!header.is_object()) throw InputError(where + "header is not a JSON object");

    const unsigned char* buffer = bytes + 8 + header_len;
    const uint64_t buffer_size = file_size - 8 - header_len;

    struct Span {
      uint64_t begin, end;
      const std::string* name;
    };
    std::vector<Span> spans;
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& key = it.key();
      if (key == "__metadata__") {
        if (!it->is_object())
          throw InputError(where + "__metadata__ must be an object of strings");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string())
            throw InputError(where + "__metadata__ value \"" + m.key() +
                             "\" must be a string, got " + m->type_name());
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      const std::string tw = where + "tensor \"" + key + "\": ";
      auto fail = [&](const std::string& what) { throw InputError(tw + what); };
      const auto& entry = *it;
      if (!entry.is_object()) fail("entry must be an object with dtype, shape, data_offsets");
      for (const char* field : {"dtype", "shape", "data_offsets"})
        if (!entry.contains(field)) fail(std::string("missing \"") + field + "\"");
      if (!entry["dtype"].is_string()) fail("\"dtype\" must be a string");

      TensorView view;
      view.name = key;
      view.dtype = dtype_from_name(entry["dtype"].get<std::string>(), path + ": tensor \"" + key + "\"");

      const auto& shape = entry["shape"];
      if (!shape.is_array()) fail("\"shape\" must be an array of non-negative integers");
      for (const auto& d : shape) {
        // nlohmann parses non-negative integers as unsigned: anything else is negative or not integral.
        if (!d.is_number_unsigned())
          fail("\"shape\" must be an array of non-negative integers, got " + shape.dump());
        if (d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
          fail("dimension too large in shape " + shape.dump());
        view.shape.push_back(d.get<int64_t>());
      }

      const auto& offs = entry["data_offsets"];
      if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() ||
          !offs[1].is_number_unsigned())
        fail("\"data_offsets\" must be [begin, end] with non-negative integers, got " + offs.dump());
      const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
      if (begin > end)
        fail("data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
      if (end > buffer_size)
        fail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
             "] outside the data buffer of " + std::to_string(buffer_size) +
             " bytes (truncated file?)");

      const uint64_t count = element_count(view.shape, fail);
      const uint64_t esize = dtype_size(view.dtype);
      if (count > std::numeric_limits<uint64_t>::max() / esize) fail("byte size overflows");
      if (end - begin != count * esize)
        fail("data_offsets span " + std::to_string(end - begin) + " bytes, expected " +
             std::to_string(count * esize) + " (" + dtype_name(view.dtype) + " x shape " +
             shape_str(view.shape) + ")");
      view.data = buffer + begin;
      view.nbytes = static_cast<size_t>(end - begin);
      auto inserted = tensors_.emplace(key, std::move(view));
      spans.push_back({begin, end, &inserted.first->first});
    }

    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
      if (a.begin != b.begin) return a.begin < b.begin;
      if (a.end != b.end) return a.end < b.end;
      return *a.name < *b.name;
    });
    // Sorted by begin, the spans seen so far are disjoint, so checking against the largest end
    // among them finds any overlap. Zero-size tensors occupy no bytes and overlap nothing.
    const Span* last = nullptr;
    for (const auto& s : spans) {
      if (s.begin == s.end) continue;
      if (last && s.begin < last->end)
        throw InputError(where + "tensor \"" + *s.name + "\" [" + std::to_string(s.begin) + ", " +
                         std::to_string(s.end) + ") overlaps tensor \"" + *last->name + "\" [" +
                         std::to_string(last->begin) + ", " + std::to_string(last->end) + ")");
      last = &s;
    }
    for (const auto& s : spans) names_.push_back(*s.name);
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw InputError(path_ + ": no tensor named \"" + name + "\" (the file has " +
                     std::to_string(tensors_.size()) + " tensors)");
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// Writing

void safetensors_write(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorView*> sorted;
  sorted.reserve(tensors.size());
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorView* a, const TensorView* b) { return a->name < b->name; });

  // The header is built by hand so that __metadata__ comes first and tensors keep name order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const TensorView& t = *sorted[i];
    const std::string tw = path + ": tensor \"" + t.name + "\": ";
    auto fail = [&](const std::string& what) { throw InputError(tw + what); };
    if (t.name.empty()) throw InputError(path + ": tensor with an empty name");
    if (t.name == "__metadata__") fail("the name __metadata__ is reserved");
    if (i > 0 && sorted[i - 1]->name == t.name) fail("duplicate tensor name");
    const uint64_t expected = element_count(t.shape, fail) * dtype_size(t.dtype);
    if (t.nbytes != expected)
      fail("nbytes " + std::to_string(t.nbytes) + " != " + std::to_string(expected) + " (" +
           dtype_name(t.dtype) + " x shape " + shape_str(t.shape) + ")");
    if (t.nbytes > 0 && t.data == nullptr) fail("data is null");
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_name(t.dtype);
    entry["shape"] = t.shape;
    entry["data_offsets"] = {offset, offset + t.nbytes};
    header[t.name] = std::move(entry);
    offset += t.nbytes;
  }
  std::string header_text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // data starts 8-byte aligned

  unsigned char len_bytes[8];
  write_u64_le(len_bytes, header_text.size());

  AtomicFileWriter out(path);
  out.write(len_bytes, 8);
  out.write(header_text.data(), header_text.size());
  for (const TensorView* t : sorted) out.write(t->data, t->nbytes);
  out.commit(/*sync=*/true);
}

}  // namespace emlab
