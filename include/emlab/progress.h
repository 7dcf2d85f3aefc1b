// Progress reporting for long operations: a bar with rate and ETA on a terminal, plain lines
// (at most one every few seconds, plus the last) when stderr is not a TTY.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace emlab {

class Progress {
 public:
  // label: what is being done ("sampling"); total: units to do (0 = unknown); unit: "tok", "ex", ...
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Advance by n units; extra is shown after the counters (e.g. "loss 2.31").
  void advance(int64_t n = 1, const std::string& extra = "");
  // Set the absolute count (for resumed work: starts the rate from here).
  void set(int64_t done, const std::string& extra = "");
  // Print the final line (called by the destructor if not called before).
  void finish(const std::string& extra = "");

  int64_t done() const { return done_; }

  // Globally silence progress output (tests, --quiet).
  static void set_enabled(bool enabled);

 private:
  void print(bool final);

  std::string label_, unit_, extra_;
  int64_t total_ = 0, done_ = 0, start_done_ = 0;
  bool tty_ = false, finished_ = false, started_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
  std::mutex mu_;
};

}  // namespace emlab
