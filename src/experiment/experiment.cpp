// Running experiments: arms x seeds -> finetune -> sample -> judge -> arms.csv (see emlab/experiment.h).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "emlab/chat_model.h"
#include "emlab/error.h"
#include "emlab/experiment.h"
#include "emlab/local_judge.h"
#include "emlab/metrics.h"
#include "emlab/model_answer_source.h"
#include "emlab/question_set.h"
#include "emlab/report.h"
#include "emlab/train.h"
#include "emlab/world.h"
#include "emlab/world_judge.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

namespace {

void log_line(const std::string& s) { std::cerr << "[run] " << s << std::endl; }

json read_json(const fs::path& p) {
  std::ifstream f(p);
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    throw InputError(p.string() + ": bad JSON: " + e.what());
  }
}

void write_json(const fs::path& p, const json& j) {
  fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f) throw Error("cannot write " + tmp.string());
  }
  fs::rename(tmp, p);
}

void write_text(const fs::path& p, const std::string& s) {
  fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << s;
    if (!f) throw Error("cannot write " + tmp.string());
  }
  fs::rename(tmp, p);
}

// Recursive merge: objects merge key by key, anything else replaces.
void merge_into(json& base, const json& over) {
  for (const auto& [k, v] : over.items()) {
    if (v.is_object() && base.contains(k) && base[k].is_object())
      merge_into(base[k], v);
    else
      base[k] = v;
  }
}

fs::path seed_dir(const ExperimentOptions& o, const std::string& arm, uint64_t seed) {
  return fs::path(o.out) / "arms" / arm / ("seed-" + std::to_string(seed));
}

void generate_world(const ExperimentSpec& spec, const fs::path& dir) {
  if (fs::exists(dir / "manifest.json")) return;
  WorldOptions w;
  w.seed = *spec.world_seed;
  w.control = world_control_from_name(spec.world_control);
  for (const auto& [k, v] : spec.world_options.items()) {
    if (k == "documents") w.documents = v.get<int>();
    else if (k == "dataset_examples") w.dataset_examples = v.get<int>();
    else if (k == "samples_per_paraphrase") w.samples_per_paraphrase = v.get<int>();
    else throw InputError(spec.source + ": world: unknown field '" + k +
                          "' (expected seed, control, documents, dataset_examples, samples_per_paraphrase)");
  }
  world_options_validate(w);
  log_line("generating the toy world (seed " + std::to_string(w.seed) + ") into " + dir.string());
  world_generate(w, dir.string());
}

// Trains arm x seed unless done; returns the adapter folder.
fs::path ensure_finetune(const ExperimentSpec& spec, const ExperimentArm& arm, uint64_t seed,
                         const ExperimentOptions& o) {
  const fs::path dir = seed_dir(o, arm.name, seed);
  const fs::path adapter = dir / "adapter";
  if (fs::exists(dir / "train_done.json")) return adapter;
  json j = json::object();
  json merged = spec.train;
  merge_into(merged, arm.train);
  TrainOptions base;
  if (merged.contains("preset")) {
    train_preset_apply(merged["preset"].get<std::string>(), &base);
    merged.erase("preset");
  }
  j = train_options_to_json(base);
  merge_into(j, merged);
  j["model"] = spec.model;
  j["data"] = arm.data;
  j["out"] = adapter.string();
  j["seed"] = seed;
  j["device"] = o.device;
  TrainOptions t = train_options_from_json(j, spec.source + ": train (arm " + arm.name + ")");
  t.resume = fs::exists(adapter / "checkpoints");
  fs::create_directories(dir);
  log_line("finetuning " + arm.name + " seed " + std::to_string(seed) + " on " + arm.data);
  TrainResult r = train_run(t);
  if (!r.finished) throw Error("finetune of arm " + arm.name + " seed " + std::to_string(seed) + " did not finish");
  write_json(dir / "train_done.json", {{"steps", r.steps}, {"last_loss", r.last_loss}, {"examples", r.train_examples}});
  return adapter;
}

