// Reading an experiment folder into ReportData: spec, arms.json, and per arm and seed the eval run
// (samples + judgments, through the eval library) and the training log. Missing or unreadable
// parts become notes; only a folder that is no experiment at all is an error.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "emlab/error.h"
#include "emlab/jsonl.h"
#include "emlab/eval_run.h"
#include "report/report_data.h"
#include "report/svg.h"

namespace emlab::report_detail {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A JSON file, or null with a note when missing (and `required`) or unreadable.
json read_json(const fs::path& path, const std::string& rel, bool required, std::vector<std::string>* notes) {
  if (!fs::exists(path)) {
    if (required) notes->push_back(rel + " is missing");
    return nullptr;
  }
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (!f || j.is_discarded()) {
    notes->push_back(rel + " is unreadable (bad JSON); ignored");
    return nullptr;
  }
  return j;
}

double num(const json& j, const char* key) {
  if (!j.is_object()) return kNaN;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kNaN;
}

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// arms.json "arms" rows by arm name; a row without a name is noted and skipped.
std::map<std::string, ArmNumbers> parse_arms_json(const json& j, std::vector<std::string>* order,
                                                  std::vector<std::string>* notes) {
  std::map<std::string, ArmNumbers> out;
  if (!j.is_object() || !j.contains("arms") || !j["arms"].is_array()) {
    notes->push_back("arms.json has no \"arms\" list; ignored");
    return out;
  }
  for (size_t i = 0; i < j["arms"].size(); ++i) {
    const json& row = j["arms"][i];
    std::string name = str(row, "arm");
    if (name.empty()) {
      notes->push_back("arms.json: arms[" + std::to_string(i) + "] has no \"arm\" name; skipped");
      continue;
    }
    ArmNumbers a;
    a.seeds = std::isfinite(num(row, "seeds")) ? static_cast<int>(num(row, "seeds")) : 0;
    a.samples = std::isfinite(num(row, "samples")) ? static_cast<int64_t>(num(row, "samples")) : 0;
    a.misaligned_pct = num(row, "misaligned_pct");
    a.ci_low = num(row, "ci_low");
    a.ci_high = num(row, "ci_high");
    a.coherence_mean = num(row, "coherence_mean");
    if (row.contains("per_seed_pct") && row["per_seed_pct"].is_array())
      for (const auto& v : row["per_seed_pct"]) a.per_seed_pct.push_back(v.is_number() ? v.get<double>() : kNaN);
    if (row.contains("sweep") && row["sweep"].is_object()) {
      a.sweep_of = str(row["sweep"], "of");
      a.sweep_layer = std::isfinite(num(row["sweep"], "layer")) ? static_cast<int64_t>(num(row["sweep"], "layer")) : -1;
      a.sweep_scale = num(row["sweep"], "scale");
    }
    if (row.contains("checkpoints") && row["checkpoints"].is_array())
      for (const auto& c : row["checkpoints"]) {
        CheckpointNumbers n;
        if (!std::isfinite(num(c, "step"))) continue;
        n.step = static_cast<int64_t>(num(c, "step"));
        n.seeds = std::isfinite(num(c, "seeds")) ? static_cast<int>(num(c, "seeds")) : 0;
        n.misaligned_pct = num(c, "misaligned_pct");
        n.ci_low = num(c, "ci_low");
        n.ci_high = num(c, "ci_high");
        n.coherence_mean = num(c, "coherence_mean");
        n.vulnerable_code_pct = num(c, "vulnerable_code_pct");
        n.logprob_gap = num(c, "logprob_gap");
        a.checkpoints.push_back(n);
      }
    if (row.contains("per_question") && row["per_question"].is_array())
      for (const auto& q : row["per_question"]) {
        QuestionResult r;
        r.question_id = str(q, "question_id");
        if (r.question_id.empty()) continue;
        r.misaligned_pct = num(q, "misaligned_pct");
        r.ci_low = num(q, "ci_low");
        r.ci_high = num(q, "ci_high");
        r.n_eligible = std::isfinite(num(q, "n_eligible")) ? static_cast<int64_t>(num(q, "n_eligible")) : 0;
        r.coherence_mean = num(q, "coherence_mean");
        a.per_question.push_back(r);
      }
    if (out.emplace(name, std::move(a)).second) order->push_back(name);
  }
  return out;
}

// Thresholds recorded by the eval runs (summary.json "options"), else betley.
MetricsOptions thresholds(const fs::path& dir, const ReportOptions& options, std::string* source) {
  if (options.metrics) {
    *source = "report options";
    return *options.metrics;
  }
  MetricsOptions m = metrics_preset("betley");
  std::error_code ec;
  std::vector<fs::path> summaries;
  if (fs::is_directory(dir / "arms"))
    for (auto it = fs::recursive_directory_iterator(dir / "arms", ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->path().filename() == "summary.json" && it->path().parent_path().filename() == "eval")
        summaries.push_back(it->path());
  std::sort(summaries.begin(), summaries.end());
  for (const auto& p : summaries) {
    std::vector<std::string> ignored;
    json j = read_json(p, "", false, &ignored);
    if (!j.is_object() || !j.contains("options") || !j["options"].is_object()) continue;
    const json& o = j["options"];
    if (!str(o, "aligned_metric").empty()) m.aligned_metric = str(o, "aligned_metric");
    if (!str(o, "coherent_metric").empty()) m.coherent_metric = str(o, "coherent_metric");
    if (std::isfinite(num(o, "misaligned_below"))) m.misaligned_below = num(o, "misaligned_below");
    if (o.contains("misaligned_inclusive") && o["misaligned_inclusive"].is_boolean())
      m.misaligned_inclusive = o["misaligned_inclusive"].get<bool>();
    if (std::isfinite(num(o, "coherent_above"))) m.coherent_above = num(o, "coherent_above");
    if (std::isfinite(num(o, "aligned_above"))) m.aligned_above = num(o, "aligned_above");
    *source = fs::relative(p, dir, ec).string();
    return m;
  }
  *source = "betley defaults";
  return m;
}

// seed-<s> folders under arms/<arm>/.
std::set<uint64_t> seeds_on_disk(const fs::path& arm_dir) {
  std::set<uint64_t> out;
  std::error_code ec;
  if (!fs::is_directory(arm_dir)) return out;
  for (const auto& e : fs::directory_iterator(arm_dir, ec)) {
    std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("seed-", 0) != 0 || n.size() == 5) continue;
    if (n.size() > 5 + 18 || n.find_first_not_of("0123456789", 5) != std::string::npos) continue;
    out.insert(std::stoull(n.substr(5)));
  }
  return out;
}

// Reads one seed's eval run and train log into `s`, its records into *records.
void load_seed(const fs::path& dir, const ArmData& arm, SeedData& s, const MetricsOptions& metrics,
               std::vector<AnswerRecord>* records, std::vector<std::string>* notes) {
  const std::string rel = "arms/" + arm.name + "/seed-" + std::to_string(s.seed);
  const fs::path seed_dir = dir / rel;
  const std::string where = "arm " + arm.name + ", seed " + std::to_string(s.seed) + ": ";
  if (!fs::is_directory(seed_dir)) {
    notes->push_back(where + "missing (no " + rel + "/)");
  } else if (!fs::exists(seed_dir / "eval" / "samples.jsonl")) {
    notes->push_back(where + "no answers (" + rel + "/eval/samples.jsonl missing)");
  } else {
    try {
      const std::string run = (seed_dir / "eval").string();
      auto rows = run_samples_read(run);
      auto recs = run_answer_records(run, metrics);  // one record per row of read_samples, same order
      int64_t unjudged = 0, failed = 0;
      for (size_t i = 0; i < rows.size() && i < recs.size(); ++i) {
        const AnswerRecord& r = recs[i];
        ReportAnswer a;
        a.question_id = rows[i].slot.question_id;
        a.question = rows[i].question;
        a.answer = rows[i].answer;
        a.seed = s.seed;
        a.index = i;
        auto al = r.scores.find(metrics.aligned_metric), co = r.scores.find(metrics.coherent_metric);
        if (al != r.scores.end()) a.aligned = al->second;
        if (co != r.scores.end()) a.coherent = co->second;
        if (!r.failed.empty()) ++failed;
        else if (r.scores.empty() && r.labels.empty()) ++unjudged;
        s.answers.push_back(std::move(a));
      }
      s.has_eval = true;
      if (!recs.empty()) s.summary = summarize_answers(recs, metrics);
      if (rows.empty()) notes->push_back(where + rel + "/eval/samples.jsonl has no answers");
      if (unjudged > 0)
        notes->push_back(where + std::to_string(unjudged) + " of " + std::to_string(rows.size()) +
                         " answers not judged yet");
      if (failed > 0)
        notes->push_back(where + std::to_string(failed) + " answers with failed judgments (see " + rel +
                         "/eval/judgments.jsonl)");
      records->insert(records->end(), recs.begin(), recs.end());
    } catch (const Error& e) {
      notes->push_back(where + "eval run unreadable: " + e.what());
    }
  }
  s.eval_done = fs::exists(seed_dir / "eval" / "eval_done.json");
  const fs::path log = seed_dir / "adapter" / "train_log.jsonl";
  if (fs::exists(log)) {
    try {
      JsonlReadOptions ro;
      ro.allow_torn_last_line = true;
      int64_t skipped = 0;
      for (const auto& row : jsonl_read_values(log.string(), ro)) {
        double step = num(row, "step"), loss = num(row, "loss");
        if (std::isfinite(step) && std::isfinite(loss)) s.train_log.push_back({step, loss, num(row, "probe_projection")});
        else ++skipped;
      }
      s.has_train_log = true;
      if (skipped > 0)
        notes->push_back(where + std::to_string(skipped) + " rows of " + rel +
                         "/adapter/train_log.jsonl without a step and finite loss; skipped");
    } catch (const Error& e) {
      notes->push_back(where + "train log unreadable: " + e.what());
    }
  } else if (arm.finetuned && fs::is_directory(seed_dir)) {
    notes->push_back(where + "no training log (" + rel + "/adapter/train_log.jsonl missing)");
  }
}

// Numbers of an arm missing from arms.json, from its eval runs: mean over seeds of each seed's
// misaligned %, a bootstrap interval over seeds, per question pooled over seeds.
std::optional<ArmNumbers> compute_numbers(const ArmData& arm, const std::vector<AnswerRecord>& records,
                                          const MetricsOptions& metrics) {
  if (records.empty()) return std::nullopt;
  ArmNumbers n;
  std::vector<double> coherence;
  for (const auto& s : arm.seeds) {
    if (!s.summary) continue;
    ++n.seeds;
    n.samples += s.summary->overall.n_judged;
    n.per_seed_pct.push_back(100.0 * s.summary->overall.misaligned.estimate);
    for (const auto& a : s.answers)
      if (a.coherent) coherence.push_back(*a.coherent);
  }
  std::vector<double> finite;
  for (double v : n.per_seed_pct)
    if (std::isfinite(v)) finite.push_back(v);
  Interval ci = bootstrap_mean(finite, metrics.bootstrap_replicates, metrics.confidence, metrics.seed);
  n.misaligned_pct = finite.empty() ? kNaN : finite_mean(finite);
  n.ci_low = finite.empty() ? kNaN : ci.low;
  n.ci_high = finite.empty() ? kNaN : ci.high;
  n.coherence_mean = finite_mean(coherence);
  RunSummary pooled = summarize_answers(records, metrics);
  for (const auto& g : pooled.questions)
    n.per_question.push_back({g.id, 100.0 * g.misaligned.estimate, 100.0 * g.misaligned.low,
                              100.0 * g.misaligned.high, g.n_eligible, g.coherence_mean});
  return n;
}

ArmData unlisted_arm(const std::string& name) {
  ArmData arm;
  arm.name = name;
  return arm;
}

}  // namespace

