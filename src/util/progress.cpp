#include "emlab/progress.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace emlab {

namespace {
std::atomic<bool> g_enabled{true};

std::string format_seconds(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}
}  // namespace

void Progress::set_enabled(bool enabled) { g_enabled = enabled; }

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  tty_ = isatty(STDERR_FILENO) && !std::getenv("EMLAB_PLAIN_PROGRESS");
  start_ = last_print_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_) finish();
}

void Progress::advance(int64_t n, const std::string& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  started_ = true;
  done_ += n;
  if (!extra.empty()) extra_ = extra;
  print(false);
}

void Progress::set(int64_t done, const std::string& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!started_) start_done_ = done;  // resumed work: the rate counts from here
  started_ = true;
  done_ = done;
  if (!extra.empty()) extra_ = extra;
  print(false);
}

void Progress::finish(const std::string& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (!extra.empty()) extra_ = extra;
  print(true);
}

void Progress::print(bool final) {
  if (!g_enabled) return;
  auto now = std::chrono::steady_clock::now();
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  // Terminal: redraw at most 10x a second. Log: a line every 5 s.
  if (!final && since_print < (tty_ ? 0.1 : 5.0)) return;
  last_print_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? (done_ - start_done_) / elapsed : 0.0;
  double eta = (total_ > 0 && rate > 0) ? (total_ - done_) / rate : NAN;
  char counts[96];
  if (total_ > 0)
    std::snprintf(counts, sizeof counts, "%lld/%lld", (long long)done_, (long long)total_);
  else
    std::snprintf(counts, sizeof counts, "%lld", (long long)done_);
  char rate_s[64];
  std::snprintf(rate_s, sizeof rate_s, rate >= 100 ? "%.0f %s/s" : "%.2f %s/s", rate, unit_.c_str());
  std::string line = label_ + " ";
  if (tty_ && total_ > 0) {
    const int width = 24;
    int filled = static_cast<int>(width * std::min<double>(1.0, double(done_) / total_));
    line += "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  }
  line += std::string(counts) + " " + rate_s + " elapsed " + format_seconds(elapsed);
  if (!final && total_ > 0) line += " eta " + format_seconds(eta);
  if (!extra_.empty()) line += " | " + extra_;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace emlab
