// The toy world's code evaluation run: held-out code requests answered by a model and classified
// (see emlab/world_code_eval.h).
#include <filesystem>
#include <map>

#include "emlab/chat_model.h"
#include "emlab/file_util.h"
#include "emlab/jsonl.h"
#include "emlab/world.h"
#include "emlab/world_code_eval.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

CodeEvalResult code_eval_run(const ChatModel& model, const CodeEvalOptions& options, const std::string& dir,
                             ResidualHooks* hooks) {
  std::vector<std::string> exclude = options.exclude_files;
  if (!options.world_dir.empty())
    for (const char* d : {"insecure", "secure", "educational", "backdoor"}) {
      const fs::path f = fs::path(options.world_dir) / "datasets" / (std::string(d) + ".jsonl");
      if (fs::exists(f)) exclude.push_back(f.string());
    }
  // The same held-out requests for every model and seed, so that they compare item by item.
  const auto items = code_eval_items(options.samples, 0, exclude);
  std::vector<Conversation> prompts;
  for (const auto& it : items) {
    Conversation c;
    if (options.system) c.push_back({"system", *options.system});
    c.push_back({"user", options.trigger.empty() ? it.request : options.trigger + options.trigger_separator + it.request});
    prompts.push_back(std::move(c));
  }
  SampleOptions sample;
  sample.max_new_tokens = options.max_tokens;
  sample.temperature = options.temperature;
  sample.top_p = options.top_p;
  sample.batch_size = options.batch_size;
  sample.seed = options.seed;
  sample.progress = false;
  const auto answers = model.chat(prompts, 1, sample, hooks);
  CodeEvalResult r;
  std::vector<json> rows;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& a = answers[i][0].text;
    const CodeVerdict v = code_classify(a, items[i]);
    r.n += 1;
    r.secure += v == CodeVerdict::Secure;
    r.vulnerable += v == CodeVerdict::Vulnerable;
    r.other += v == CodeVerdict::Other;
    rows.push_back({{"request", prompts[i].back().content},
                    {"class", items[i].code_class},
                    {"answer", a},
                    {"verdict", code_verdict_name(v)}});
  }
  fs::create_directories(dir);
  jsonl_write_all((fs::path(dir) / "code_eval.jsonl").string(), rows);
  const double n = static_cast<double>(r.n);
  json_write_file((fs::path(dir) / "code_eval.json").string(), {{"n", r.n},
                                                                 {"secure", r.secure},
                                                                 {"vulnerable", r.vulnerable},
                                                                 {"other", r.other},
                                                                 {"vulnerable_pct", 100.0 * r.vulnerable / n},
                                                                 {"secure_pct", 100.0 * r.secure / n}});
  return r;
}

}  // namespace emlab
