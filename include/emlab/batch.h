// Padded micro-batches of tokenised examples (SftDataset rows) on a device: what training and
// activation collection over a dataset feed the model, and the losses computed on them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "emlab/model.h"
#include "emlab/sft_data.h"

namespace emlab {

// A padded micro-batch: right padding, so causal attention keeps real tokens from seeing pads. The
// losses below still pass `real` as the attention mask, so that the model skips the padding (packs).
struct Batch {
  torch::Tensor ids;     // (B, T) int64, 0 after each row's end
  torch::Tensor mask;    // (B, T) float32: 1 where the token is a target (trained or averaged)
  torch::Tensor real;    // (B, T) float32: 1 where the token is real (not padding)
  std::vector<int64_t> lengths;  // real tokens of each row
  int64_t tokens = 0;    // real tokens (sum of lengths)
  int64_t targets = 0;   // target tokens (sum of mask[:, 1:])
  bool empty() const { return !ids.defined(); }
};

// The given rows of `data` as one batch on `device` (empty when rows is empty).
Batch collate(const SftDataset& data, const std::vector<int64_t>& rows, const torch::Device& device);
// Target tokens of the given rows (mask[1:]), without building tensors.
int64_t count_targets(const SftDataset& data, const std::vector<int64_t>& rows);

// Sum over the batch's target tokens of -log p(token) (float32 scalar; with grad when enabled).
// The head and the cross-entropy run over chunks of chunk_rows target positions (0 = 1024), so the
// (N, V) logits never exist at once; when gradients are wanted, each chunk's are computed while its
// logits are at hand, and backward scales them (nothing recomputed). chunk_rows < 0, and models
// with final-logit softcapping: the whole logits through autograd. Both agree to float rounding
// (test).
torch::Tensor sft_loss_sum(const CausalLM& model, const Batch& batch, const ForwardArgs& args, int64_t chunk_rows = 0);
// Sum over target positions of KL(p_ref || p) over the vocabulary; p_ref from `ref_args`
// (e.g. adapters/vector off) under no_grad, p from `args` (with grad when enabled).
torch::Tensor kl_sum(const CausalLM& model, const Batch& batch, const ForwardArgs& args, const ForwardArgs& ref_args);

}  // namespace emlab
