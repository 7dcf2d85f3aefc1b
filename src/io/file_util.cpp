#include "emlab/file_util.h"

#include <cmath>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "emlab/error.h"
#include "emlab/hash.h"

namespace emlab {

bool path_has_suffix(const std::string& path, const std::string& suffix) {
  return path.size() >= suffix.size() &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void write_fully(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Linux writes at most ~2 GiB per call; chunking keeps large tensors simple.
    ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

struct AtomicFileWriter::Gzip {
  z_stream zs{};
  std::vector<unsigned char> out = std::vector<unsigned char>(1 << 16);
};

AtomicFileWriter::AtomicFileWriter(const std::string& path, bool gzip)
    : path_(path), tmp_path_(path + ".tmp-" + std::to_string(::getpid())) {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(path + ": cannot create " + tmp_path_ + ": " + std::strerror(errno));
  if (gzip) {
    gz_ = std::make_unique<Gzip>();
    // windowBits 15 + 16 selects the gzip wrapper.
    if (deflateInit2(&gz_->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      gz_.reset();
      ::close(fd_);
      ::unlink(tmp_path_.c_str());
      throw Error(path + ": zlib deflateInit2 failed");
    }
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (gz_) deflateEnd(&gz_->zs);
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFileWriter::write_raw(const void* data, size_t n) { write_fully(fd_, data, n, tmp_path_); }

void AtomicFileWriter::write(const void* data, size_t n) {
  if (!gz_) return write_raw(data, n);
  const unsigned char* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    // avail_in is 32-bit: feed large buffers in pieces.
    uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    gz_->zs.next_in = const_cast<unsigned char*>(p);
    gz_->zs.avail_in = chunk;
    while (gz_->zs.avail_in > 0) {
      gz_->zs.next_out = gz_->out.data();
      gz_->zs.avail_out = static_cast<uInt>(gz_->out.size());
      if (deflate(&gz_->zs, Z_NO_FLUSH) == Z_STREAM_ERROR) throw Error(path_ + ": zlib deflate failed");
      write_raw(gz_->out.data(), gz_->out.size() - gz_->zs.avail_out);
    }
    p += chunk;
    n -= chunk;
  }
}

void AtomicFileWriter::commit(bool sync) {
  if (gz_) {
    int rc;
    gz_->zs.next_in = nullptr;
    gz_->zs.avail_in = 0;
    do {
      gz_->zs.next_out = gz_->out.data();
      gz_->zs.avail_out = static_cast<uInt>(gz_->out.size());
      rc = deflate(&gz_->zs, Z_FINISH);
      if (rc == Z_STREAM_ERROR) throw Error(path_ + ": zlib deflate failed");
      write_raw(gz_->out.data(), gz_->out.size() - gz_->zs.avail_out);
    } while (rc != Z_STREAM_END);
  }
  if (sync && ::fsync(fd_) != 0) throw Error(tmp_path_ + ": fsync failed: " + std::strerror(errno));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw Error(tmp_path_ + ": close failed: " + std::strerror(errno));
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    throw Error(path_ + ": cannot rename " + tmp_path_ + " into place: " + std::strerror(errno));
  committed_ = true;
}

std::string file_read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot read the file");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError(path + ": cannot read the file");
  return ss.str();
}

nlohmann::json json_read_file(const std::string& path) {
  const std::string text = file_read_text(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": bad JSON: " + e.what());
  }
}

void file_write_atomic(const std::string& path, const std::string& text) {
  AtomicFileWriter out(path);
  out.write(text);
  out.commit(/*sync=*/false);
}

void json_write_file(const std::string& path, const nlohmann::json& j) { file_write_atomic(path, j.dump(2) + "\n"); }

nlohmann::json json_number(double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); }

nlohmann::json model_digest(const std::string& dir) {
  namespace fs = std::filesystem;
  nlohmann::json out = nlohmann::json::object();
  if (!fs::is_directory(dir)) return out;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && (e.path().extension() == ".safetensors" || e.path().filename() == "config.json"))
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const auto size = fs::file_size(f);
    std::ifstream in(f, std::ios::binary);
    std::string head(std::min<uintmax_t>(size, size > (64u << 20) ? (1u << 20) : size), '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(head)));
    out[f.filename().string()] = {{"bytes", size}, {"fnv1a64", hex}};
  }
  return out;
}

}  // namespace emlab
