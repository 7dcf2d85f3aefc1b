// One decoding step (one new token per row into a KV cache of fixed capacity) replayed as a CUDA
// graph. On a GPU, a step of a small model is bound by launching its ~35 kernels per layer one by
// one, not by running them (bench/RESULTS.md, "GPU"): a graph launches them all at once. The graph
// is captured on the first step and again whenever the batch or the cache's storage changes (rows
// dropped); a step equals CausalLM::forward with the cache (ForwardArgs::cache_position is the
// static-shape form it records). Where graphs are unavailable (the CPU, a libtorch without CUDA)
// step() is that forward.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "emlab/model.h"

namespace emlab {

class DecodeGraph {
 public:
  explicit DecodeGraph(const CausalLM& model);
  ~DecodeGraph();
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;

  // True where steps are replayed as a graph: a CUDA model in a build against a CUDA libtorch.
  static bool available(const CausalLM& model);

  // ids (B, 1) and position_ids (B, 1) int64, attention_mask (B, S) with S = cache.length + 1 (1 =
  // real token), as CausalLM::forward with this cache, last_logits_only and no hooks; `adapters`
  // as ForwardArgs::adapters. Returns the logits (B, 1, V); cache.length grows by one.
  torch::Tensor step(const torch::Tensor& ids, const torch::Tensor& position_ids, const torch::Tensor& attention_mask,
                     KVCache& cache, bool adapters = true);

  // Graphs captured so far (a new one per batch or cache change).
  int64_t captures() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emlab
