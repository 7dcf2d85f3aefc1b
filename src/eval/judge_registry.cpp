// Judge factory registry: spec prefix -> factory. The HTTP judges are built in; other kinds
// ("rubric:", "local:") register themselves from code the program runs.
#include <map>
#include <mutex>

#include "emlab/error.h"
#include "emlab/http_judge.h"
#include "emlab/judge.h"

namespace emlab {

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, JudgeFactory> factories;
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    JudgeFactory http = [](const std::string& spec, const JudgeOptions& options) -> std::unique_ptr<Judge> {
      return std::make_unique<HttpJudge>(spec, options);
    };
    reg->factories["openai:"] = http;
    reg->factories["http://"] = http;
    reg->factories["https://"] = http;
    return reg;
  }();
  return *r;
}

}  // namespace

bool judge_register(const std::string& prefix, JudgeFactory factory) {
  if (prefix.empty() || !factory) throw Error("judge_register: empty prefix or factory");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.factories[prefix] = std::move(factory);
  return true;
}

std::vector<std::string> judge_prefixes() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (const auto& [prefix, f] : r.factories) out.push_back(prefix);
  return out;
}

std::unique_ptr<Judge> judge_from_spec(const std::string& spec, const JudgeOptions& options) {
  JudgeFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    size_t best = 0;
    for (const auto& [prefix, f] : r.factories) {
      if (spec.rfind(prefix, 0) == 0 && prefix.size() > best) {
        best = prefix.size();
        factory = f;
      }
    }
  }
  if (!factory) {
    std::string known;
    for (const auto& p : judge_prefixes()) known += (known.empty() ? "" : ", ") + p + "...";
    throw InputError("judge spec '" + spec + "': unknown kind (known: " + known + ")");
  }
  auto judge = factory(spec, options);
  if (!judge) throw Error("judge spec '" + spec + "': the factory returned no judge");
  return judge;
}

}  // namespace emlab
