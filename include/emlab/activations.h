// Activation collection: a model (with or without an adapter, any device and dtype) run over
// (prompt, answer) pairs in batches, accumulating at every decoder layer's output (and optionally
// every MLP output) the sum over answer tokens, over prompt tokens and at the last prompt token,
// plus per-example projections of the answer mean onto given directions. Memory stays
// O(layers x hidden) plus one number per example and projected layer, not O(tokens).
//
// An example is rendered as the model sees it when answering: the prompt conversation with the
// generation prompt (chat template), then the answer's tokens. Answer positions are the answer's
// tokens (not the end of turn); the last prompt position is the one whose output predicts the
// first answer token.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "emlab/chat.h"
#include "emlab/hooks.h"

namespace emlab {

class ChatModel;

struct ActivationExample {
  Conversation prompt;   // system (optional) and user messages, as sent
  std::string answer;    // the assistant's answer
};

struct ActivationOptions {
  std::vector<int64_t> layers;             // decoder layers collected (empty = all)
  bool mlp_output = false;                 // also collect mlp.down_proj outputs (answer tokens)
  int64_t batch_size = 8;                  // examples per forward pass
  std::map<int64_t, torch::Tensor> project;  // layer -> direction (C): each example's answer mean
                                           // projected onto its unit vector
  bool progress = true;                    // show a progress bar (examples/s)
};

struct ActivationSums {
  std::vector<int64_t> layers;             // row i of every (L, C) sum is decoder layer layers[i]
  torch::Tensor answer_sum;                // (L, C) float64: sum over answer tokens
  torch::Tensor prompt_sum;                // (L, C) float64: sum over prompt tokens
  torch::Tensor last_prompt_sum;           // (L, C) float64: sum over examples of the last prompt position
  torch::Tensor mlp_answer_sum;            // (L, C) float64 with mlp_output: MLP outputs over answer tokens
  int64_t answer_tokens = 0;               // tokens in answer_sum
  int64_t prompt_tokens = 0;               // tokens in prompt_sum
  int64_t examples = 0;                    // examples in last_prompt_sum (those with >= 1 answer token)
  int64_t truncated = 0;                   // examples cut to the model's context
  std::vector<int64_t> projected_layers;   // the keys of options.project, in order
  torch::Tensor projections;               // (N, P) float64: example n's answer mean . unit(v_layer)
                                           // (NaN for an example without answer tokens)

  // Means (L, C) float32: sum / count (InputError when the count is 0).
  torch::Tensor answer_mean() const;
  torch::Tensor prompt_mean() const;
  torch::Tensor last_prompt_mean() const;
  // Row of `layer` in the sums; InputError when it was not collected.
  int64_t row(int64_t layer) const;
};

// Runs `model` over the examples (in order, batch_size at a time) and accumulates. `hooks`, when
// given, are applied before the collection at each layer (e.g. steering while measuring).
ActivationSums activations_collect(const ChatModel& model, const std::vector<ActivationExample>& examples,
                                   const ActivationOptions& options = {}, ResidualHooks* hooks = nullptr);

// (prompt, answer) pairs of a chat JSONL file: for each row, the messages before its last
// assistant message and that message. Rows without an assistant message are skipped.
std::vector<ActivationExample> activation_examples_from_chat(const std::string& path);

}  // namespace emlab
