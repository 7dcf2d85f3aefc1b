// One AdamW update of one parameter (private to src/train): AdamW::step's torch ops, and the same
// update as one fused CPU pass.
//
// Through torch ops an update is eight passes over the parameter and its two moment tensors per
// step (each a small op for a small model); fused it is one. The fused pass computes what this
// libtorch's ops compute, rounding for rounding (the moments' updates as fused multiply-adds, as
// ATen's vectorised add-with-alpha and addcmul are; addcdiv as (value t1) / t2 + self), so the
// two give the same bits (tested against each other).
#pragma once

#include <torch/torch.h>

namespace emlab::train_detail {

struct AdamWUpdate {
  double decay = 1.0;      // the parameter's factor before the update: 1 - lr * weight_decay, or 1
  double beta1 = 0.9;      // first moment's decay
  double beta2 = 0.999;    // second moment's decay
  double bc2_sqrt = 1.0;   // sqrt(1 - beta2^step): the second moment's bias correction
  double eps = 1e-8;       // added to the denominator
  double step_size = 0.0;  // lr / (1 - beta1^step)
};

// p *= decay; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g g;
// p += -step_size m / (sqrt(v) / bc2_sqrt + eps), in place, with torch ops.
void adamw_update_torch(torch::Tensor& p, torch::Tensor& m, torch::Tensor& v, const torch::Tensor& g,
                        const AdamWUpdate& u);
// The same as one pass, for contiguous float32 CPU tensors on a CPU with AVX-512 where the linked
// libtorch's ops round as the pass does (adamw_fused_matches_torch); false (nothing changed)
// elsewhere.
bool adamw_update_fused(torch::Tensor& p, torch::Tensor& m, torch::Tensor& v, const torch::Tensor& g,
                        const AdamWUpdate& u);
// Whether the fused pass gives the bits of adamw_update_torch with the libtorch this program runs
// on: checked once per process on a probe of a few thousand values over three steps, with and
// without decay (Debian's libtorch 1.13: yes; the torch 2.13 wheel's: no, its float32 sqrt is not
// correctly rounded). False without AVX-512.
bool adamw_fused_matches_torch();

}  // namespace emlab::train_detail
