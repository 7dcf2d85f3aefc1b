// Files: whole-file reads that name the file in their errors, and atomic replacement (a temporary
// file with the process id in its name, renamed over the destination), optionally gzip-compressed.
// The one place emlab reads a JSON file or writes a file atomically.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace emlab {

bool path_has_suffix(const std::string& path, const std::string& suffix);

// Writes all `n` bytes to `fd`, retrying short writes and EINTR; throws Error naming `path`.
void write_fully(int fd, const void* data, size_t n, const std::string& path);

// Writes `path + ".tmp-<pid>"` and renames it over `path` on commit(), so readers never see a
// half-written file. Without commit() (an exception on the way) the temporary file is removed.
class AtomicFileWriter {
 public:
  // gzip: compress the stream (gzip format, what `.gz` readers expect).
  explicit AtomicFileWriter(const std::string& path, bool gzip = false);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // Finishes the stream, optionally fsyncs, and renames over the destination.
  void commit(bool sync);

 private:
  struct Gzip;
  void write_raw(const void* data, size_t n);
  std::string path_, tmp_path_;
  int fd_ = -1;
  std::unique_ptr<Gzip> gz_;
  bool committed_ = false;
};

// The whole file as bytes; InputError naming the file when it cannot be read.
std::string file_read_text(const std::string& path);
// Parses a JSON file; InputError naming the file when it is unreadable or not JSON.
nlohmann::json json_read_file(const std::string& path);
// Replaces `path` with `text` atomically (AtomicFileWriter, no fsync).
void file_write_atomic(const std::string& path, const std::string& text);
// What identifies a model folder's weights: config.json and each *.safetensors file by size and
// FNV-1a of its content (of the first MB for files over 64 MB): {"file": {"bytes", "fnv1a64"}}.
// A run refuses a rebuilt model, a direction file records the model it came from. {} when `dir`
// is not a folder.
nlohmann::json model_digest(const std::string& dir);
// Replaces `path` with `j` pretty-printed (2-space indent) and a final newline, atomically.
void json_write_file(const std::string& path, const nlohmann::json& j);
// x as JSON, NaN (undefined) as null.
nlohmann::json json_number(double x);

}  // namespace emlab
