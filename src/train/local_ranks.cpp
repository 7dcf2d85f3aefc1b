// Rank 0 starting the other ranks of a single-machine data-parallel run (see emlab/local_ranks.h).
#include "emlab/local_ranks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <torch/torch.h>

#include "emlab/error.h"
#include "emlab/runtime.h"
#include "train/distributed.h"

extern char** environ;

namespace fs = std::filesystem;

namespace emlab {

namespace {

// This process's argv, as the kernel recorded it.
std::vector<std::string> own_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  if (!f) throw Error("/proc/self/cmdline: unreadable (starting local ranks needs Linux /proc)");
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < all.size();) {
    const size_t end = all.find('\0', start);
    args.push_back(all.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return args;
}

// The same command for another rank: without --procs (that rank starts nobody) and with its thread
// count set explicitly.
std::vector<std::string> rank_command_line(const std::vector<std::string>& own, int threads) {
  std::vector<std::string> out{own.at(0), "--threads", std::to_string(threads)};
  for (size_t i = 1; i < own.size(); ++i) {
    const std::string& a = own[i];
    if (a == "--procs" || a == "--threads") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--procs=", 0) == 0 || a.rfind("--threads=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

// A port nobody listens on now (the kernel's choice for port 0); rank 0's TCPStore binds it next.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("socket(): ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error("finding a free loopback port: " + why);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

int env_rank() { return train_detail::env_int("RANK", 0); }
int env_world_size() { return train_detail::env_int("WORLD_SIZE", 1); }

LocalRanks::LocalRanks(const LocalRanksOptions& o) {
  if (o.procs < 1) throw InputError("--procs must be >= 1 (got " + std::to_string(o.procs) + ")");
  threads_ = torch::get_num_threads();
  if (o.procs == 1) return;
  if (std::getenv("RANK") || std::getenv("WORLD_SIZE"))
    throw InputError("--procs " + std::to_string(o.procs) +
                     " starts its own ranks, but RANK/WORLD_SIZE are already set (a launcher such as torchrun "
                     "made them): drop --procs or unset them");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads_ = std::max(1, std::min(threads_, cores / o.procs));
  runtime_set_threads(threads_);

  const int port = free_port();
  ::setenv("WORLD_SIZE", std::to_string(o.procs).c_str(), 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  const auto args = rank_command_line(own_command_line(), threads_);
  fs::create_directories(o.log_dir.empty() ? "." : o.log_dir);
  for (int rank = 1; rank < o.procs; ++rank) {
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    const std::string log = (fs::path(o.log_dir.empty() ? "." : o.log_dir) / ("rank" + std::to_string(rank) + ".log")).string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      ::setenv("RANK", "0", 1);
      throw Error("starting rank " + std::to_string(rank) + ": " + std::strerror(rc));
    }
    children_.push_back(pid);
    logs_.push_back(log);
  }
  ::setenv("RANK", "0", 1);
}

void LocalRanks::wait() {
  std::string failed;
  for (size_t i = 0; i < children_.size(); ++i) {
    int status = 0;
    if (::waitpid(children_[i], &status, 0) < 0) continue;
    children_[i] = 0;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && failed.empty())
      failed = "rank " + std::to_string(i + 1) + " failed (" +
               (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                  : "signal " + std::to_string(WTERMSIG(status))) +
               "); its output: " + logs_[i];
  }
  if (!failed.empty()) throw Error(failed);
}

LocalRanks::~LocalRanks() {
  for (pid_t pid : children_)
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
}

}  // namespace emlab
