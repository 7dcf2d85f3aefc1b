// The fused decoding step at batch 1 (src/model/decode_step.cpp, ForwardArgs::fused_decode), private
// to src/model and its tests.
#pragma once

#include <cstdint>

namespace emlab::model_detail {

// Steps the fused path has taken in this process (tests check that it ran where it applies).
int64_t fused_decode_steps();

}  // namespace emlab::model_detail
