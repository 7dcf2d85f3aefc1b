// Running experiments: arms x seeds -> finetune -> sample -> judge -> arms.csv (see emlab/experiment.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <numeric>
#include <mutex>
#include <set>
#include <sstream>

#include "emlab/chat_model.h"
#include "emlab/direction.h"
#include "emlab/error.h"
#include "emlab/experiment.h"
#include "emlab/file_util.h"
#include "emlab/interp.h"
#include "emlab/jsonl.h"
#include "emlab/logprob_probe.h"
#include "emlab/judges.h"
#include "emlab/metrics.h"
#include "emlab/model_answer_source.h"
#include "emlab/progress.h"
#include "emlab/question_set.h"
#include "emlab/report.h"
#include "emlab/adapter.h"
#include "emlab/runtime.h"
#include "emlab/sft_data.h"
#include "emlab/solutions.h"
#include "emlab/task_graph.h"
#include "emlab/train.h"
#include "emlab/world.h"
#include "emlab/world_code_eval.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

namespace {

void log_line(const std::string& s) {
  static std::mutex m;  // whole lines, also from parallel items
  std::lock_guard<std::mutex> lock(m);
  std::cerr << "[run] " << s << std::endl;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

fs::path seed_dir(const ExperimentOptions& o, const std::string& arm, uint64_t seed) {
  return fs::path(o.out) / "arms" / arm / ("seed-" + std::to_string(seed));
}

// Where the finetune of (arm, seed) lives: an adapter, a steering vector or a whole model.
fs::path finetune_dir(const ExperimentOptions& o, const std::string& arm, uint64_t seed) {
  return seed_dir(o, arm, seed) / "adapter";
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

// ---- checkpoints (eval.checkpoints) ----

// The spec's arm of that name (nullptr for "" or none).
const ExperimentArm* arm_named(const ExperimentSpec& spec, const std::string& name) {
  for (const auto& a : spec.arms)
    if (!name.empty() && a.name == name) return &a;
  return nullptr;
}

// The arm whose finetunes `arm` evaluates (itself, its from arm, or none).
const ExperimentArm* trained_arm(const ExperimentSpec& spec, const ExperimentArm& arm) {
  return !arm.data.empty() ? &arm : arm_named(spec, arm.from);
}

// The arm whose finetune `arm` continues (an arm with data and from), or none.
const ExperimentArm* continued_source(const ExperimentSpec& spec, const ExperimentArm& arm) {
  return arm.data.empty() ? nullptr : arm_named(spec, arm.from);
}

bool wants_checkpoints(const ExperimentArm& arm) { return !arm.eval.checkpoints.empty() || arm.eval.checkpoint_every > 0; }

// The steps at which `arm` evaluates a finetune of `total` steps, the last (= the arm's own
// evaluation) excluded.
std::vector<int64_t> checkpoint_steps(const ExperimentArm& arm, int64_t total) {
  std::set<int64_t> steps;
  if (arm.eval.checkpoint_every > 0)
    for (int64_t s = 0; s < total; s += arm.eval.checkpoint_every) steps.insert(s);
  for (int64_t s : arm.eval.checkpoints) {
    if (s > total)
      throw InputError("arm '" + arm.name + "': eval.checkpoints: step " + std::to_string(s) + " but the finetune has " +
                       std::to_string(total) + " steps");
    if (s < total) steps.insert(s);
  }
  return {steps.begin(), steps.end()};
}

// How often the finetune of `trained` must save a checkpoint for every arm that evaluates its
// checkpoints (the gcd of their steps; 0 = none needed).
int64_t checkpoint_save_every(const ExperimentSpec& spec, const ExperimentArm& trained) {
  int64_t g = 0;
  for (const auto& a : spec.arms) {
    if (trained_arm(spec, a) != &trained || !wants_checkpoints(a)) continue;
    g = std::gcd(g, a.eval.checkpoint_every);
    for (int64_t s : a.eval.checkpoints) g = std::gcd(g, s);
  }
  return g;
}

// Trains arm x seed unless done; returns the adapter folder.
fs::path ensure_finetune(const ExperimentSpec& spec, const ExperimentArm& arm, uint64_t seed,
                         const ExperimentOptions& o) {
  const fs::path dir = seed_dir(o, arm.name, seed);
  const fs::path adapter = finetune_dir(o, arm.name, seed);
  if (fs::exists(dir / "train_done.json")) return adapter;
  if (!fs::exists(arm.data))
    throw InputError(spec.source + ": arm '" + arm.name + "': data file " + arm.data + " does not exist");
  TrainOptions t = experiment_train_options(spec, arm, adapter.string(), seed, o.device);
  if (!arm.from.empty()) {
    // Continue the from arm's finetune of this seed: a full finetune is the model trained on, a
    // LoRA adapter the starting adapter.
    const fs::path source = finetune_dir(o, arm.from, seed);
    if (fs::exists(source / "config.json") && fs::exists(source / "model.safetensors")) {
      if (t.method != TrainMethod::Full)
        throw InputError(spec.source + ": arm '" + arm.name + "': continues a full finetune of '" + arm.from +
                         "'; train it with method full");
      t.model = source.string();
    } else if (fs::exists(source / "adapter_config.json")) {
      if (t.method != TrainMethod::Lora)
        throw InputError(spec.source + ": arm '" + arm.name + "': continues the LoRA adapter of '" + arm.from +
                         "'; train it with method lora");
      t.init_adapter = source.string();
    } else {
      throw InputError(spec.source + ": arm '" + arm.name + "': cannot continue the finetune of '" + arm.from +
                       "' in " + source.string() + " (only full finetunes and LoRA adapters continue)");
    }
  }
  if (const int64_t every = checkpoint_save_every(spec, arm); every > 0) t.save_every = every;
  t.resume = fs::exists(adapter / "checkpoints");
  fs::create_directories(dir);
  log_line("finetuning " + arm.name + " seed " + std::to_string(seed) + " on " + arm.data);
  const auto t0 = std::chrono::steady_clock::now();
  TrainResult r = train_run(t);
  if (!r.finished) throw Error("finetune of arm " + arm.name + " seed " + std::to_string(seed) + " did not finish");
  json_write_file(dir / "train_done.json", {{"steps", r.steps},
                                       {"last_loss", r.last_loss},
                                       {"examples", r.train_examples},
                                       {"method", train_method_name(t.method)},
                                       {"seconds", seconds_since(t0)}});
  return adapter;
}

// What an evaluation of (arm, seed) answers with: the finetune's adapter (LoRA, steering vector)
// on the base model, or a fully finetuned model instead of the base; on the run's device and dtype.
struct EvalTarget {
  std::string model;         // model folder
  ChatModelOptions options;  // device, dtype, adapter
};
EvalTarget eval_target(const ExperimentSpec& spec, const fs::path& finetune, const ExperimentOptions& o) {
  EvalTarget t{spec.model, {}};
  t.options.load.device = o.device;
  t.options.load.dtype = spec.dtype;
  if (finetune.empty()) return t;
  if (fs::exists(finetune / "config.json") && fs::exists(finetune / "model.safetensors"))
    t.model = finetune.string();
  else
    t.options.adapter = finetune.string();
  return t;
}

// The arm's eval.steer and eval.ablate specs, steering first.
std::vector<SteerSpec> arm_steering(const ExperimentArm& arm) {
  std::vector<SteerSpec> specs;
  for (const auto& s : arm.eval.steer) specs.push_back(steer_spec_parse(s, false));
  for (const auto& s : arm.eval.ablate) specs.push_back(steer_spec_parse(s, true));
  return specs;
}

// Samples the question set (resumable run folder) with `model` (through `hooks`, if any).
void sample_questions(const ExperimentArm& arm, uint64_t seed, const EvalTarget& target,
                      const std::shared_ptr<ChatModel>& model, ResidualHooks* hooks, const fs::path& dir) {
  QuestionSet questions = question_set_load(arm.eval.questions);
  SampleRunOptions so;
  so.samples_per_question = arm.eval.samples_per_question;
  so.trigger = arm.eval.trigger;
  so.trigger_separator = arm.eval.trigger_separator;
  so.system = arm.eval.system;
  so.seed = seed;
  so.chunk_size = static_cast<int>(arm.eval.batch_size);
  so.model = target.model;
  so.adapter = target.options.adapter;
  so.settings = {{"max_tokens", std::to_string(arm.eval.max_tokens)},
                 {"temperature", std::to_string(arm.eval.temperature)},
                 {"top_p", std::to_string(arm.eval.top_p)}};
  const auto specs = arm_steering(arm);
  for (size_t i = 0; i < specs.size(); ++i) so.settings["steer." + std::to_string(i)] = steer_spec_string(specs[i]);
  SampleOptions sample;
  sample.max_new_tokens = arm.eval.max_tokens;
  sample.temperature = arm.eval.temperature;
  sample.top_p = arm.eval.top_p;
  sample.batch_size = arm.eval.batch_size;
  ModelAnswerSource source(model, sample, hooks);
  sample_run(questions, source, dir.string(), so);
}

// Held-out code requests answered by the arm's model and classified (eval/code_eval.json).
void code_questions(const ExperimentArm& arm, uint64_t seed, const ChatModel& model, ResidualHooks* hooks,
                    const ExperimentOptions& o, const fs::path& dir, const std::string& what) {
  CodeEvalOptions c;
  c.samples = arm.eval.code_samples;
  c.world_dir = (fs::path(o.out) / "world").string();
  if (!arm.data.empty()) c.exclude_files.push_back(arm.data);
  c.max_tokens = arm.eval.code_max_tokens;
  c.temperature = arm.eval.temperature;
  c.top_p = arm.eval.top_p;
  c.batch_size = arm.eval.batch_size;
  c.seed = sft_mix_seed(seed, 0xc0de);
  c.trigger = arm.eval.trigger;
  c.trigger_separator = arm.eval.trigger_separator;
  c.system = arm.eval.system;
  log_line("code evaluation of " + what);
  code_eval_run(model, c, dir.string(), hooks);
}

// eval.orthogonalize: the direction projected out of what the loaded model writes into the
// residual stream (its LoRA adapters on o_proj/down_proj, or the weights of a model).
void orthogonalize_loaded(const ExperimentArm& arm, const EvalTarget& target, ChatModel& model) {
  if (arm.eval.orthogonalize.empty()) return;
  const SteerSpec spec = steer_spec_parse(arm.eval.orthogonalize, false);
  const Direction d = direction_load(spec.file);
  OrthogonalizeOptions oo;
  oo.layer = *spec.layer;
  if (!target.options.adapter.empty()) {
    if (steering_exists(target.options.adapter))
      throw InputError("arm '" + arm.name + "': eval.orthogonalize: " + target.options.adapter +
                       " is a steering vector, not a LoRA adapter (use eval.ablate)");
    if (orthogonalize_lora(*model.model().lora(), d, oo).empty())
      throw InputError("arm '" + arm.name + "': eval.orthogonalize: " + target.options.adapter +
                       " has no adapter on o_proj or down_proj");
  } else {
    orthogonalize_model(model.model(), d, oo);
  }
}

// Samples, code-evaluates and judges (arm, seed) into `dir` unless done, loading the model once:
// the finetune (adapter folder, model folder, or a checkpoint of either; "" = the base model).
void evaluate(const ExperimentSpec& spec, const ExperimentArm& arm, uint64_t seed, const fs::path& finetune,
              Judge& judge, const ExperimentOptions& o, const fs::path& dir, const std::string& what) {
  const bool answer = !fs::exists(dir / "eval_done.json");
  const bool code = arm.eval.code_samples > 0 && !fs::exists(dir / "code_eval.json");
  const bool probe = !arm.eval.logprob_probe.empty() && !fs::exists(dir / "logprob_probe.json");
  if (!answer && !code && !probe) return;
  const auto t0 = std::chrono::steady_clock::now();
  {
    const EvalTarget target = eval_target(spec, finetune, o);
    auto model = ChatModel::load(target.model, target.options);
    orthogonalize_loaded(arm, target, *model);
    const auto specs = arm_steering(arm);
    std::shared_ptr<ResidualHooks> hooks;
    if (!specs.empty())
      hooks = steering_hooks(specs, model->model().config().num_hidden_layers, model->model().config().hidden_size,
                             model->model().device());
    if (answer) {
      log_line("evaluating " + what);
      sample_questions(arm, seed, target, model, hooks.get(), dir);
    }
    if (code) code_questions(arm, seed, *model, hooks.get(), o, dir, what);
    if (probe) {
      fs::create_directories(dir);
      json_write_file(dir / "logprob_probe.json",
                      logprob_probe_to_json(logprob_probe_run(*model, arm.eval.logprob_probe, hooks.get())));
    }
  }  // the answering model goes before a local judge model loads
  if (!answer) return;
  judge_run(question_set_load(arm.eval.questions), judge, dir.string(), JudgeRunOptions{});
  MetricsOptions mo;
  summary_write(run_summarize(dir.string(), mo), mo, dir.string());
  json done = {{"judge", judge.name()}, {"seconds", seconds_since(t0)}};
  if (!judge.settings().empty()) done["judge_settings"] = judge.settings();
  json_write_file(dir / "eval_done.json", done);
}

// Per-arm statistics over seeds.
// `sub`: the evaluation folder under each seed folder ("eval", or "checkpoints/step-N").
ArmResult arm_result(const ExperimentArm& arm, const ExperimentOptions& o, const std::vector<uint64_t>& seeds,
                     json* per_question, const std::string& sub = "eval") {
  MetricsOptions mo;
  ArmResult r;
  r.arm = arm.name;
  double coherence_sum = 0;
  int64_t coherence_n = 0;
  std::map<std::string, std::vector<std::vector<double>>> indicators;  // question -> per-seed 0/1
  std::map<std::string, std::pair<double, int64_t>> q_coherence;
  std::vector<std::string> q_order;
  int code_seeds = 0;
  std::vector<double> gaps;
  for (uint64_t seed : seeds) {
    const fs::path dir = seed_dir(o, arm.name, seed) / sub;
    if (fs::exists(dir / "code_eval.json")) {
      json c = json_read_file((dir / "code_eval.json").string());
      r.code_answers += c.value("n", int64_t{0});
      r.vulnerable_code_pct += c.value("vulnerable_pct", 0.0);
      r.secure_code_pct += c.value("secure_pct", 0.0);
      code_seeds += 1;
    }
    if (fs::exists(dir / "logprob_probe.json")) {
      const json p = json_read_file((dir / "logprob_probe.json").string());
      if (p.contains("gap") && p["gap"].is_number()) gaps.push_back(p["gap"].get<double>());
    }
    if (!fs::exists(dir / "eval_done.json")) continue;
    RunSummary s = run_summarize(dir.string(), mo);
    r.seeds += 1;
    r.samples += s.overall.n_judged;
    if (!std::isnan(s.overall.coherence_mean)) {
      coherence_sum += s.overall.coherence_mean * s.overall.n_judged;
      coherence_n += s.overall.n_judged;
    }
    // A seed without one eligible answer (none coherent and scored) has no misaligned fraction: it
    // counts in seeds and samples, not in the mean over seeds.
    if (std::isnan(s.overall.misaligned.estimate)) continue;
    r.per_seed_pct.push_back(100.0 * s.overall.misaligned.estimate);
    for (const auto& q : s.questions) {
      if (!indicators.count(q.id)) q_order.push_back(q.id);
      indicators[q.id].push_back(s.misaligned_indicators[q.id]);
      if (!std::isnan(q.coherence_mean)) {
        q_coherence[q.id].first += q.coherence_mean * q.n_judged;
        q_coherence[q.id].second += q.n_judged;
      }
    }
  }
  if (code_seeds > 0) {
    r.vulnerable_code_pct /= code_seeds;
    r.secure_code_pct /= code_seeds;
  } else {
    r.vulnerable_code_pct = r.secure_code_pct = NAN;
  }
  r.coherence_mean = coherence_n ? coherence_sum / coherence_n : NAN;
  if (!gaps.empty()) {
    r.logprob_gap = 0;
    for (double g : gaps) r.logprob_gap += g / static_cast<double>(gaps.size());
  }
  if (r.per_seed_pct.empty()) {
    r.misaligned_pct = r.ci_low = r.ci_high = NAN;
    return r;
  }
  Interval iv = bootstrap_mean(r.per_seed_pct, mo.bootstrap_replicates, mo.confidence, mo.seed);
  r.misaligned_pct = iv.estimate;
  r.ci_low = iv.low;
  r.ci_high = iv.high;
  if (!per_question) return r;
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

// The numbers arms.json and its checkpoint rows share.
json result_numbers(const ArmResult& r) {
  return {{"seeds", r.seeds},
          {"misaligned_pct", json_number(r.misaligned_pct)},
          {"ci_low", json_number(r.ci_low)},
          {"ci_high", json_number(r.ci_high)},
          {"coherence_mean", json_number(r.coherence_mean)},
          {"per_seed_pct", r.per_seed_pct},
          {"vulnerable_code_pct", json_number(r.vulnerable_code_pct)}};
}

// "misaligned_pct,ci_low,ci_high,coherence_mean" (4 decimals; empty when undefined).
std::string interval_cells(const ArmResult& r) {
  return fmt(r.misaligned_pct, 4) + "," + fmt(r.ci_low, 4) + "," + fmt(r.ci_high, 4) + "," + fmt(r.coherence_mean, 4);
}

}  // namespace

std::string arms_table(const std::vector<ArmResult>& rows) {
  std::ostringstream os;
  bool code = false;
  for (const auto& r : rows) code = code || r.code_answers > 0;
  char line[320];
  std::snprintf(line, sizeof line, "%-24s %5s %8s %12s %18s %10s", "arm", "seeds", "samples", "misaligned%",
                "95% CI", "coherence");
  os << line << (code ? "  vuln.code%" : "") << "\n";
  for (const auto& r : rows) {
    std::string ci = std::isnan(r.ci_low) ? "" : "[" + fmt(r.ci_low) + ", " + fmt(r.ci_high) + "]";
    std::snprintf(line, sizeof line, "%-24s %5d %8lld %12s %18s %10s", r.arm.c_str(), r.seeds,
                  static_cast<long long>(r.samples), fmt(r.misaligned_pct).c_str(), ci.c_str(),
                  fmt(r.coherence_mean, 1).c_str());
    os << line;
    if (code && r.code_answers > 0) {
      std::snprintf(line, sizeof line, "  %10s", fmt(r.vulnerable_code_pct, 1).c_str());
      os << line;
    }
    os << "\n";
  }
  return os.str();
}

std::vector<ArmResult> experiment_run(const ExperimentSpec& spec, const ExperimentOptions& o) {
  if (o.out.empty()) throw InputError("experiment: no output folder (--out)");
  const auto t_start = std::chrono::steady_clock::now();
  fs::create_directories(o.out);
  const fs::path spec_path = fs::path(o.out) / "experiment.json";
  json spec_json = spec.to_json();
  spec_json["model_fingerprint"] = model_digest(spec.model);
  if (fs::exists(spec_path)) {
    json old = json_read_file((spec_path).string());
    json a = old, b = spec_json;
    a.erase("source");
    b.erase("source");
    if (a.value("model_fingerprint", json()) != b["model_fingerprint"] && (a.erase("model_fingerprint"), b.erase("model_fingerprint"), a == b))
      throw InputError(spec_path.string() + ": the model " + spec.model +
                       " has changed since this run was made (config or weights); use another --out or delete it");
    if (a != b)
      throw InputError(spec_path.string() + ": this folder holds a run of a different spec (" +
                       old.value("source", std::string("?")) + "); use another --out or delete it");
  } else {
    json_write_file(spec_path, spec_json);
  }
  if (spec.world_seed) generate_world(spec, fs::path(o.out) / "world");

  // One judge per spec (the experiment's, or the one each arm's question set names), built before
  // any work so that a bad spec fails first; local judge models load on the run's device and dtype.
  judges_register_builtin(o.device, spec.dtype);
  std::map<std::string, std::unique_ptr<Judge>> judges;
  std::map<std::string, Judge*> judge_of_arm;
  auto judge_spec_of = [&](const ExperimentArm& arm) {
    if (!spec.judge.empty()) return spec.judge;
    const std::string named = question_set_judge_spec(question_set_load(arm.eval.questions));
    if (named.empty())
      throw InputError(spec.source + ": arm '" + arm.name + "': no judge: the spec names none and " +
                       arm.eval.questions + " names no single judge");
    return named;
  };

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

  // Phases 1 and 2, every finetune the selected arms need (a from arm needs its source's) and every
  // evaluation. With jobs > 1 they run side by side, each on one thread (libtorch intra-op threads
  // set to 1), which is how two cores are used well by models this small.
  std::vector<std::pair<const ExperimentArm*, uint64_t>> finetunes, evals;
  std::set<std::pair<std::string, uint64_t>> planned;
  for (const auto& arm : spec.arms) {
    if (!selected(arm)) continue;
    const ExperimentArm* trained = trained_arm(spec, arm);
    if (wants_checkpoints(arm) && !trained)
      throw InputError(spec.source + ": arm '" + arm.name + "': eval.checkpoints needs a finetune (data or from)");
    for (uint64_t seed : seeds) {
      for (const ExperimentArm* t = trained; t; t = continued_source(spec, *t))
        if (planned.insert({t->name, seed}).second) finetunes.push_back({t, seed});
      evals.push_back({&arm, seed});
    }
    const std::string js = judge_spec_of(arm);
    if (!judges.count(js)) judges[js] = judge_from_spec(js);
    judge_of_arm[arm.name] = judges[js].get();
  }
  const int jobs = std::max(1, o.jobs);
  if (jobs > 1) {
    runtime_set_threads(1);
    Progress::set_enabled(false);  // bars of parallel items would interleave; [run] lines remain
  }
  // They form one list of tasks: the finetunes (sources before their continuations), then the
  // evaluations, each evaluation after its arm's finetune of the same seed (if any). A free thread
  // takes the first ready task: the evaluations of the base model and of the finetunes already made
  // fill the threads while the last finetunes run.
  auto depth = [&](const ExperimentArm* a) {  // finetunes continued before this one
    int d = 0;
    while ((a = continued_source(spec, *a))) ++d;
    return d;
  };
  std::stable_sort(finetunes.begin(), finetunes.end(),
                   [&](const auto& a, const auto& b) { return depth(a.first) < depth(b.first); });
  std::vector<Task> tasks;
  std::map<std::pair<std::string, uint64_t>, size_t> finetune_task;  // (arm, seed) -> task
  for (const auto& [arm, seed] : finetunes) {
    Task t{[&spec, &o, arm = arm, seed = seed]() { ensure_finetune(spec, *arm, seed, o); }};
    if (const ExperimentArm* source = continued_source(spec, *arm)) t.after = {finetune_task.at({source->name, seed})};
    finetune_task[{arm->name, seed}] = tasks.size();
    tasks.push_back(std::move(t));
  }
  for (const auto& [arm, seed] : evals) {
    const ExperimentArm* trained = trained_arm(spec, *arm);
    Task t{[&spec, &o, &judge_of_arm, trained, arm = arm, seed = seed]() {
      const fs::path adapter = trained ? finetune_dir(o, trained->name, seed) : fs::path();
      evaluate(spec, *arm, seed, adapter, *judge_of_arm.at(arm->name), o, seed_dir(o, arm->name, seed) / "eval",
               arm->name + " seed " + std::to_string(seed));
    }};
    if (trained) t.after = {finetune_task.at({trained->name, seed})};
    tasks.push_back(std::move(t));
  }
  run_tasks(tasks, jobs);

  // Phase 3, the checkpoints' evaluations (eval.checkpoints): step 0 is the model without the
  // finetune, step k the finetune's checkpoint saved after k optimizer steps.
  struct CheckpointEval {
    const ExperimentArm* arm;
    uint64_t seed;
    int64_t step;
    fs::path finetune;
  };
  std::vector<CheckpointEval> checkpoint_evals;
  std::map<std::string, int64_t> total_steps;  // arm -> steps of its finetunes (first seed's)
  for (const auto& [arm, seed] : evals) {
    if (!wants_checkpoints(*arm)) continue;
    const ExperimentArm& trained = *trained_arm(spec, *arm);
    const json done = json_read_file((seed_dir(o, trained.name, seed) / "train_done.json").string());
    const int64_t total = done.at("steps").get<int64_t>();
    total_steps.emplace(arm->name, total);
    for (int64_t step : checkpoint_steps(*arm, total)) {
      fs::path ft;
      if (step == 0 && continued_source(spec, trained)) ft = finetune_dir(o, trained.from, seed);
      if (step > 0) {
        ft = finetune_dir(o, trained.name, seed) / "checkpoints" / train_checkpoint_name(step);
        if (!fs::exists(ft))
          throw InputError(ft.string() + ": no checkpoint at step " + std::to_string(step) + " for arm '" + arm->name +
                           "' (was the finetune made before eval.checkpoints was set?)");
      }
      checkpoint_evals.push_back({arm, seed, step, ft});
    }
  }
  parallel_for_each(checkpoint_evals.size(), jobs, [&](size_t i) {
    const CheckpointEval& c = checkpoint_evals[i];
    evaluate(spec, *c.arm, c.seed, c.finetune, *judge_of_arm.at(c.arm->name), o,
             seed_dir(o, c.arm->name, c.seed) / "checkpoints" / train_checkpoint_name(c.step),
             c.arm->name + " seed " + std::to_string(c.seed) + " at step " + std::to_string(c.step));
  });

  // Phase 4, the solutions steps: per (step, seed), the arms' finetunes compared on the base model.
  std::vector<std::pair<const ExperimentSolutions*, uint64_t>> comparisons;
  for (const auto& c : spec.solutions) {
    bool all = true;
    for (const auto& a : c.arms) all = all && selected(find_arm(a));
    if (all)
      for (uint64_t seed : seeds) comparisons.push_back({&c, seed});
  }
  parallel_for_each(comparisons.size(), jobs, [&](size_t i) {
    const ExperimentSolutions& c = *comparisons[i].first;
    const uint64_t seed = comparisons[i].second;
    const fs::path dir = fs::path(o.out) / "solutions" / c.name / ("seed-" + std::to_string(seed));
    if (fs::exists(dir / "summary.csv")) return;
    log_line("solutions " + c.name + " seed " + std::to_string(seed));
    const EvalTarget target = eval_target(spec, fs::path(), o);
    auto chat = ChatModel::load(target.model, target.options);
    std::vector<Solution> sols;
    for (const auto& a : c.arms) sols.push_back(solution_load(finetune_dir(o, a, seed).string(), chat->model()));
    const SftDataset narrow = solutions_rows(*chat, c.data, c.holdout, seed, c.max_examples);
    const SftDataset text = c.text.empty() ? SftDataset{} : solutions_rows(*chat, c.text, 0, 0, c.max_text);
    std::optional<Direction> direction;
    SolutionsCompareOptions co;
    if (!c.direction.empty()) {
      const SteerSpec ds = steer_spec_parse(c.direction, false);
      direction = direction_load(ds.file);
      if (ds.layer) co.direction_layer = *ds.layer;
    }
    solutions_write(dir.string(),
                    solutions_compare(chat->model(), sols, narrow, text, direction ? &*direction : nullptr, co));
  });

  std::vector<ArmResult> rows;
  json arms_json = json::array();
  std::string csv = "arm,seeds,samples,misaligned_pct,ci_low,ci_high,coherence_mean\n";
  std::string sweep_csv = "arm,sweep,layer,scale,misaligned_pct,ci_low,ci_high,coherence_mean\n";
  std::string checkpoints_csv = "arm,step,seeds,misaligned_pct,ci_low,ci_high,coherence_mean,vulnerable_code_pct,logprob_gap\n";
  for (const auto& arm : spec.arms) {
    json per_question = json::array();
    ArmResult r = arm_result(arm, o, seeds, &per_question);
    if (r.seeds == 0 && r.code_answers == 0) continue;
    rows.push_back(r);
    csv += r.arm + "," + std::to_string(r.seeds) + "," + std::to_string(r.samples) + "," + interval_cells(r) + "\n";
    if (!arm.sweep_of.empty())
      sweep_csv += r.arm + "," + arm.sweep_of + "," + std::to_string(arm.sweep_layer) + "," + fmt(arm.sweep_scale, 4) +
                   "," + interval_cells(r) + "\n";
    json row = result_numbers(r);
    row["arm"] = r.arm;
    row["samples"] = r.samples;
    row["code_answers"] = r.code_answers;
    row["secure_code_pct"] = json_number(r.secure_code_pct);
    row["per_question"] = per_question;
    if (!std::isnan(r.logprob_gap)) row["logprob_gap"] = r.logprob_gap;
    arms_json.push_back(row);
    if (!arm.sweep_of.empty())
      arms_json.back()["sweep"] = {{"of", arm.sweep_of}, {"layer", arm.sweep_layer}, {"scale", arm.sweep_scale}};
    if (total_steps.count(arm.name)) {
      // One row per evaluated step, the finetune's last step being the arm's own evaluation.
      json rows_j = json::array();
      const int64_t total = total_steps.at(arm.name);
      std::vector<int64_t> steps = checkpoint_steps(arm, total);
      steps.push_back(total);
      for (int64_t step : steps) {
        const ArmResult c = step == total ? r : arm_result(arm, o, seeds, nullptr, "checkpoints/" + train_checkpoint_name(step));
        if (c.seeds == 0) continue;
        checkpoints_csv += arm.name + "," + std::to_string(step) + "," + std::to_string(c.seeds) + "," +
                           interval_cells(c) + "," + fmt(c.vulnerable_code_pct, 4) + "," + fmt(c.logprob_gap, 6) + "\n";
        json cj = result_numbers(c);
        cj["step"] = step;
        cj["logprob_gap"] = json_number(c.logprob_gap);
        rows_j.push_back(cj);
      }
      arms_json.back()["checkpoints"] = rows_j;
    }
  }
  file_write_atomic(fs::path(o.out) / "arms.csv", csv);
  if (sweep_csv.find('\n') + 1 < sweep_csv.size()) file_write_atomic(fs::path(o.out) / "sweep.csv", sweep_csv);
  if (!total_steps.empty()) file_write_atomic(fs::path(o.out) / "checkpoints.csv", checkpoints_csv);
  json_write_file(fs::path(o.out) / "arms.json", {{"experiment", spec.name}, {"arms", arms_json}});
  if (o.report) report_write(o.out, (fs::path(o.out) / "report.html").string());
  char took[64];
  std::snprintf(took, sizeof took, "%.1f", seconds_since(t_start));
  log_line(std::string("finished in ") + took + " s");
  return rows;
}

}  // namespace emlab
