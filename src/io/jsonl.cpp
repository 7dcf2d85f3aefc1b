#include "emlab/jsonl.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "emlab/error.h"
#include "emlab/file_util.h"

namespace emlab {

namespace {

bool is_blank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

// nlohmann's message minus its "[json.exception...] parse error at line 1, " prefix (each JSONL
// line is parsed alone, so its line number is meaningless) and capped in length.
std::string parse_error_text(const nlohmann::json::parse_error& e) {
  std::string msg = e.what();
  size_t col = msg.find("column ");
  if (col != std::string::npos) msg = msg.substr(col);
  if (msg.size() > 240) msg = msg.substr(0, 240) + "...";
  return msg;
}

// Parses one line; on failure returns false and fills *error.
bool parse_line(const std::string& text, nlohmann::json* out, std::string* error) {
  try {
    *out = nlohmann::json::parse(text);
    return true;
  } catch (const nlohmann::json::parse_error& e) {
    *error = parse_error_text(e);
    return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading

struct JsonlReader::Impl {
  std::string path;
  JsonlReadOptions options;
  gzFile file = nullptr;
  std::string buf;       // decompressed bytes not yet consumed, from `pos`
  size_t pos = 0;
  bool eof = false;
  int64_t line = 0;
  bool dropped_torn = false;
  std::vector<std::string> errors;

  ~Impl() {
    if (file) gzclose(file);
  }

  void fill() {
    if (pos > 0) {
      buf.erase(0, pos);
      pos = 0;
    }
    char chunk[1 << 16];
    int n = gzread(file, chunk, sizeof chunk);
    if (n < 0) {
      int code;
      const char* msg = gzerror(file, &code);
      throw InputError(path + ": cannot read (corrupt gzip?): " + (msg ? msg : "unknown error"));
    }
    if (n == 0) {
      int code;
      const char* msg = gzerror(file, &code);
      // zlib reports a gzip stream cut short as Z_BUF_ERROR at the end of input.
      if (code != Z_OK)
        throw InputError(path + ": truncated or corrupt gzip stream: " + (msg ? msg : "unknown error"));
      eof = true;
      return;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }

  // Next physical line without its '\n'; false at end. *terminated: whether a '\n' ended it.
  bool next_line(std::string* out, bool* terminated) {
    for (;;) {
      size_t nl = buf.find('\n', pos);
      if (nl != std::string::npos) {
        out->assign(buf, pos, nl - pos);
        pos = nl + 1;
        *terminated = true;
        break;
      }
      if (eof) {
        if (pos >= buf.size()) return false;
        out->assign(buf, pos, std::string::npos);
        pos = buf.size();
        *terminated = false;
        break;
      }
      fill();
    }
    ++line;
    if (!out->empty() && out->back() == '\r') out->pop_back();
    if (line == 1 && out->compare(0, 3, "\xEF\xBB\xBF") == 0) out->erase(0, 3);
    return true;
  }
};

JsonlReader::JsonlReader(const std::string& path, JsonlReadOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->options = options;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(path + ": cannot open: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw InputError(path + ": is a folder, expected a JSONL file");
  // gzopen reads non-gzip files transparently, so one code path serves .jsonl and .jsonl.gz.
  impl_->file = gzopen(path.c_str(), "rb");
  if (!impl_->file) throw InputError(path + ": cannot open: " + std::strerror(errno));
  gzbuffer(impl_->file, 1 << 17);
}

JsonlReader::~JsonlReader() = default;
JsonlReader::JsonlReader(JsonlReader&&) noexcept = default;
JsonlReader& JsonlReader::operator=(JsonlReader&&) noexcept = default;

bool JsonlReader::next(JsonlRow* row) {
  Impl& s = *impl_;
  std::string text;
  bool terminated = false;
  while (s.next_line(&text, &terminated)) {
    if (is_blank(text)) continue;
    std::string error;
    if (parse_line(text, &row->value, &error)) {
      row->line = s.line;
      return true;
    }
    if (!terminated && s.options.allow_torn_last_line) {
      s.dropped_torn = true;
      return false;
    }
    std::string msg = s.path + ":" + std::to_string(s.line) + ": bad JSON: " + error;
    if (!s.options.collect_errors) throw InputError(msg);
    s.errors.push_back(std::move(msg));
  }
  return false;
}

const std::vector<std::string>& JsonlReader::errors() const { return impl_->errors; }
bool JsonlReader::dropped_torn_last_line() const { return impl_->dropped_torn; }
const std::string& JsonlReader::path() const { return impl_->path; }

std::vector<JsonlRow> jsonl_read_all(const std::string& path, const JsonlReadOptions& options,
                                     std::vector<std::string>* errors) {
  JsonlReader reader(path, options);
  std::vector<JsonlRow> rows;
  JsonlRow row;
  while (reader.next(&row)) rows.push_back(std::move(row));
  if (errors) *errors = reader.errors();
  return rows;
}

std::vector<nlohmann::json> jsonl_read_values(const std::string& path,
                                              const JsonlReadOptions& options) {
  std::vector<nlohmann::json> values;
  for (auto& row : jsonl_read_all(path, options)) values.push_back(std::move(row.value));
  return values;
}

// ---------------------------------------------------------------------------------------------
// Writing

std::string jsonl_dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void jsonl_write_all(const std::string& path, const std::vector<nlohmann::json>& rows) {
  AtomicFileWriter out(path, path_has_suffix(path, ".gz"));
  std::string chunk;
  for (const auto& row : rows) {
    chunk += jsonl_dump(row);
    chunk += '\n';
    if (chunk.size() > (1 << 20)) {
      out.write(chunk);
      chunk.clear();
    }
  }
  out.write(chunk);
  out.commit(/*sync=*/true);
}

struct JsonlAppender::Impl {
  std::string path;
  JsonlAppendOptions options;
  int fd = -1;
  std::atomic<int64_t> rows{0};
  size_t torn_dropped = 0;
  std::mutex mutex;

  ~Impl() {
    if (fd >= 0) ::close(fd);  // also releases the flock
  }

  [[noreturn]] void fail(const std::string& what) {
    throw InputError(path + ": " + what + ": " + std::strerror(errno));
  }

  // Repairs a last line without '\n': complete it when it parses, drop it otherwise.
  void repair_tail() {
    struct stat st;
    if (::fstat(fd, &st) != 0) fail("cannot stat");
    const off_t size = st.st_size;
    if (size == 0) return;
    char last;
    if (::pread(fd, &last, 1, size - 1) != 1) fail("cannot read");
    if (last == '\n') return;
    // Walk back in chunks to the previous '\n' (or the start of the file).
    std::string tail;  // bytes after the last '\n'
    off_t end = size, line_start = 0;
    char chunk[1 << 16];
    while (end > 0) {
      off_t begin = end > static_cast<off_t>(sizeof chunk) ? end - static_cast<off_t>(sizeof chunk) : 0;
      ssize_t n = ::pread(fd, chunk, static_cast<size_t>(end - begin), begin);
      if (n != end - begin) fail("cannot read");
      const void* nl = memrchr(chunk, '\n', static_cast<size_t>(n));
      if (nl) {
        size_t at = static_cast<const char*>(nl) - chunk;
        tail.insert(0, chunk + at + 1, static_cast<size_t>(n) - at - 1);
        line_start = begin + static_cast<off_t>(at) + 1;
        break;
      }
      tail.insert(0, chunk, static_cast<size_t>(n));
      end = begin;
    }
    nlohmann::json value;
    std::string error;
    if (!is_blank(tail) && parse_line(tail, &value, &error)) {
      write_fully(fd, "\n", 1, path);  // fd is O_APPEND: goes to the end
      return;
    }
    if (::ftruncate(fd, line_start) != 0) fail("cannot truncate the torn last line");
    torn_dropped = static_cast<size_t>(size - line_start);
  }
};

JsonlAppender::JsonlAppender(const std::string& path, JsonlAppendOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.path = path;
  s.options = options;
  if (path_has_suffix(path, ".gz"))
    throw InputError(path + ": cannot append to a gzip file; write plain .jsonl and compress it later");
  if (options.create_parent_dirs) {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) throw InputError(path + ": cannot create folder " + parent.string() + ": " + ec.message());
  }
  s.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (s.fd < 0) s.fail("cannot open for appending");
  if (options.lock && ::flock(s.fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      throw InputError(path + ": another process (or writer) is appending to this file");
    s.fail("cannot lock");
  }
  s.repair_tail();
}

JsonlAppender::~JsonlAppender() = default;
JsonlAppender::JsonlAppender(JsonlAppender&&) noexcept = default;
JsonlAppender& JsonlAppender::operator=(JsonlAppender&&) noexcept = default;

void JsonlAppender::append(const nlohmann::json& row) {
  std::string line = jsonl_dump(row);
  line += '\n';
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mutex);
  write_fully(s.fd, line.data(), line.size(), s.path);
  if (s.options.fsync && ::fdatasync(s.fd) != 0)
    throw Error(s.path + ": fdatasync failed: " + std::strerror(errno));
  ++s.rows;
}

const std::string& JsonlAppender::path() const { return impl_->path; }
int64_t JsonlAppender::rows_appended() const { return impl_->rows; }
size_t JsonlAppender::torn_bytes_dropped() const { return impl_->torn_dropped; }

}  // namespace emlab