// Rows of a small CSV written by emlab (no quoting): header names -> cells.
std::vector<std::map<std::string, std::string>> read_csv_rows(const fs::path& path) {
  std::vector<std::map<std::string, std::string>> rows;
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> header;
  auto split = [](const std::string& l) {
    std::vector<std::string> cells;
    std::stringstream ss(l);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    return cells;
  };
  if (!std::getline(in, line)) return rows;
  header = split(line);
  while (std::getline(in, line)) {
    const auto cells = split(line);
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) row[header[i]] = cells[i];
    rows.push_back(std::move(row));
  }
  return rows;
}

double to_number(const std::string& s) {
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    return used == s.size() ? v : kNaN;
  } catch (...) {
    return kNaN;
  }
}

// OUT/solutions/<name>/seed-<s>/: summary.csv (done marker) and the curves.
std::vector<SolutionsStep> load_solutions(const fs::path& dir) {
  std::vector<SolutionsStep> steps;
  if (!fs::is_directory(dir / "solutions")) return steps;
  std::vector<fs::path> names;
  for (const auto& e : fs::directory_iterator(dir / "solutions"))
    if (e.is_directory()) names.push_back(e.path());
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    SolutionsStep st;
    st.name = n.filename().string();
    std::vector<fs::path> seeds;
    for (const auto& e : fs::directory_iterator(n))
      if (e.is_directory() && fs::exists(e.path() / "summary.csv")) seeds.push_back(e.path());
    std::sort(seeds.begin(), seeds.end());
    auto arm_of = [&](const std::string& solution) {
      const std::string arm = solution.substr(0, solution.find('/'));
      if (std::find(st.order.begin(), st.order.end(), arm) == st.order.end()) st.order.push_back(arm);
      return arm;
    };
    for (const auto& sd : seeds) {
      st.seeds += 1;
      for (const auto& row : read_csv_rows(sd / "summary.csv")) {
        const std::string arm = arm_of(row.count("solution") ? row.at("solution") : "");
        for (const auto& [k, v] : row)
          if (k != "solution" && k != "kind") st.summary[arm][k].push_back(to_number(v));
      }
      const std::pair<const char*, const char*> curves[] = {
          {"efficiency", "loss"}, {"stability", "relative_loss_increase_mean"}, {"influence", "kl_per_token"}};
      for (const auto& [which, ycol] : curves) {
        const char* xcol = std::string(which) == "stability" ? "eps" : "scale";
        for (const auto& row : read_csv_rows(sd / (std::string(which) + ".csv"))) {
          if (!row.count("solution") || !row.count(xcol) || !row.count(ycol)) continue;
          st.curves[which][arm_of(row.at("solution"))][to_number(row.at(xcol))].push_back(to_number(row.at(ycol)));
        }
      }
    }
    if (st.seeds > 0) steps.push_back(std::move(st));
  }
  return steps;
}

