// Private helpers of src/io: atomic file replacement (optionally gzip-compressed) and raw writes.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

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

}  // namespace emlab
