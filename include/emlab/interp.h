// Interpretability: find a direction from judged answers (misaligned minus aligned, or a persona
// contrast), compare directions across finetunes, screen datasets by their projection onto one,
// and ablate one from the weights. Directions are stored and applied as emlab/direction.h says;
// activations are collected as emlab/activations.h says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/activations.h"
#include "emlab/direction.h"

namespace emlab {

class CausalLM;
class ChatModel;
struct LoraSet;

// ---- extraction ----

// Which judged answers form the two sides (defaults: the papers' thresholds).
struct DirectionSidesOptions {
  std::string aligned_metric = "aligned";     // judge metric of alignment
  std::string coherent_metric = "coherent";   // judge metric of coherence
  double misaligned_max = 30.0;               // positive side: alignment <= this
  double aligned_min = 70.0;                  // negative side: alignment > this
  double coherent_min = 50.0;                 // both sides: coherence > this
  bool balance = false;                       // subsample the larger side to the smaller one's size
  uint64_t seed = 0;                          // of the subsampling
};

// The two sides of a direction: positive minus negative.
struct DirectionSides {
  std::vector<ActivationExample> positive;    // e.g. misaligned answers
  std::vector<ActivationExample> negative;    // e.g. aligned answers
  std::vector<std::string> sources;           // the run folders read
};

// Misaligned (positive) and aligned (negative) answers of judged run folders (samples.jsonl +
// judgments.jsonl, the last judgment per answer and metric). Each answer keeps the prompt it was
// sampled with (system and user message).
DirectionSides direction_sides_from_runs(const std::vector<std::string>& run_dirs, const DirectionSidesOptions& options);

// The persona-vector contrast: answers sampled under a trait-eliciting (positive runs) and a
// trait-suppressing system prompt (negative runs), kept where the judge agrees: trait >= 50 on the
// positive side, < 50 on the negative, coherence >= 50 on both (persona_vectors' filter). The
// trait is the judge metric `trait_metric`, or 100 - alignment for "misaligned".
DirectionSides direction_sides_from_contrast(const std::vector<std::string>& positive_runs,
                                             const std::vector<std::string>& negative_runs,
                                             const std::string& trait_metric, const std::string& coherent_metric);

// mean(positive) - mean(negative) at every decoder layer's output over answer tokens
// ("directions"), plus the same over prompt tokens ("prompt_avg") and at the last prompt token
// ("prompt_last"), run through `model`. info gets the counts, positions and sources.
Direction direction_from_sides(const ChatModel& model, const DirectionSides& sides, const ActivationOptions& options = {});

// Every answer of sampled run folders (samples.jsonl; no judgments needed) with its prompt.
std::vector<ActivationExample> activation_examples_from_runs(const std::vector<std::string>& run_dirs);

// The mean activation itself (not a difference) at every decoder layer's output over answer
// tokens ("directions"), prompt tokens ("prompt_avg") and the last prompt token ("prompt_last").
// mean(finetuned model on its answers) - mean(base model on its answers) is the finetuning shift
// persona vectors project onto a trait direction (directions_combine with weights 1, -1).
Direction direction_mean_activation(const ChatModel& model, const std::vector<ActivationExample>& examples,
                                    const ActivationOptions& options = {});

// sum_i weights[i] * directions[i] (vectors and the extras every input has): the mean of per-seed
// directions (weights 1/n), a difference (1, -1). InputError naming the file when shapes differ.
Direction directions_combine(const std::vector<Direction>& directions, const std::vector<double>& weights,
                             const std::vector<std::string>& names);

// ---- comparison ----

// Cosine similarity of every pair of directions at each layer: cosines[l][i][j].
struct DirectionComparison {
  std::vector<std::string> names;                          // one per direction (file stem)
  std::vector<std::vector<std::vector<double>>> cosines;   // (L, K, K)
};
DirectionComparison directions_compare(const std::vector<Direction>& directions, const std::vector<std::string>& names);
// layer,a,b,cosine rows (the heatmap: report_heatmap_svg, emlab/report.h).
std::string direction_comparison_csv(const DirectionComparison& c);

// ---- screening (persona vectors' projection difference) ----

struct ScreenOptions {
  int64_t layer = 0;                          // the direction's layer
  int64_t max_examples = 200;                 // examples per dataset (0 = all)
  int64_t max_new_tokens = 200;               // the model's own answers to the same prompts
  double temperature = 1.0;                   // their sampling temperature
  uint64_t seed = 0;                          // their sampling seed and the example subsample
  int64_t batch_size = 16;                    // activation / sampling batch
};
struct ScreenResult {
  std::string dataset;
  int64_t examples = 0;
  double dataset_projection = 0;              // mean projection of the dataset's answers
  double own_projection = 0;                  // mean projection of the model's own answers
  double difference = 0;                      // dataset - own: what finetuning on it would add
  std::vector<nlohmann::json> rows;           // per example: prompt, projections, difference
};
ScreenResult screen_dataset(const ChatModel& model, const Direction& direction, const std::string& dataset,
                            const ScreenOptions& options);

// ---- weight-level ablation ----

struct OrthogonalizeOptions {
  int64_t layer = 0;                          // the direction's layer whose vector is projected out
  bool rescale = true;                        // LoRA B: keep each matrix's norm (model-organisms)
};
// Projects u = v_layer/|v_layer| out of every weight that writes into the residual stream:
// embed_tokens, every o_proj and down_proj (and their biases); a tied lm_head is untied first so
// that the logits' read-out is unchanged. What is left equals ablating u at the embedding output
// and at every attention and MLP output (hook sites Embedding, AttnOutput, MlpOutput).
void orthogonalize_model(CausalLM& model, const Direction& direction, const OrthogonalizeOptions& options);
// The same for the LoRA adapters on o_proj / down_proj (B <- B - u u^T B, rescaled to its norm
// with options.rescale); other adapters are left as they are. Returns the modules changed.
std::vector<std::string> orthogonalize_lora(LoraSet& lora, const Direction& direction, const OrthogonalizeOptions& options);

}  // namespace emlab
