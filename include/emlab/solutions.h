// Comparing trained solutions of one narrow task (Soligo, Turner et al., "narrow vs general"; method
// in ../shared/DESIGN.md §4): two or more steering vectors, or two or more LoRA adapters, trained on
// the same narrow dataset (typically plain SFT = the general solution, SFT + KL on other data = the
// narrow one), each rescaled to one common norm, then measured on
//   loss        mean token cross-entropy on the narrow data (give held-out rows) at scale 1;
//   efficiency  that loss as the solution is scaled by s (a curve per solution);
//   stability   x' = sqrt(1 - eps^2) x + eps y, y Gaussian, orthogonalised to x, |y| = |x|; the
//               relative loss increase (L(x') - L(x)) / (L_base - L(x)) over seeds, per eps;
//   influence   KL(base || base + s x) per token on generic text (pretraining documents), per s;
//   direction   the mean shift of the residual stream at a direction's layer over the narrow data's
//               answer tokens (with minus without the solution), its cosine with the direction and
//               its projection onto the direction's unit vector.
//
// x, the solution as a vector: a steering vector's scale * vector; a LoRA set's scale * B matrices,
// all modules in name order, flattened (A is kept; the weight change is linear in B). Its norm is
// |x| for a steering vector and the Frobenius norm of the whole weight change, sqrt(sum over
// modules |scale B A|^2), for LoRA; rescaling multiplies x.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "emlab/adapter.h"
#include "emlab/direction.h"
#include "emlab/lora.h"
#include "emlab/sft_data.h"

namespace emlab {

class CausalLM;
class ChatModel;

struct Solution {
  std::string name;                     // shown in tables (the folder's name)
  std::string dir;                      // where it was loaded from
  bool lora = false;                    // LoRA adapters (else a steering vector)
  SteeringVector steer;                 // the steering vector (lora = false)
  std::shared_ptr<LoraSet> adapters;    // the LoRA adapters (lora = true), on the model's device
};

// Reads a folder `emlab train` wrote (steering_vector.json or adapter_config.json) for `model`.
Solution solution_load(const std::string& dir, const CausalLM& model);
// x as one float32 vector on the CPU, and its inverse (InputError on a size mismatch).
torch::Tensor solution_vector(const Solution& solution);
void solution_set_vector(Solution& solution, const torch::Tensor& x);
// The norm defined above.
double solution_norm(const Solution& solution);
// sqrt(1 - eps^2) x + eps y with y ~ N(0, I) from `seed`, orthogonalised to x and scaled to |x|.
torch::Tensor solution_perturb(const torch::Tensor& x, double eps, uint64_t seed);

// Mean per-target-token cross-entropy of `data` with the solution at `multiplier` (0 = the model
// alone); nullptr solution = the model alone.
double solution_loss(CausalLM& model, const Solution* solution, double multiplier, const SftDataset& data,
                     int64_t batch_size);
// Mean per-target-token KL(model alone || model with the solution at `multiplier`) on `data`.
double solution_kl(CausalLM& model, const Solution& solution, double multiplier, const SftDataset& data,
                   int64_t batch_size);

struct SolutionsCompareOptions {
  double norm = 0.0;                    // the common norm (0 = the mean of the solutions' norms)
  std::vector<double> scales = {0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2};  // efficiency and influence
  std::vector<double> epsilons = {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0};     // stability
  int64_t perturbation_seeds = 10;      // perturbations per epsilon
  uint64_t seed = 0;                    // of the perturbations
  int64_t batch_size = 8;               // examples per forward pass
  int64_t direction_layer = -1;         // the direction's layer (-1 = its best_layer, else the middle)
};

struct SolutionStability {
  double eps = 0;                       // perturbation size
  double mean = 0, sd = 0;              // relative loss increase over the seeds
};

struct SolutionResult {
  std::string name;
  std::string kind;                     // "steering vector" or "lora"
  double original_norm = 0;             // before rescaling
  double norm = 0;                      // the common norm it was rescaled to
  double loss = 0;                      // at scale 1
  double loss_base = 0;                 // the model alone (same for every solution)
  std::vector<std::pair<double, double>> efficiency;  // (s, loss)
  std::vector<SolutionStability> stability;           // per eps
  std::vector<std::pair<double, double>> influence;   // (s, KL per token); empty without text
  double shift_cosine = NAN;            // cosine of the mean residual shift with the direction
  double shift_projection = NAN;        // the shift's projection onto the unit direction
  double shift_norm = NAN;              // |shift|
};

// The comparison of `solutions` (all of one kind) on the narrow data (and generic text, when
// given rows; and a direction, when given). Solutions are rescaled in place.
std::vector<SolutionResult> solutions_compare(CausalLM& model, std::vector<Solution>& solutions,
                                              const SftDataset& narrow, const SftDataset& text,
                                              const Direction* direction, const SolutionsCompareOptions& options);

// The rows a comparison runs on, read with `chat`'s template and tokenizer (cut to its context):
// with holdout > 0 the held-out split `train --holdout HOLDOUT --seed SPLIT_SEED` made (sft_split
// over the same rows); then at most max_examples of them (0 = all).
SftDataset solutions_rows(const ChatModel& chat, const std::string& path, double holdout, uint64_t split_seed,
                          int64_t max_examples);

// Writes DIR/efficiency.csv, stability.csv, influence.csv (when measured) and, last (it marks the
// comparison done), summary.csv.
void solutions_write(const std::string& dir, const std::vector<SolutionResult>& results);

// CSV tables of the results: summary (one row per solution), efficiency, stability, influence.
std::string solutions_summary_csv(const std::vector<SolutionResult>& results);
std::string solutions_curves_csv(const std::vector<SolutionResult>& results, const std::string& which);

}  // namespace emlab
