// Data parallel on one machine without a launcher: the calling process becomes rank 0 of `procs`
// ranks and starts ranks 1..procs-1 as copies of itself (its own command line minus `--procs`), with
// the environment torchrun would set (RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, a free MASTER_PORT).
// The trainer (emlab/train.h) then rendezvouses through c10d as under torchrun. Linux only
// (/proc/self/exe, /proc/self/cmdline).
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace emlab {

struct LocalRanksOptions {
  int procs = 1;          // ranks in all, this process included; 1 = no other process
  std::string log_dir;    // rank i > 0 writes its output to log_dir/rank<i>.log
};

class LocalRanks {
 public:
  // Starts ranks 1..procs-1 and sets this process's environment to rank 0. Each rank gets
  // max(1, cores / procs) tensor threads unless fewer were asked for (two ranks x two OpenMP
  // threads on two cores run several times slower). Throws InputError for procs < 1 or when
  // RANK/WORLD_SIZE are already set (a launcher already made the ranks).
  explicit LocalRanks(const LocalRanksOptions& options);
  // Waits for the other ranks; throws Error naming the rank that failed and its log file.
  void wait();
  // Terminates ranks still running (rank 0 failed before wait()).
  ~LocalRanks();
  LocalRanks(const LocalRanks&) = delete;
  LocalRanks& operator=(const LocalRanks&) = delete;

  int threads_per_rank() const { return threads_; }

 private:
  std::vector<pid_t> children_;  // rank i+1 at index i
  std::vector<std::string> logs_;
  int threads_ = 0;
};

// Rank and world size from the environment (0 and 1 without a launcher); InputError when malformed.
int env_rank();
int env_world_size();

// Whether this build can run data parallel on the CPU (libgloo headers were found).
bool distributed_cpu_available();

}  // namespace emlab
