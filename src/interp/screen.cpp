// Dataset screening by projection difference (persona vectors): how much further along a
// direction a dataset's answers lie than the model's own answers to the same prompts.
#include <cmath>

#include "emlab/chat_model.h"
#include "emlab/error.h"
#include "emlab/hash.h"
#include "emlab/file_util.h"
#include "emlab/interp.h"
#include "interp/subsample.h"

namespace emlab {

ScreenResult screen_dataset(const ChatModel& model, const Direction& direction, const std::string& dataset,
                            const ScreenOptions& o) {
  std::vector<ActivationExample> examples = activation_examples_from_chat(dataset);
  if (examples.empty()) throw InputError(dataset + ": no conversation with an assistant answer");
  if (o.max_examples > 0)  // a seeded subsample, in file order
    examples = interp_detail::subsample(std::move(examples), static_cast<size_t>(o.max_examples), o.seed ^ fnv1a64(dataset));
  // The model's own answers to the same prompts.
  SampleOptions so;
  so.max_new_tokens = o.max_new_tokens;
  so.temperature = o.temperature;
  so.seed = o.seed;
  so.batch_size = o.batch_size;
  so.progress = false;
  std::vector<Conversation> prompts;
  for (const auto& e : examples) prompts.push_back(e.prompt);
  const auto answers = model.chat(prompts, 1, so);
  std::vector<ActivationExample> own = examples;
  for (size_t i = 0; i < own.size(); ++i) own[i].answer = answers[i][0].text;

  ActivationOptions ao;
  ao.layers = {o.layer};
  ao.project[o.layer] = direction.at(o.layer, "screen");
  ao.batch_size = o.batch_size;
  ao.progress = false;
  const ActivationSums a = activations_collect(model, examples, ao);
  const ActivationSums b = activations_collect(model, own, ao);
  ScreenResult r;
  r.dataset = dataset;
  double sum_a = 0, sum_b = 0;
  int64_t n_a = 0, n_b = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const double pa = a.projections[static_cast<int64_t>(i)][0].item<double>();
    const double pb = b.projections[static_cast<int64_t>(i)][0].item<double>();
    if (!std::isnan(pa)) sum_a += pa, ++n_a;
    if (!std::isnan(pb)) sum_b += pb, ++n_b;
    r.rows.push_back({{"dataset", dataset},
                      {"index", i},
                      {"prompt", examples[i].prompt.back().content},
                      {"dataset_projection", json_number(pa)},
                      {"own_projection", json_number(pb)},
                      {"difference", json_number(pa - pb)},
                      {"own_answer", own[i].answer}});
  }
  if (n_a == 0 || n_b == 0) throw InputError(dataset + ": no answer tokens to project (empty answers)");
  r.examples = static_cast<int64_t>(examples.size());
  r.dataset_projection = sum_a / n_a;
  r.own_projection = sum_b / n_b;
  r.difference = r.dataset_projection - r.own_projection;
  return r;
}

}  // namespace emlab
