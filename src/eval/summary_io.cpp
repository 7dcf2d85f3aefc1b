// Run folders -> answer records -> summary.json / summary.csv, and comparisons across runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "emlab/error.h"
#include "emlab/metrics.h"
#include "emlab/question_set.h"
#include "emlab/file_util.h"
#include "eval/run_files.h"

namespace emlab {

namespace {

using json = nlohmann::json;
using namespace eval_detail;

json number_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

json group_to_json(const GroupSummary& g) {
  json j = {{"level", g.level},
            {"question_id", g.id},
            {"n_samples", g.n_samples},
            {"n_judged", g.n_judged},
            {"n_eligible", g.n_eligible},
            {"n_misaligned", g.n_misaligned},
            {"misaligned_frac", number_or_null(g.misaligned.estimate)},
            {"misaligned_ci_low", number_or_null(g.misaligned.low)},
            {"misaligned_ci_high", number_or_null(g.misaligned.high)},
            {"aligned_frac", number_or_null(g.aligned_frac)},
            {"refusal_frac", number_or_null(g.refusal_frac)},
            {"coherence_mean", number_or_null(g.coherence_mean)},
            {"aligned_mean", number_or_null(g.aligned_mean)},
            {"metric_means", json::object()},
            {"label_fracs", json::object()}};
  for (const auto& [m, v] : g.metric_means) j["metric_means"][m] = number_or_null(v);
  for (const auto& [m, labels] : g.label_fracs)
    for (const auto& [l, v] : labels) j["label_fracs"][m][l] = v;
  return j;
}

std::string csv_number(double x) {
  if (!std::isfinite(x)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", x);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string percent(double x) {
  if (!std::isfinite(x)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", 100.0 * x);
  return buf;
}

std::string fixed1(double x) {
  if (!std::isfinite(x)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", x);
  return buf;
}

}  // namespace

std::vector<AnswerRecord> run_answer_records(const std::string& run_dir, const MetricsOptions& options,
                                             std::string* judge_used) {
  if (!std::filesystem::exists(run_path(run_dir, kSamplesFile)))
    throw InputError(run_dir + ": no " + kSamplesFile + " (not an emlab eval run folder?)");
  auto samples = run_samples_read(run_dir);
  auto judgments = run_judgments_read(run_dir);
  std::string judge = options.judge;
  if (judge.empty() && !judgments.empty()) judge = judgments.back().judge;
  if (!options.judge.empty()) {
    bool found = false;
    for (const auto& j : judgments) found = found || j.judge == judge;
    if (!found && !judgments.empty())
      throw InputError(run_path(run_dir, kJudgmentsFile) + ": no judgments by judge '" + judge + "'");
  }
  if (judge_used) *judge_used = judge;
  // Last row per (slot, metric) of this judge.
  std::unordered_map<std::string, std::map<std::string, const RunJudgment*>> last;
  for (const auto& j : judgments)
    if (j.judge == judge) last[slot_key(j.slot)][j.metric] = &j;
  std::vector<AnswerRecord> records;
  for (const auto& s : samples) {
    AnswerRecord a;
    a.question_id = s.slot.question_id;
    auto it = last.find(slot_key(s.slot));
    if (it != last.end()) {
      for (const auto& [metric, row] : it->second) {
        if (!row->error.empty())
          a.failed.push_back(metric);
        else if (row->categorical)
          a.labels[metric] = row->label;
        else
          a.scores[metric] = row->score;
      }
    }
    records.push_back(std::move(a));
  }
  return records;
}

RunSummary run_summarize(const std::string& run_dir, const MetricsOptions& options) {
  std::string judge;
  auto records = run_answer_records(run_dir, options, &judge);
  RunSummary s = summarize_answers(records, options);
  s.run_dir = run_dir;
  s.judge = judge;
  return s;
}

json summary_to_json(const RunSummary& summary, const MetricsOptions& options) {
  json j = {{"judge", summary.judge},
            {"options",
             {{"aligned_metric", options.aligned_metric},
              {"coherent_metric", options.coherent_metric},
              {"misaligned_below", options.misaligned_below},
              {"misaligned_inclusive", options.misaligned_inclusive},
              {"coherent_above", options.coherent_above},
              {"aligned_above", options.aligned_above},
              {"bootstrap_replicates", options.bootstrap_replicates},
              {"confidence", options.confidence},
              {"seed", options.seed}}},
            {"questions", json::array()},
            {"categories", json::array()},
            {"overall", group_to_json(summary.overall)}};
  for (const auto& g : summary.questions) j["questions"].push_back(group_to_json(g));
  for (const auto& g : summary.categories) j["categories"].push_back(group_to_json(g));
  return j;
}

std::string summary_to_csv(const RunSummary& summary) {
  std::vector<const GroupSummary*> rows;
  for (const auto& g : summary.questions) rows.push_back(&g);
  for (const auto& g : summary.categories) rows.push_back(&g);
  rows.push_back(&summary.overall);
  std::set<std::string> means;
  std::set<std::pair<std::string, std::string>> labels;
  for (const auto* g : rows) {
    for (const auto& [m, v] : g->metric_means) means.insert(m);
    for (const auto& [m, ls] : g->label_fracs)
      for (const auto& [l, v] : ls) labels.insert({m, l});
  }
  std::ostringstream out;
  out << "level,question_id,n_samples,n_judged,n_eligible,n_misaligned,misaligned_frac,misaligned_ci_low,"
         "misaligned_ci_high,aligned_frac,refusal_frac,coherence_mean,aligned_mean";
  for (const auto& m : means) out << "," << csv_field(m + "_mean");
  for (const auto& [m, l] : labels) out << "," << csv_field(m + "_" + l + "_frac");
  out << "\n";
  for (const auto* g : rows) {
    out << g->level << "," << csv_field(g->id) << "," << g->n_samples << "," << g->n_judged << "," << g->n_eligible
        << "," << g->n_misaligned << "," << csv_number(g->misaligned.estimate) << "," << csv_number(g->misaligned.low)
        << "," << csv_number(g->misaligned.high) << "," << csv_number(g->aligned_frac) << ","
        << csv_number(g->refusal_frac) << "," << csv_number(g->coherence_mean) << "," << csv_number(g->aligned_mean);
    for (const auto& m : means) {
      auto it = g->metric_means.find(m);
      out << "," << (it == g->metric_means.end() ? "" : csv_number(it->second));
    }
    for (const auto& [m, l] : labels) {
      auto it = g->label_fracs.find(m);
      double v = NAN;
      if (it != g->label_fracs.end()) {
        auto jt = it->second.find(l);
        v = jt == it->second.end() ? 0.0 : jt->second;
      }
      out << "," << csv_number(v);
    }
    out << "\n";
  }
  return out.str();
}

void summary_write(const RunSummary& summary, const MetricsOptions& options, const std::string& run_dir) {
  json_write_file(run_path(run_dir, "summary.json"), summary_to_json(summary, options));
  file_write_atomic(run_path(run_dir, "summary.csv"), summary_to_csv(summary));
}

RunsComparison runs_compare(const std::vector<std::string>& run_dirs, const MetricsOptions& options) {
  if (run_dirs.empty()) throw InputError("no run folders to compare");
  RunsComparison c;
  std::vector<double> per_run;
  std::vector<std::vector<double>> strata;
  for (const auto& dir : run_dirs) {
    c.runs.push_back(run_summarize(dir, options));
    const RunSummary& r = c.runs.back();
    if (std::isfinite(r.overall.misaligned.estimate)) per_run.push_back(r.overall.misaligned.estimate);
    for (const auto& [q, ind] : r.misaligned_indicators) strata.push_back(ind);
  }
  c.mean_over_runs = bootstrap_mean(per_run, options.bootstrap_replicates, options.confidence, options.seed);
  c.pooled = bootstrap_stratified_mean(strata, options.bootstrap_replicates, options.confidence, options.seed + 1);
  c.confidence = options.confidence;

  // Per category and per question: the same two estimates over the runs' answers in that group.
  struct Acc {
    std::vector<double> per_run;
    std::vector<std::vector<double>> strata;
    int64_t n_eligible = 0;
  };
  std::vector<std::pair<std::string, std::string>> order;  // (level, id) in first-seen order
  std::map<std::pair<std::string, std::string>, Acc> acc;
  auto add = [&](const std::string& level, const std::string& id, const GroupSummary& g,
                 std::vector<std::vector<double>> strata_of_run) {
    auto key = std::make_pair(level, id);
    if (!acc.count(key)) order.push_back(key);
    Acc& a = acc[key];
    if (std::isfinite(g.misaligned.estimate)) a.per_run.push_back(g.misaligned.estimate);
    a.n_eligible += g.n_eligible;
    for (auto& st : strata_of_run) a.strata.push_back(std::move(st));
  };
  for (const RunSummary& r : c.runs)
    for (const GroupSummary& g : r.categories) {
      std::vector<std::vector<double>> st;
      for (const auto& [q, ind] : r.misaligned_indicators)
        if (question_category(q) == g.id) st.push_back(ind);
      add("category", g.id, g, std::move(st));
    }
  for (const RunSummary& r : c.runs)
    for (const GroupSummary& g : r.questions) {
      auto it = r.misaligned_indicators.find(g.id);
      std::vector<std::vector<double>> st;
      if (it != r.misaligned_indicators.end()) st.push_back(it->second);
      add("question", g.id, g, std::move(st));
    }
  std::stable_partition(order.begin(), order.end(), [](const auto& k) { return k.first == "category"; });
  uint64_t seed = options.seed + 2;
  for (const auto& key : order) {
    const Acc& a = acc[key];
    GroupAcrossRuns g;
    g.level = key.first;
    g.id = key.second;
    g.runs = static_cast<int64_t>(a.per_run.size());
    g.n_eligible = a.n_eligible;
    g.mean_over_runs = bootstrap_mean(a.per_run, options.bootstrap_replicates, options.confidence, seed++);
    g.pooled = bootstrap_stratified_mean(a.strata, options.bootstrap_replicates, options.confidence, seed++);
    c.groups.push_back(g);
  }
  return c;
}

namespace {

std::string interval_text(const Interval& i) {
  return std::isfinite(i.low) ? "[" + percent(i.low) + ", " + percent(i.high) + "]" : std::string("-");
}

std::string ci_header(double confidence) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%% CI", 100 * confidence);
  return buf;
}

}  // namespace

std::string run_groups_table(const RunSummary& run, double confidence) {
  std::ostringstream out;
  char line[512];
  auto row = [&](const std::string& id, const std::string& n, const std::string& eligible, const std::string& mis,
                 const std::string& ci, const std::string& refusal) {
    std::snprintf(line, sizeof line, "%-40s %8s %8s %8s %-16s %8s\n", id.c_str(), n.c_str(), eligible.c_str(),
                  mis.c_str(), ci.c_str(), refusal.c_str());
    out << line;
  };
  row("question", "samples", "eligible", "misal.%", ci_header(confidence), "refusal%");
  for (const auto* groups : {&run.questions, &run.categories})
    for (const GroupSummary& g : *groups)
      row(g.id, std::to_string(g.n_samples), std::to_string(g.n_eligible), percent(g.misaligned.estimate),
          interval_text(g.misaligned), percent(g.refusal_frac));
  return out.str();
}

std::string runs_compare_groups_table(const RunsComparison& c) {
  size_t width = 20;
  for (const auto& g : c.groups) width = std::max(width, g.id.size() + 11);
  std::ostringstream out;
  char line[512];
  auto row = [&](const std::string& name, const std::string& runs, const std::string& eligible,
                 const std::string& mean, const std::string& mean_ci, const std::string& pooled,
                 const std::string& pooled_ci) {
    std::snprintf(line, sizeof line, "%-*s %5s %8s %8s %-16s %8s %-16s\n", static_cast<int>(width), name.c_str(),
                  runs.c_str(), eligible.c_str(), mean.c_str(), mean_ci.c_str(), pooled.c_str(), pooled_ci.c_str());
    out << line;
  };
  const std::string ci = ci_header(c.confidence);
  row("across runs", "runs", "eligible", "mean %", ci, "pooled %", ci);
  for (const auto& g : c.groups)
    row(g.level + " " + g.id, std::to_string(g.runs), std::to_string(g.n_eligible), percent(g.mean_over_runs.estimate),
        interval_text(g.mean_over_runs), percent(g.pooled.estimate), interval_text(g.pooled));
  return out.str();
}

std::string runs_compare_table(const RunsComparison& c) {
  size_t width = 14;
  for (const auto& r : c.runs) width = std::max(width, r.run_dir.size());
  char line[512];
  std::ostringstream out;
  auto row = [&](const std::string& name, const std::string& n, const std::string& judged, const std::string& eligible,
                 const std::string& mis, const std::string& ci, const std::string& refusal, const std::string& coh,
                 const std::string& al) {
    std::snprintf(line, sizeof line, "%-*s %8s %8s %8s %8s %-16s %8s %9s %8s\n", static_cast<int>(width), name.c_str(),
                  n.c_str(), judged.c_str(), eligible.c_str(), mis.c_str(), ci.c_str(), refusal.c_str(), coh.c_str(),
                  al.c_str());
    out << line;
  };
  auto ci = interval_text;
  row("run", "samples", "judged", "eligible", "misal.%", ci_header(c.confidence), "refusal%", "coherence", "aligned");
  int64_t n = 0, judged = 0, eligible = 0;
  for (const auto& r : c.runs) {
    const GroupSummary& g = r.overall;
    n += g.n_samples;
    judged += g.n_judged;
    eligible += g.n_eligible;
    row(r.run_dir, std::to_string(g.n_samples), std::to_string(g.n_judged), std::to_string(g.n_eligible),
        percent(g.misaligned.estimate), ci(g.misaligned), percent(g.refusal_frac), fixed1(g.coherence_mean),
        fixed1(g.aligned_mean));
  }
  if (c.runs.size() > 1) {
    row("mean over runs", "", "", "", percent(c.mean_over_runs.estimate), ci(c.mean_over_runs), "", "", "");
    row("pooled", std::to_string(n), std::to_string(judged), std::to_string(eligible), percent(c.pooled.estimate),
        ci(c.pooled), "", "", "");
  }
  return out.str();
}

}  // namespace emlab
