// Batched sampling with a KV cache: many requests (a prompt, n samples, its own hooks) decoded
// together. Every prompt is prefilled once and its cache duplicated for its samples; sequences stop
// on EOS ids, stop strings or their length limit and leave the batch. The same seed, batch size and
// device give the same output.
//
// Log-probabilities (logprobs, top_logprobs) are the model's own: log-softmax of the logits over
// the tokenizer's vocabulary, before temperature, top-k and top-p — what OpenAI's API reports
// (its logprobs do not change with temperature) and what a judge scores; they do not depend on
// how the token was sampled.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "emlab/model.h"
#include "emlab/tokenizer.h"

namespace emlab {

class ResidualHooks;

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
  bool logprobs = false;               // record each new token's log-probability (Completion::logprobs)
  int64_t top_logprobs = 0;            // record the K most probable tokens at each step (0..20)
  bool progress = true;                // show a progress bar (tokens/s)
  bool cuda_graphs = true;             // on a GPU, replay decoding steps without hooks as CUDA graphs
                                       // (emlab/decode_graph.h); no effect elsewhere
  bool share_prompts = true;           // a prompt's samples share its keys and values (KVCache's shared
                                       // prefix, where the CPU attention kernels read the cache): the
                                       // same results, the prompt read once per step instead of per sample
};

// A token with its log-probability.
struct TokenProb {
  int32_t id = 0;
  double logprob = 0.0;
};

struct Completion {
  std::string text;                    // decoded new tokens, cut at a stop string
  std::vector<int32_t> tokens;         // new token ids (EOS excluded)
  std::string finish_reason;           // "stop" (EOS or stop string) or "length"
  // With SampleOptions::logprobs / top_logprobs, per step (new tokens, then the EOS step if any):
  std::vector<int32_t> step_tokens;    // the token chosen at each step (tokens, then the EOS id)
  std::vector<double> logprobs;        // log p(chosen token)
  std::vector<std::vector<TokenProb>> top_logprobs;  // the K most probable tokens, best first
};

// One request: a prompt, how many samples, and the hooks its rows go through (steering, ablation).
// Requests with different hooks share batches.
struct GenerateRequest {
  std::vector<int32_t> prompt;         // token ids
  int64_t n = 1;                       // samples
  ResidualHooks* hooks = nullptr;      // applied on this request's rows at every forward (null = none)
};

// What the per-token callback sees: one new token of one sequence, in decoding order. The `text`
// pieces of a sequence concatenate to its Completion::text: text that could still become a stop
// string, or an incomplete UTF-8 character, is held back until it is decided.
struct TokenEvent {
  int64_t request = 0;                 // index into the requests (prompts)
  int64_t sample = 0;                  // 0..n-1
  int32_t token = 0;                   // the chosen id (an EOS id on the final "stop" event)
  std::string text;                    // new text of the sequence (may be empty)
  double logprob = 0.0;                // log p(token) (with options.logprobs or top_logprobs)
  std::vector<TokenProb> top_logprobs; // with options.top_logprobs
  std::string finish_reason;           // "" while the sequence goes on; "stop" or "length" on its last event
};
// Returns false to stop decoding the sequence (e.g. a client went away); it then finishes with
// reason "cancelled".
using TokenCallback = std::function<bool(const TokenEvent&)>;

// Per request, its n completions. Throws InputError for bad options or a prompt that does not fit
// the context (max_position_embeddings).
std::vector<std::vector<Completion>> generate(const CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<GenerateRequest>& requests,
                                              const SampleOptions& options, const TokenCallback& on_token = {});
// The same with one n and one set of hooks for every prompt.
std::vector<std::vector<Completion>> generate(const CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<std::vector<int32_t>>& prompts, int64_t n,
                                              const SampleOptions& options, ResidualHooks* hooks = nullptr);

// One sampling step on logits (B, V): returns (B) int64 token ids. `uniform` (B) float64 in [0,1)
// drives inverse-CDF sampling (drawn on the CPU, so results do not depend on the device RNG).
torch::Tensor sample_tokens(const torch::Tensor& logits, const SampleOptions& options, const torch::Tensor& uniform);

}  // namespace emlab