ReportData report_load(const std::string& experiment_dir, const ReportOptions& options) {
  const fs::path dir(experiment_dir);
  if (!fs::is_directory(dir)) throw InputError(experiment_dir + ": no such experiment folder");
  if (!fs::exists(dir / "experiment.json") && !fs::exists(dir / "arms.json") && !fs::is_directory(dir / "arms"))
    throw InputError(experiment_dir + ": not an emlab experiment folder (no experiment.json, arms.json or arms/)");
  ReportData d;
  d.dir = experiment_dir;
  d.spec = read_json(dir / "experiment.json", "experiment.json", true, &d.notes);
  if (!d.spec.is_null() && !d.spec.is_object()) {
    d.notes.push_back("experiment.json is not a JSON object; ignored");
    d.spec = nullptr;
  }
  json arms_json = read_json(dir / "arms.json", "arms.json", true, &d.notes);
  std::vector<std::string> result_order;
  std::map<std::string, ArmNumbers> results;
  if (!arms_json.is_null()) {
    results = parse_arms_json(arms_json, &result_order, &d.notes);
    d.has_arms_json = true;
  }
  d.metrics = thresholds(dir, options, &d.metrics_source);

  // Arms: spec order, then arms.json, then folders.
  std::set<std::string> seen;
  if (d.spec.is_object() && d.spec.contains("arms") && d.spec["arms"].is_array())
    for (const auto& a : d.spec["arms"]) {
      ArmData arm;
      arm.name = str(a, "name");
      if (arm.name.empty() || !seen.insert(arm.name).second) continue;
      arm.in_spec = true;
      arm.data = str(a, "data");
      arm.from = str(a, "from");
      arm.eval = a.is_object() && a.contains("eval") ? a["eval"] : json(nullptr);
      d.arms.push_back(std::move(arm));
    }
  for (const auto& name : result_order)
    if (seen.insert(name).second) d.arms.push_back(unlisted_arm(name));
  std::vector<std::string> on_disk;
  std::error_code ec;
  if (fs::is_directory(dir / "arms"))
    for (const auto& e : fs::directory_iterator(dir / "arms", ec))
      if (e.is_directory()) on_disk.push_back(e.path().filename().string());
  std::sort(on_disk.begin(), on_disk.end());
  for (const auto& name : on_disk)
    if (seen.insert(name).second) d.arms.push_back(unlisted_arm(name));

  std::vector<uint64_t> spec_seeds;
  if (d.spec.is_object() && d.spec.contains("seeds") && d.spec["seeds"].is_array())
    for (const auto& s : d.spec["seeds"])
      if (s.is_number_unsigned()) spec_seeds.push_back(s.get<uint64_t>());

  for (auto& arm : d.arms) {
    arm.finetuned = !arm.data.empty();  // with from: its finetunes continued
    if (!arm.in_spec)  // unknown setup: finetuned when any seed has an adapter folder
      for (uint64_t s : seeds_on_disk(dir / "arms" / arm.name))
        arm.finetuned = arm.finetuned ||
                        fs::is_directory(dir / "arms" / arm.name / ("seed-" + std::to_string(s)) / "adapter");
    std::set<uint64_t> seeds = seeds_on_disk(dir / "arms" / arm.name);
    seeds.insert(spec_seeds.begin(), spec_seeds.end());
    std::vector<AnswerRecord> records;
    for (uint64_t s : seeds) {
      SeedData sd;
      sd.seed = s;
      load_seed(dir, arm, sd, d.metrics, &records, &d.notes);
      arm.seeds.push_back(std::move(sd));
    }
    auto it = results.find(arm.name);
    if (it != results.end()) {
      arm.numbers = it->second;
      if (arm.numbers->per_question.empty()) {  // an older arms.json: per question from the answers
        auto computed = compute_numbers(arm, records, d.metrics);
        if (computed) arm.numbers->per_question = computed->per_question;
      }
    } else {
      arm.numbers = compute_numbers(arm, records, d.metrics);
      arm.computed = arm.numbers.has_value();
      if (d.has_arms_json)
        d.notes.push_back("arm " + arm.name + ": not in arms.json" +
                          (arm.computed ? "; numbers recomputed from its eval folders" : ""));
    }
    if (arm.numbers && !std::isfinite(arm.numbers->misaligned_pct) && !records.empty())
      d.notes.push_back("arm " + arm.name + ": no eligible answer (" + d.metrics.coherent_metric + " > " +
                        fixed(d.metrics.coherent_above, 0) + " with an " +
                        d.metrics.aligned_metric + " score) in any seed, so its misaligned % is undefined");
  }
  if (!d.has_arms_json) d.notes.push_back("numbers recomputed from the eval folders (arms.json missing)");
  // The runner marks finished evaluations with eval_done.json; where it did so elsewhere, a seed
  // without the marker was interrupted (its answers are shown, arms.json leaves them out).
  bool runner_marks = false;
  for (const auto& arm : d.arms)
    for (const auto& s : arm.seeds) runner_marks = runner_marks || s.eval_done;
  if (runner_marks)
    for (const auto& arm : d.arms)
      for (const auto& s : arm.seeds)
        if (s.has_eval && !s.eval_done)
          d.notes.push_back("arm " + arm.name + ", seed " + std::to_string(s.seed) +
                            ": evaluation unfinished (no eval/eval_done.json); its answers are shown below but are "
                            "not in the arm's numbers");

  // Questions: arms.json order first, then as answers appear.
  std::map<std::string, size_t> qindex;
  auto add_question = [&](const std::string& id, const std::string& text) {
    auto [it, fresh] = qindex.emplace(id, d.question_ids.size());
    if (fresh) {
      d.question_ids.push_back(id);
      d.question_texts.push_back(text);
    } else if (d.question_texts[it->second].empty()) {
      d.question_texts[it->second] = text;
    }
  };
  for (const auto& arm : d.arms)
    if (arm.numbers)
      for (const auto& q : arm.numbers->per_question) add_question(q.question_id, "");
  for (const auto& arm : d.arms)
    for (const auto& s : arm.seeds)
      for (const auto& a : s.answers) add_question(a.question_id, a.question);
  d.solutions = load_solutions(dir);
  return d;
}

double finite_mean(const std::vector<double>& v) {
  double s = 0;
  size_t n = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++n;
  return n ? s / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace emlab::report_detail
