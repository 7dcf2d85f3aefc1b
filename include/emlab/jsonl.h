// JSON Lines: one JSON value per line. Reading handles plain and gzip files (detected from the
// content, so `.jsonl.gz` and `.jsonl` both work); writing is either append-only and resumable
// (JsonlAppender, for long runs) or a whole-file atomic replace (jsonl_write_all).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace emlab {

struct JsonlRow {
  int64_t line = 0;          // 1-based line number in the (decompressed) file
  nlohmann::json value;      // the parsed line
};

struct JsonlReadOptions {
  bool collect_errors = false;        // record "FILE:LINE: bad JSON: ..." in errors() and go on instead of throwing
  bool allow_torn_last_line = false;  // drop a bad last line that has no '\n' (a writer killed mid-row)
};

// Streams rows; blank (whitespace-only) lines are skipped, "\r\n" endings and a UTF-8 BOM accepted.
class JsonlReader {
 public:
  // Throws InputError when the file cannot be opened.
  explicit JsonlReader(const std::string& path, JsonlReadOptions options = {});
  ~JsonlReader();
  JsonlReader(JsonlReader&&) noexcept;
  JsonlReader& operator=(JsonlReader&&) noexcept;

  // Next non-blank line; false at the end. A bad line throws InputError "FILE:LINE: bad JSON: ..."
  // (or, with collect_errors, is recorded and skipped). A corrupt gzip stream always throws.
  bool next(JsonlRow* row);
  const std::vector<std::string>& errors() const;
  // Whether a torn last line was dropped (allow_torn_last_line).
  bool dropped_torn_last_line() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// All rows of a file. With options.collect_errors, bad lines go to *errors (when given).
std::vector<JsonlRow> jsonl_read_all(const std::string& path, const JsonlReadOptions& options = {},
                                     std::vector<std::string>* errors = nullptr);
// Just the values, in file order.
std::vector<nlohmann::json> jsonl_read_values(const std::string& path,
                                              const JsonlReadOptions& options = {});

// Serialises one row without newlines. Invalid UTF-8 in strings becomes U+FFFD rather than an
// error, because model output can end inside a multi-byte character.
std::string jsonl_dump(const nlohmann::json& value);

// Replaces `path` with the rows, one per line, atomically (temporary file + rename); gzip when
// the path ends in ".gz".
void jsonl_write_all(const std::string& path, const std::vector<nlohmann::json>& rows);

struct JsonlAppendOptions {
  bool fsync = false;              // fsync after every row: survives power loss, costs a disk flush each
  bool create_parent_dirs = true;  // create missing parent folders of the path
  bool lock = true;                // take an exclusive flock: a second writer fails instead of interleaving
};

// Append-only writer for resumable runs: each append() writes one line with a single write(2)
// (no user-space buffering, so a row is on disk as soon as append returns, short of power loss).
// On open, a last line without '\n' (a process killed mid-row) is completed with '\n' when it is
// valid JSON and truncated away otherwise, so the resumed run appends cleanly.
class JsonlAppender {
 public:
  // Creates the file when missing. Throws InputError for a ".gz" path, an unwritable path, or a
  // file locked by another writer.
  explicit JsonlAppender(const std::string& path, JsonlAppendOptions options = {});
  ~JsonlAppender();
  JsonlAppender(JsonlAppender&&) noexcept;
  JsonlAppender& operator=(JsonlAppender&&) noexcept;

  // Thread-safe. The row is serialised with jsonl_dump.
  void append(const nlohmann::json& row);
  const std::string& path() const;
  int64_t rows_appended() const;         // by this object
  size_t torn_bytes_dropped() const;     // bytes of a torn last line removed on open (0 if none)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emlab
