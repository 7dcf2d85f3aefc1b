// LoRA adapters in the PEFT format (DESIGN.md §7): creation with PEFT's initialisation, save and
// load of `adapter_config.json` + `adapter_model.safetensors`, and merging into the base weights.
//
// Tensor names: base_model.model.<module>.lora_A.weight (r, in) and ...lora_B.weight (out, r), with
// <module> the Hugging Face module name ("model.layers.3.mlp.down_proj"). Loading also accepts the
// variants PEFT and other tools emit: without the "base_model.model." prefix, with the adapter name
// left in (".lora_A.default.weight") and without ".weight".
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/lora.h"

namespace emlab {

class CausalLM;

struct LoraOptions {
  int64_t rank = 8;           // r: inner dimension of every adapter
  double alpha = 16.0;        // lora_alpha: scale = alpha / r (alpha / sqrt(r) with rslora)
  bool rslora = false;        // rank-stabilised scale alpha / sqrt(r)
  double dropout = 0.0;       // dropout on the adapter input while training
  // Target modules: short names q,k,v,o,gate,up,down or PEFT's q_proj ... down_proj ("all" = all seven).
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  std::vector<int64_t> layers;  // layers_to_transform: decoder layers that get adapters (empty = all)
};

// alpha / r, or alpha / sqrt(r) with rsLoRA.
double lora_scale(double alpha, int64_t rank, bool rslora);

// "q" -> "q_proj", "down" -> "down_proj", "all" -> all seven; throws InputError for anything else.
std::vector<std::string> lora_normalize_targets(const std::vector<std::string>& targets);

// Fresh adapters on the chosen modules and layers, initialised as PEFT does: A Kaiming-uniform with
// a = sqrt(5) (as torch.nn.Linear, i.e. U(-1/sqrt(in), 1/sqrt(in))), B zero, so the model is
// unchanged at step 0. Drawn on the CPU from `seed` (same on every device), float32 on the model's
// device. Throws InputError for a layer out of range.
std::shared_ptr<LoraSet> lora_create(const CausalLM& model, const LoraOptions& options, uint64_t seed);

// adapter_config.json, the fields PEFT and vLLM read.
struct PeftConfig {
  int64_t r = 8;                                  // default rank (rank_pattern overrides per module)
  double lora_alpha = 16.0;                       // default alpha (alpha_pattern overrides per module)
  double lora_dropout = 0.0;                      // dropout used while training
  std::vector<std::string> target_modules;        // module names (suffix match), e.g. "q_proj"
  std::string target_modules_regex;               // PEFT also allows one regex (full match) instead
  bool use_rslora = false;                        // scale alpha / sqrt(r)
  std::optional<std::vector<int64_t>> layers_to_transform;  // null = every layer
  std::string base_model_name_or_path;            // informational
  // Module-name pattern -> r / alpha, in file order: PEFT applies the first pattern that matches
  // (re.match("(.*\\.)?" + pattern + "$", module)).
  std::vector<std::pair<std::string, int64_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  nlohmann::json raw;                             // the whole file as read (fields not modelled here)

  // Validates what emlab can apply (LORA, no DoRA, no fan_in_fan_out, no modules_to_save, bias
  // "none", none of PEFT's LoRA variants that change the forward pass); `source` names the file in
  // errors. The ordered form keeps the patterns' file order (the plain json sorts keys).
  static PeftConfig from_json(const nlohmann::ordered_json& j, const std::string& source);
  static PeftConfig from_json(const nlohmann::json& j, const std::string& source);
  // adapter_config.json content, patterns in their order.
  nlohmann::ordered_json to_json() const;
  static PeftConfig from_options(const LoraOptions& options, const std::string& base_model);
};

// Writes adapter_config.json and adapter_model.safetensors (float32) into `dir` (created).
void peft_save(const std::string& dir, const LoraSet& lora, const PeftConfig& config);

struct PeftAdapter {
  std::shared_ptr<LoraSet> lora;        // adapters in the model's dtype and device
  PeftConfig config;
  std::vector<std::string> warnings;    // tensors skipped (layers_to_transform / target_modules)
};

// Reads a PEFT LoRA adapter made by emlab or PEFT and checks it against the model: every module
// exists, shapes are A (r, in), B (out, r), r agrees with the config. Errors name the file and tensor.
PeftAdapter peft_load(const std::string& dir, const CausalLM& model);

// W <- W + multiplier · scale · B A for every adapter (computed in float32). After merging, run
// the model without the adapters.
void lora_merge(CausalLM& model, const LoraSet& lora);

}  // namespace emlab
