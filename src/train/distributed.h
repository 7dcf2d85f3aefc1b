// Data parallel over processes with PyTorch's c10d: rendezvous from RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT (as torchrun sets them) through a TCPStore; ProcessGroupGloo on CPU, NCCL on CUDA
// when this libtorch was built with it. Private to src/train.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace emlab::train_detail {

class Distributed {
 public:
  // Reads the environment; WORLD_SIZE unset or 1 gives a single-process context that does nothing.
  // Throws InputError for inconsistent variables or when this build lacks the needed backend.
  static std::unique_ptr<Distributed> from_env(const torch::Device& device);
  ~Distributed();

  int rank() const { return rank_; }
  int world() const { return world_; }
  bool active() const { return world_ > 1; }
  // Sums a tensor over all processes in place (no-op for one process).
  void all_reduce_sum(torch::Tensor& t);
  void barrier();

 private:
  Distributed() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1;
};

// An integer environment variable, or fallback when unset/empty; InputError when not an integer.
int env_int(const char* name, int fallback);

}  // namespace emlab::train_detail
