// The loss head's softmax cross-entropy over bf16 logits as one fused CPU pass per row, private to
// src/model (emlab/batch.h's sft_loss_sum).
//
// Through torch ops a chunk of bf16 logits is widened to float32, log-softmaxed (two passes with
// an exp), gathered, exponentiated again, given -1 at the targets and rounded back to bf16 for the
// gradient's products: seven passes over (n, V) floats and two exps per element. Here one pass reads
// the bf16 row for its maximum, one computes the exps and their sum, and one writes the gradient,
// all in float32 (bf16 widened exactly on load, the gradient rounded once on store). float32 logits
// keep torch's ops, whose bits the shipped experiments depend on.
#pragma once

#include <torch/torch.h>

namespace emlab::model_detail {

// logits (n, V) bf16 contiguous on the CPU, targets (n) int64 in [0, V). Writes grad (n, V) bf16:
// softmax(logits) - onehot(targets), and returns the sum over rows of -log softmax(logits)[target]
// as a float32 scalar tensor. Returns an undefined tensor (and leaves grad alone) where it does not
// apply (no AVX-512, another dtype or device, a non-contiguous input, a target out of range); the
// caller keeps torch's ops.
torch::Tensor cross_entropy_rows_bf16(const torch::Tensor& logits, const torch::Tensor& targets, torch::Tensor* grad);

}  // namespace emlab::model_detail
