// The phases of a training run (private to src/train): the data, the batch plan, one optimizer
// step and the held-out loss. train_run (trainer.cpp) sets up the model, the trainable state and
// the optimizer, resumes, loops over train_step and saves.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "emlab/chat_template.h"
#include "emlab/model.h"
#include "emlab/sft_data.h"
#include "emlab/tokenizer.h"
#include "emlab/train.h"
#include "train/distributed.h"
#include "train/train_parts.h"

namespace emlab::train_detail {

// The examples of a run.
struct TrainData {
  SftDataset train;    // training examples (the held-out split removed)
  SftDataset heldout;  // holdout_fraction of the data, for the eval loss
  SftDataset kl;       // the KL term's examples (kl_data; empty without)
  int64_t mixed = 0;   // examples of mix_data appended to train
};
// Reads options.data (split by holdout_fraction and the seed; mix_data added to the training
// split only, so the held-out loss stays the narrow data's) and options.kl_data.
TrainData train_data_load(const TrainOptions& options, const Tokenizer& tokenizer, const ChatTemplate& chat_template);

// The batches of a dataset by global step index, over as many epochs as needed (one epoch's
// plan, sft_epoch_batches, cached).
class BatchSchedule {
 public:
  BatchSchedule(const SftDataset& data, int64_t global_batch, uint64_t seed, int64_t bucket_factor);
  int64_t per_epoch() const { return per_epoch_; }
  const std::vector<int64_t>& batch(int64_t index);

 private:
  std::vector<int64_t> lengths_;
  int64_t global_batch_;
  uint64_t seed_;
  int64_t bucket_;
  int64_t per_epoch_ = 1;
  int64_t cached_epoch_ = -1;
  std::vector<std::vector<int64_t>> plan_;
};

// Piece k of rows cut into `parts` contiguous pieces as evenly as possible (the first ones one
// larger): micro-batch k of a global batch.
std::vector<int64_t> part_of(const std::vector<int64_t>& rows, int64_t parts, int64_t k);

// What a step works on.
struct StepInputs {
  const TrainOptions& options;
  torch::Device device;
  CausalLM& model;
  Trainable& trainable;
  AdamW& adam;
  Distributed& dist;
  const TrainData& data;
  BatchSchedule& sft_plan;
  BatchSchedule* kl_plan;  // null without kl_data
};

// Statistics of one optimizer step, over every process.
struct StepStats {
  double loss = 0;       // sft + kl_weight * kl
  double sft = 0;        // mean cross-entropy over the global batch's trained tokens
  double kl = 0;         // mean KL(p_ref || p) over the KL batch's trained tokens (0 without)
  double lr = 0;         // learning rate of the step
  double grad_norm = 0;  // global gradient norm before clipping
  int64_t tokens = 0;    // real tokens processed (training and KL batches)
  int micro_batches_at_once = 1;  // micro-batches run side by side (1: one after another)
};

// Optimizer step `step` of `total` (0-based): the dropout generator reseeded from (seed, step,
// rank), this process's micro-batches forward and backward, one all-reduce of every gradient,
// clipping, AdamW.
StepStats train_step(const StepInputs& in, int64_t step, int64_t total);

// The in-training probe (options.probe): a fixed set of examples whose assistant-token activations
// at one layer are projected onto a direction's unit vector; measure() gives the mean over tokens,
// of the model as it is saved (the method's part on, train-time steering off).
class Probe {
 public:
  // Reads the direction and the probe set (probe_data, else the first probe_examples rows of train).
  Probe(const TrainOptions& options, const Tokenizer& tokenizer, const ChatTemplate& chat_template,
        const SftDataset& train, const CausalLM& model);
  double measure(const StepInputs& in);
  int64_t layer() const { return layer_; }

 private:
  SftDataset set_;
  torch::Tensor unit_;  // (C) float32 on the model's device
  int64_t layer_ = 0;
};

// Mean cross-entropy over the held-out split's trained tokens (-1 without a split), every process
// taking every world-th batch.
double heldout_loss(const StepInputs& in);

}  // namespace emlab::train_detail