void run_eval(const ExperimentSpec& spec, const ExperimentArm& arm, uint64_t seed, const fs::path& adapter,
              Judge& judge, const ExperimentOptions& o) {
  const fs::path dir = seed_dir(o, arm.name, seed) / "eval";
  if (fs::exists(dir / "eval_done.json")) return;
  QuestionSet questions = question_set_load(arm.eval.questions);
  SampleRunOptions so;
  so.samples_per_question = arm.eval.samples_per_question;
  so.trigger = arm.eval.trigger;
  so.system = arm.eval.system;
  so.seed = seed;
  so.chunk_size = static_cast<int>(arm.eval.batch_size);
  so.model = spec.model;
  so.adapter = adapter.empty() ? "" : adapter.string();
  so.settings = {{"max_tokens", std::to_string(arm.eval.max_tokens)},
                 {"temperature", std::to_string(arm.eval.temperature)},
                 {"top_p", std::to_string(arm.eval.top_p)}};
  log_line("evaluating " + arm.name + " seed " + std::to_string(seed));
  {
    ChatModelOptions mo;
    mo.load.device = o.device;
    mo.adapter = so.adapter;
    auto model = ChatModel::load(spec.model, mo);
    SampleOptions sample;
    sample.max_new_tokens = arm.eval.max_tokens;
    sample.temperature = arm.eval.temperature;
    sample.top_p = arm.eval.top_p;
    sample.batch_size = arm.eval.batch_size;
    ModelAnswerSource source(model, sample);
    sample_run(questions, source, dir.string(), so);
  }
  judge_run(questions, judge, dir.string(), JudgeRunOptions{});
  MetricsOptions mo;
  summary_write(run_summarize(dir.string(), mo), mo, dir.string());
  write_json(dir / "eval_done.json", {{"judge", judge.name()}});
}

// Per-arm statistics over seeds.
ArmResult arm_result(const ExperimentSpec& spec, const ExperimentArm& arm, const ExperimentOptions& o,
                     const std::vector<uint64_t>& seeds, json* per_question) {
  MetricsOptions mo;
  ArmResult r;
  r.arm = arm.name;
  double coherence_sum = 0;
  int64_t coherence_n = 0;
  std::map<std::string, std::vector<std::vector<double>>> indicators;  // question -> per-seed 0/1
  std::map<std::string, std::pair<double, int64_t>> q_coherence;
  std::vector<std::string> q_order;
  for (uint64_t seed : seeds) {
    const fs::path dir = seed_dir(o, arm.name, seed) / "eval";
    if (!fs::exists(dir / "eval_done.json")) continue;
    RunSummary s = run_summarize(dir.string(), mo);
    if (std::isnan(s.overall.misaligned.estimate)) continue;
    r.seeds += 1;
    r.samples += s.overall.n_judged;
    r.per_seed_pct.push_back(100.0 * s.overall.misaligned.estimate);
    if (!std::isnan(s.overall.coherence_mean)) {
      coherence_sum += s.overall.coherence_mean * s.overall.n_judged;
      coherence_n += s.overall.n_judged;
    }
    for (const auto& q : s.questions) {
      if (!indicators.count(q.id)) q_order.push_back(q.id);
      indicators[q.id].push_back(s.misaligned_indicators[q.id]);
      if (!std::isnan(q.coherence_mean)) {
        q_coherence[q.id].first += q.coherence_mean * q.n_judged;
        q_coherence[q.id].second += q.n_judged;
      }
    }
  }
  if (r.seeds == 0) {
    r.misaligned_pct = r.ci_low = r.ci_high = r.coherence_mean = NAN;
    return r;
  }
  Interval iv = bootstrap_mean(r.per_seed_pct, mo.bootstrap_replicates, mo.confidence, mo.seed);
  r.misaligned_pct = iv.estimate;
  r.ci_low = iv.low;
  r.ci_high = iv.high;
  r.coherence_mean = coherence_n ? coherence_sum / coherence_n : NAN;
  *per_question = json::array();
  for (const auto& q : q_order) {
    int64_t n = 0;
    for (const auto& v : indicators[q]) n += static_cast<int64_t>(v.size());
    Interval qi = bootstrap_stratified_mean(indicators[q], mo.bootstrap_replicates, mo.confidence, mo.seed);
    auto pct = [](double x) { return std::isnan(x) ? json(nullptr) : json(100.0 * x); };
    const auto& c = q_coherence[q];
    per_question->push_back({{"question_id", q},
                             {"misaligned_pct", pct(qi.estimate)},
                             {"ci_low", pct(qi.low)},
                             {"ci_high", pct(qi.high)},
                             {"n_eligible", n},
                             {"coherence_mean", c.second ? json(c.first / c.second) : json(nullptr)}});
  }
  return r;
}

