// What `--adapter DIR` loads: a PEFT LoRA adapter (emlab's or PEFT's, see peft.h) or a trained
// steering vector, and the steering-vector file format.
//
// Steering vector folder (written by `emlab train --method steer`):
//   steering_vector.json         {"type": "emlab_steering_vector", "layer": L, "site": "layer_output" |
//                                 "mlp_output", "scale": alpha, "hidden_size": C,
//                                 "base_model_name_or_path": ...}
//   steering_vector.safetensors  one float32 tensor "vector" of shape (C); the model adds scale * vector
//                                at every position of the layer's output (or of mlp.down_proj's output).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "emlab/hooks.h"

namespace emlab {

class CausalLM;

struct SteeringVector {
  torch::Tensor vector;                   // (C) float32
  int64_t layer = 0;                      // decoder layer
  HookSite site = HookSite::LayerOutput;  // where it is added
  double scale = 1.0;                     // added as scale * vector
};

std::string hook_site_name(HookSite site);       // "layer_output", "mlp_output"
HookSite hook_site_from_name(const std::string& name, const std::string& context);

void steering_save(const std::string& dir, const SteeringVector& sv, const std::string& base_model = "");
// Throws InputError naming the file when it is malformed (or the width disagrees with `hidden_size`
// when that is > 0).
SteeringVector steering_load(const std::string& dir, int64_t hidden_size = 0);
bool steering_exists(const std::string& dir);

// Loads the adapter in `dir` into the model: LoRA via set_lora, a steering vector as a bias of
// layer L's mlp.down_proj (adding scale·v there equals adding it to the layer output, so both sites
// become the same bias and every caller, hooks or not, sees the vector). Returns warnings to show.
std::vector<std::string> adapter_apply(CausalLM& model, const std::string& dir);

}  // namespace emlab
