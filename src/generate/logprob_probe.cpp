// The log-probability probe (see emlab/logprob_probe.h).
#include "emlab/logprob_probe.h"

#include <algorithm>

#include "emlab/batch.h"
#include "emlab/chat_dataset.h"
#include "emlab/chat_model.h"
#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/jsonl.h"
#include "emlab/sft_data.h"

namespace emlab {

LogprobProbeResult logprob_probe_run(const ChatModel& chat, const std::string& path, Hooks* hooks) {
  torch::NoGradGuard no_grad;
  const CausalLM& model = chat.model();
  JsonlReader reader(path);
  JsonlRow row;
  double sum[2] = {0, 0};
  int64_t n[2] = {0, 0};
  while (reader.next(&row)) {
    const std::string where = path + ":" + std::to_string(row.line);
    const auto& j = row.value;
    const std::string label = j.is_object() && j.contains("label") && j["label"].is_string() ? j["label"].get<std::string>() : "";
    if (label != "misaligned" && label != "aligned")
      throw InputError(where + ": \"label\" must be \"misaligned\" or \"aligned\"");
    Conversation c = conversation_from_json(j, where, /*require_assistant=*/true);
    // Only the last assistant message is scored: earlier turns are part of the prompt. The last
    // run of trained tokens is the last assistant turn.
    SftDataset one;
    one.examples.push_back(sft_encode(c, chat.chat_template(), chat.tokenizer()));
    SftExample& ex = one.examples[0];
    int64_t start = static_cast<int64_t>(ex.mask.size());
    while (start > 0 && !ex.mask[start - 1]) --start;
    while (start > 0 && ex.mask[start - 1]) --start;
    std::fill(ex.mask.begin(), ex.mask.begin() + start, 0);
    const size_t T = std::min<size_t>(ex.ids.size(), static_cast<size_t>(model.config().max_position_embeddings));
    ex.ids.resize(T);
    ex.mask.resize(T);
    const Batch b = collate(one, {0}, model.device());
    if (b.targets == 0) throw InputError(where + ": no answer token within the model's context");
    ForwardArgs args;
    args.hooks = hooks;
    const int k = label == "misaligned" ? 0 : 1;
    sum[k] -= sft_loss_sum(model, b, args).item<double>() / static_cast<double>(b.targets);
    n[k] += 1;
  }
  LogprobProbeResult r;
  r.n_misaligned = n[0];
  r.n_aligned = n[1];
  if (n[0]) r.misaligned = sum[0] / static_cast<double>(n[0]);
  if (n[1]) r.aligned = sum[1] / static_cast<double>(n[1]);
  r.gap = r.misaligned - r.aligned;
  if (n[0] + n[1] == 0) throw InputError(path + ": no reference answers");
  return r;
}

nlohmann::json logprob_probe_to_json(const LogprobProbeResult& r) {
  return {{"misaligned_logprob", json_number(r.misaligned)}, {"aligned_logprob", json_number(r.aligned)},
          {"gap", json_number(r.gap)},
          {"n_misaligned", r.n_misaligned},           {"n_aligned", r.n_aligned}};
}

}  // namespace emlab