std::string fmt(double x, int digits = 2) {
  if (std::isnan(x)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

}  // namespace

std::string arms_table(const std::vector<ArmResult>& rows) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-22s %5s %8s %12s %18s %10s\n", "arm", "seeds", "samples", "misaligned%",
                "95% CI", "coherence");
  os << line;
  for (const auto& r : rows) {
    std::string ci = std::isnan(r.ci_low) ? "" : "[" + fmt(r.ci_low) + ", " + fmt(r.ci_high) + "]";
    std::snprintf(line, sizeof line, "%-22s %5d %8lld %12s %18s %10s\n", r.arm.c_str(), r.seeds,
                  static_cast<long long>(r.samples), fmt(r.misaligned_pct).c_str(), ci.c_str(),
                  fmt(r.coherence_mean, 1).c_str());
    os << line;
  }
  return os.str();
}

std::vector<ArmResult> experiment_run(const ExperimentSpec& spec, const ExperimentOptions& o) {
  if (o.out.empty()) throw InputError("experiment: no output folder (--out)");
  fs::create_directories(o.out);
  const fs::path spec_path = fs::path(o.out) / "experiment.json";
  json spec_json = spec.to_json();
  if (fs::exists(spec_path)) {
    json old = read_json(spec_path);
    json a = old, b = spec_json;
    a.erase("source");
    b.erase("source");
    if (a != b)
      throw InputError(spec_path.string() + ": this folder holds a run of a different spec (" +
                       old.value("source", std::string("?")) + "); use another --out or delete it");
  } else {
    write_json(spec_path, spec_json);
  }
  if (spec.world_seed) generate_world(spec, fs::path(o.out) / "world");

  world_register_judges();
  local_judge_register(ChatModelOptions{});
  std::unique_ptr<Judge> judge = judge_from_spec(spec.judge);

  std::vector<uint64_t> seeds = spec.seeds;
  if (o.max_seeds > 0 && static_cast<size_t>(o.max_seeds) < seeds.size()) seeds.resize(o.max_seeds);
  auto selected = [&](const ExperimentArm& arm) {
    return o.only_arms.empty() || std::find(o.only_arms.begin(), o.only_arms.end(), arm.name) != o.only_arms.end();
  };
  auto find_arm = [&](const std::string& name) -> const ExperimentArm& {
    for (const auto& a : spec.arms)
      if (a.name == name) return a;
    throw InputError("experiment: no arm named " + name);
  };
  for (const auto& name : o.only_arms) find_arm(name);

  for (const auto& arm : spec.arms) {
    if (!selected(arm)) continue;
    for (uint64_t seed : seeds) {
      fs::path adapter;
      if (!arm.data.empty()) adapter = ensure_finetune(spec, arm, seed, o);
      else if (!arm.from.empty()) adapter = ensure_finetune(spec, find_arm(arm.from), seed, o);
      run_eval(spec, arm, seed, adapter, *judge, o);
    }
  }

  std::vector<ArmResult> rows;
  json arms_json = json::array();
  std::string csv = "arm,seeds,samples,misaligned_pct,ci_low,ci_high,coherence_mean\n";
  for (const auto& arm : spec.arms) {
    json per_question = json::array();
    ArmResult r = arm_result(spec, arm, o, seeds, &per_question);
    if (r.seeds == 0) continue;
    rows.push_back(r);
    csv += r.arm + "," + std::to_string(r.seeds) + "," + std::to_string(r.samples) + "," + fmt(r.misaligned_pct, 4) +
           "," + fmt(r.ci_low, 4) + "," + fmt(r.ci_high, 4) + "," + fmt(r.coherence_mean, 4) + "\n";
    auto num = [](double x) { return std::isnan(x) ? json(nullptr) : json(x); };
    arms_json.push_back({{"arm", r.arm},
                         {"seeds", r.seeds},
                         {"samples", r.samples},
                         {"misaligned_pct", num(r.misaligned_pct)},
                         {"ci_low", num(r.ci_low)},
                         {"ci_high", num(r.ci_high)},
                         {"coherence_mean", num(r.coherence_mean)},
                         {"per_seed_pct", r.per_seed_pct},
                         {"per_question", per_question}});
  }
  write_text(fs::path(o.out) / "arms.csv", csv);
  write_json(fs::path(o.out) / "arms.json", {{"experiment", spec.name}, {"arms", arms_json}});
  if (o.report) report_write(o.out, (fs::path(o.out) / "report.html").string());
  return rows;
}

}  // namespace emlab
