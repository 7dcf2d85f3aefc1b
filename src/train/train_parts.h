// Pieces of the trainer (private to src/train): trainable parameters with float32 masters, AdamW,
// batches and the loss terms, and what a method trains and saves.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "emlab/adapter.h"
#include "emlab/batch.h"
#include "emlab/hooks.h"
#include "emlab/lora.h"
#include "emlab/model.h"
#include "emlab/sft_data.h"
#include "emlab/train.h"

namespace emlab::train_detail {

struct TrainParam {
  std::string name;      // LoRA "<module>.lora_A" / "<module>.lora_B", a model tensor name, or "steering_vector"
  torch::Tensor param;   // what the forward uses (model dtype, requires_grad)
  torch::Tensor master;  // float32 values the optimizer updates (the same tensor as param when float32)
  bool decay = true;     // weight decay applies
};

// torch.optim.AdamW's update (not foreach, no amsgrad) on the float32 masters; params are refreshed
// from the masters after each step.
class AdamW {
 public:
  AdamW(double beta1, double beta2, double eps, double weight_decay)
      : beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay) {}
  // grads[i]: float32, same shape as params[i].master.
  void step(std::vector<TrainParam>& params, const std::vector<torch::Tensor>& grads, double lr);
  int64_t steps() const { return steps_; }
  // exp_avg.<name>, exp_avg_sq.<name>; the step count travels in trainer_state.json.
  std::map<std::string, torch::Tensor> state_tensors() const;
  void load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps, const std::string& source);

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  int64_t steps_ = 0;
  std::map<std::string, torch::Tensor> exp_avg_, exp_avg_sq_;
};

// The trainable state of one method: LoRA adapters, all model weights, or a steering vector.
class Trainable {
 public:
  Trainable(CausalLM& model, const TrainOptions& options);
  std::vector<TrainParam>& params() { return params_; }
  // Forward arguments with the trainable part on and the KL reference. train: dropout active and
  // the train-time steering/ablation applied (they are not part of what is saved or evaluated).
  ForwardArgs args(bool train);
  ForwardArgs reference_args() const;
  // Whether args(true)'s forward draws no random numbers (no LoRA dropout) and so may run side by
  // side with another: its hooks (a steering vector, train-time steering or ablation) only read.
  bool forward_is_pure() const;
  // Writes what the method produces (a loadable adapter / steering vector / model dir) into dir.
  void save(const std::string& dir, const TrainOptions& options) const;
  // Restores the trainable values (masters and params) from a directory written by save() plus,
  // for non-float32 models, the masters in `masters` (name -> float32).
  void load(const std::string& dir, const std::map<std::string, torch::Tensor>& masters);
  // Float32 masters that differ from the params (saved in the checkpoint for exact resume).
  std::map<std::string, torch::Tensor> separate_masters() const;
  void sync_params_from_masters();

 private:
  CausalLM& model_;
  TrainMethod method_;
  std::vector<TrainParam> params_;
  std::shared_ptr<LoraSet> lora_;
  ResidualHooks hooks_;        // the method's own (a trainable steering vector)
  ResidualHooks train_hooks_;  // those plus the train-time steering/ablation (options.steer, ablate)
  bool has_train_hooks_ = false;
  SteeringVector steer_;
  PeftConfig peft_config_;
};

}  // namespace emlab::train_detail
