// Directions in the residual stream and how a running model applies them: the direction file, and
// the --steer / --ablate specs that turn one into hooks (generate, chat, sample, eval, experiments,
// training). Extraction, comparison and screening are in src/interp (emlab/interp.h).
//
// Layers are numbered as decoder-layer outputs from 0 (model-organisms' numbering): layer l is the
// residual stream after decoder layer l. persona_vectors numbers Hugging Face's hidden_states,
// whose index 0 is the embedding output, so its layer L is emlab's layer L-1 (direction_import
// converts).
//
// File (safetensors):
//   "directions"   (L, C) float32   row l: the vector at decoder layer l's output
//   "prompt_avg", "prompt_last" (L, C) float32, optional: the same difference over prompt tokens
//                  and at the last prompt token (persona_vectors saves all three)
//   __metadata__   {"format": "emlab-direction/1", "info": JSON}: the model, the sources, the
//                  counts per side, the positions averaged, the per-layer norms, ...
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/hooks.h"

namespace emlab {

struct Direction {
  torch::Tensor vectors;                        // (L, C) float32: row l at decoder layer l's output
  std::map<std::string, torch::Tensor> extra;   // other (L, C) vectors ("prompt_avg", "prompt_last")
  nlohmann::json info = nlohmann::json::object();  // metadata (counts, sources, norms, model, ...)

  int64_t layers() const { return vectors.size(0); }
  int64_t hidden() const { return vectors.size(1); }
  // Row `layer` (C); InputError naming `source` when the layer is out of range.
  torch::Tensor at(int64_t layer, const std::string& source = "direction") const;
};

// Writes the file (the per-layer norms are added to info as "norms").
void direction_save(const std::string& path, const Direction& direction);
// Reads a file written by direction_save; InputError naming the file and what is wrong.
Direction direction_load(const std::string& path);

// How the rows of an imported (L', C) tensor are numbered.
enum class LayerNumbering {
  Decoder,       // row l = decoder layer l's output (emlab, model-organisms)
  HiddenStates,  // row 0 = the embedding output, row l = decoder layer l-1 (persona_vectors, HF hidden_states)
};
LayerNumbering layer_numbering_from_name(const std::string& name);  // "decoder", "hidden_states"
// A direction from a safetensors file holding one (L', C) tensor (`tensor` names it; "" = the only
// one), renumbered to decoder layers.
Direction direction_import(const std::string& path, const std::string& tensor, LayerNumbering numbering);

// One --steer or --ablate spec:
//   FILE[:layer=L][:scale=S][:positions=all|prompt|response]      steer: h += S * v_L at layer L
//   FILE[:layer=L|all][:from=K]                                    ablate: h -= (h.u)u at layer L
//                                                                  (all: every layer), u = v_K/|v_K|
//                                                                  (no from: each layer its own v_l)
//   random:seed=N:like=FILE[...]                                   the random control: a Gaussian
//       vector with the norm of FILE's vector at that layer (steer), or a random unit direction
//       at each layer (ablate)
struct SteerSpec {
  bool ablate = false;                          // ablation (else steering)
  std::string file;                             // direction file (the norms' source for random)
  std::optional<int64_t> layer;                 // steer: the layer (none = the file's best_layer);
                                                // ablate: the layer (none = every layer)
  double scale = 1.0;                           // steer: the multiple of v_L added
  HookPositions positions = HookPositions::All; // steer: where it is added
  std::optional<int64_t> from;                  // ablate: project out v_from at every chosen layer
  std::optional<uint64_t> random_seed;          // the random control instead of the file's vectors
};

// Parses a spec; `ablate` says which flag it came from. InputError naming the spec and the field.
SteerSpec steer_spec_parse(const std::string& text, bool ablate);
// The canonical text of a spec (what run folders record).
std::string steer_spec_string(const SteerSpec& spec);

// Hooks that apply specs to a model with `layers` decoder layers of width `hidden` (directions are
// loaded once, checked against the model's shape, vectors kept on `device`).
std::shared_ptr<ResidualHooks> steering_hooks(const std::vector<SteerSpec>& specs, int64_t layers, int64_t hidden,
                                              const torch::Device& device);
// The same, added to existing hooks.
void steering_hooks_add(const std::vector<SteerSpec>& specs, int64_t layers, int64_t hidden, const torch::Device& device,
                        ResidualHooks* hooks);

}  // namespace emlab
