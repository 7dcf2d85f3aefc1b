// Batched sampling with a KV cache: many prompts x n samples each. Every prompt is prefilled once
// and its cache duplicated for its samples; sequences stop on EOS ids or stop strings and leave
// the batch. The same seed, batch size and device give the same output.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "emlab/model.h"
#include "emlab/tokenizer.h"

namespace emlab {

struct SampleOptions {
  int64_t max_new_tokens = 600;        // stop a sequence after this many new tokens
  int64_t min_new_tokens = 0;          // EOS and stop strings are ignored before this many tokens
  double temperature = 1.0;            // softmax temperature; 0 = greedy (argmax)
  double top_p = 1.0;                  // nucleus sampling: smallest set with this much mass (1 = off)
  int64_t top_k = 0;                   // sample from the top K candidates (0 = full distribution)
  uint64_t seed = 0;                   // random seed; same seed, batch size and device = same output
  int64_t batch_size = 64;             // sequences decoded at once (prompts x samples are chunked)
  std::vector<int32_t> eos_ids;        // token ids that end a sequence (not part of the text)
  std::vector<std::string> stop;       // stop strings: the text is cut before them
  bool progress = true;                // show a progress bar (tokens/s)
};

struct Completion {
  std::string text;                    // decoded new tokens, cut at a stop string
  std::vector<int32_t> tokens;         // new token ids (EOS excluded)
  std::string finish_reason;           // "stop" (EOS or stop string) or "length"
};

// prompts: token ids per prompt. Returns, per prompt, n completions. `hooks` (optional) is
// applied on every forward call. Throws InputError when a prompt does not fit the context.
std::vector<std::vector<Completion>> generate(const CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<std::vector<int32_t>>& prompts, int64_t n,
                                              const SampleOptions& options, ResidualHooks* hooks = nullptr);

// One sampling step on logits (B, V): returns (B) int64 token ids. `uniform` (B) float64 in [0,1)
// drives inverse-CDF sampling (drawn on the CPU, so results do not depend on the device RNG).
torch::Tensor sample_tokens(const torch::Tensor& logits, const SampleOptions& options, const torch::Tensor& uniform);

}  // namespace emlab
