// Directions from judged answers: the sides (misaligned vs aligned, or a persona contrast) and the
// difference of their mean activations (see emlab/interp.h).
#include <algorithm>

#include "emlab/chat_model.h"
#include "emlab/error.h"
#include "emlab/eval_run.h"
#include "emlab/hash.h"
#include "emlab/interp.h"
#include "emlab/metrics.h"
#include "interp/subsample.h"

namespace emlab {

namespace {

// One judged answer of a run: the prompt it was sampled with, the answer and its scores.
struct Judged {
  ActivationExample example;
  std::map<std::string, std::optional<double>> scores;
};

std::vector<Judged> read_judged(const std::string& run_dir) {
  auto examples = activation_examples_from_runs({run_dir});
  const auto records = run_answer_records(run_dir, MetricsOptions{});  // one per sample, same order
  if (records.size() != examples.size())
    throw Error(run_dir + ": " + std::to_string(examples.size()) + " samples but " + std::to_string(records.size()) +
                " answer records");
  std::vector<Judged> out;
  for (size_t i = 0; i < examples.size(); ++i) out.push_back({std::move(examples[i]), records[i].scores});
  return out;
}

std::optional<double> score_of(const Judged& j, const std::string& metric) {
  auto it = j.scores.find(metric);
  return it == j.scores.end() ? std::nullopt : it->second;
}

}  // namespace

DirectionSides direction_sides_from_runs(const std::vector<std::string>& run_dirs, const DirectionSidesOptions& o) {
  DirectionSides s;
  for (const auto& run : run_dirs) {
    s.sources.push_back(run);
    for (auto& j : read_judged(run)) {
      const auto al = score_of(j, o.aligned_metric), co = score_of(j, o.coherent_metric);
      if (!al || !co || !(*co > o.coherent_min)) continue;
      if (*al <= o.misaligned_max) s.positive.push_back(std::move(j.example));
      else if (*al > o.aligned_min) s.negative.push_back(std::move(j.example));
    }
  }
  if (o.balance) {
    const size_t k = std::min(s.positive.size(), s.negative.size());
    s.positive = interp_detail::subsample(std::move(s.positive), k, o.seed);
    s.negative = interp_detail::subsample(std::move(s.negative), k, splitmix64(o.seed));
  }
  return s;
}

DirectionSides direction_sides_from_contrast(const std::vector<std::string>& positive_runs,
                                             const std::vector<std::string>& negative_runs,
                                             const std::string& trait_metric, const std::string& coherent_metric) {
  auto trait = [&](const Judged& j) -> std::optional<double> {
    if (trait_metric == "misaligned") {
      auto al = score_of(j, "aligned");
      return al ? std::optional<double>(100.0 - *al) : std::nullopt;
    }
    return score_of(j, trait_metric);
  };
  DirectionSides s;
  for (int side = 0; side < 2; ++side)
    for (const auto& run : side == 0 ? positive_runs : negative_runs) {
      s.sources.push_back(run);
      for (auto& j : read_judged(run)) {
        const auto t = trait(j), co = score_of(j, coherent_metric);
        if (!t || !co || *co < 50.0) continue;
        if (side == 0 && *t >= 50.0) s.positive.push_back(std::move(j.example));
        if (side == 1 && *t < 50.0) s.negative.push_back(std::move(j.example));
      }
    }
  return s;
}

Direction direction_from_sides(const ChatModel& model, const DirectionSides& sides, const ActivationOptions& options) {
  if (sides.positive.empty() || sides.negative.empty())
    throw InputError("a direction needs answers on both sides: " + std::to_string(sides.positive.size()) +
                     " positive (e.g. misaligned) and " + std::to_string(sides.negative.size()) +
                     " negative (e.g. aligned); sample more or relax the thresholds");
  ActivationOptions o = options;
  o.layers.clear();  // every layer: the file holds one vector per layer
  o.project.clear();
  const ActivationSums pos = activations_collect(model, sides.positive, o);
  const ActivationSums neg = activations_collect(model, sides.negative, o);
  Direction d;
  d.vectors = pos.answer_mean() - neg.answer_mean();
  d.extra["prompt_avg"] = pos.prompt_mean() - neg.prompt_mean();
  d.extra["prompt_last"] = pos.last_prompt_mean() - neg.last_prompt_mean();
  d.info = {{"positive_examples", sides.positive.size()},
            {"negative_examples", sides.negative.size()},
            {"positive_answer_tokens", pos.answer_tokens},
            {"negative_answer_tokens", neg.answer_tokens},
            {"positions", "directions: mean over answer tokens; prompt_avg: over prompt tokens; prompt_last: the "
                          "last prompt token"},
            {"layers", "decoder layer outputs from 0"},
            {"sources", sides.sources},
            {"truncated_examples", pos.truncated + neg.truncated}};
  return d;
}

std::vector<ActivationExample> activation_examples_from_runs(const std::vector<std::string>& run_dirs) {
  std::vector<ActivationExample> out;
  for (const auto& run : run_dirs)
    for (const auto& r : run_samples_read(run)) {
      ActivationExample e;
      if (r.system) e.prompt.push_back({"system", *r.system});
      e.prompt.push_back({"user", r.user});
      e.answer = r.answer;
      out.push_back(std::move(e));
    }
  return out;
}

Direction direction_mean_activation(const ChatModel& model, const std::vector<ActivationExample>& examples,
                                    const ActivationOptions& options) {
  if (examples.empty()) throw InputError("a mean activation needs at least one answer");
  ActivationOptions o = options;
  o.layers.clear();
  o.project.clear();
  const ActivationSums sums = activations_collect(model, examples, o);
  Direction d;
  d.vectors = sums.answer_mean();
  d.extra["prompt_avg"] = sums.prompt_mean();
  d.extra["prompt_last"] = sums.last_prompt_mean();
  d.info = {{"mode", "mean_activation"},
            {"examples", examples.size()},
            {"answer_tokens", sums.answer_tokens},
            {"positions", "directions: mean over answer tokens; prompt_avg: over prompt tokens; prompt_last: the "
                          "last prompt token"},
            {"layers", "decoder layer outputs from 0"},
            {"truncated_examples", sums.truncated}};
  return d;
}

}  // namespace emlab
