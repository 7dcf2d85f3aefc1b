// Private to src/report: everything the report shows, read from an experiment folder (layout in
// emlab/experiment.h). Reading never throws for a missing or bad part: it records a note instead.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/metrics.h"
#include "emlab/report.h"

namespace emlab::report_detail {

// One judged (or not yet judged) answer of an eval run.
struct ReportAnswer {
  std::string question_id;
  std::string question;              // the paraphrase as asked (without trigger)
  std::string answer;
  std::optional<double> aligned;     // none: not judged, refused/code, or failed
  std::optional<double> coherent;
  uint64_t seed = 0;                 // the arm's seed folder it came from
  size_t index = 0;                  // position in the seed's samples.jsonl (stable tie-break)
};

struct TrainPoint {
  double step = 0;
  double loss = 0;
  double probe = std::numeric_limits<double>::quiet_NaN();  // probe_projection at this step (NaN = none)
};

struct SeedData {
  uint64_t seed = 0;
  bool has_eval = false;                  // eval/samples.jsonl exists and was read
  bool eval_done = false;                 // eval/eval_done.json: the runner finished this evaluation
  bool has_train_log = false;             // adapter/train_log.jsonl exists and was read
  std::vector<ReportAnswer> answers;
  std::optional<RunSummary> summary;      // of the answers, with the report's thresholds
  std::vector<TrainPoint> train_log;      // rows with a step and a finite loss
};

// A row of arms.json's per_question (percentages 0..100; NaN = not defined).
struct QuestionResult {
  std::string question_id;
  double misaligned_pct = 0, ci_low = 0, ci_high = 0;
  int64_t n_eligible = 0;
  double coherence_mean = 0;
};

// A row of arms.json (see ArmResult in experiment.h), percentages 0..100.
// A row of arms.json's checkpoints: the finetune evaluated after `step` optimizer steps.
struct CheckpointNumbers {
  int64_t step = 0;
  int seeds = 0;
  double misaligned_pct = 0, ci_low = 0, ci_high = 0, coherence_mean = 0;
  double vulnerable_code_pct = 0;    // NaN = no code evaluation
  double logprob_gap = 0;            // eval.logprob_probe's gap (NaN = none)
};

struct ArmNumbers {
  int seeds = 0;
  int64_t samples = 0;
  double misaligned_pct = 0, ci_low = 0, ci_high = 0, coherence_mean = 0;
  std::vector<double> per_seed_pct;
  std::vector<QuestionResult> per_question;
  std::string sweep_of;              // a sweep arm: the arm it was expanded from ("" = none)
  int64_t sweep_layer = -1;          // its layer and scale
  double sweep_scale = 0;
  std::vector<CheckpointNumbers> checkpoints;  // eval.checkpoints, ascending steps (empty = none)
};

struct ArmData {
  std::string name;
  bool in_spec = false;            // listed in experiment.json
  std::string data;                // finetuning data from the spec ("" = none)
  std::string from;                // the arm whose finetunes it evaluates ("" = own)
  nlohmann::json eval;             // the spec's eval settings of the arm (null when unknown)
  std::optional<ArmNumbers> numbers;  // from arms.json, or recomputed (see computed)
  bool computed = false;           // numbers recomputed from the eval folders (not in arms.json)
  bool finetuned = false;          // trains its own adapters (spec: data and no from; else adapter/ found)
  std::vector<SeedData> seeds;     // seeds found or expected, ascending
};

// A solutions step of the run (OUT/solutions/<name>/seed-<s>/*.csv), per solution arm: the values of
// every seed at each x of a curve, and of each summary field.
struct SolutionsStep {
  std::string name;
  int seeds = 0;                                              // seed folders with a summary.csv
  std::vector<std::string> order;                             // solution arms, first-seen order
  // curve ("efficiency", "stability", "influence") -> arm -> x -> per-seed values
  std::map<std::string, std::map<std::string, std::map<double, std::vector<double>>>> curves;
  std::map<std::string, std::map<std::string, std::vector<double>>> summary;  // arm -> field -> values
};

struct ReportData {
  std::string dir;
  nlohmann::json spec;             // experiment.json (null when missing/unreadable)
  bool has_arms_json = false;
  MetricsOptions metrics;          // thresholds used
  std::string metrics_source;      // where the thresholds came from
  std::vector<ArmData> arms;       // spec order, then arms only in arms.json, then only on disk
  std::vector<std::string> question_ids;     // first-seen order over arms.json and answers
  std::vector<std::string> question_texts;   // a paraphrase per id ("" when unknown)
  std::vector<std::string> notes;  // missing or unreadable parts, in reading order
  std::vector<SolutionsStep> solutions;  // solutions steps found under OUT/solutions
};

// Reads the folder. Throws InputError only when it is not an experiment folder at all.
// Mean of the finite values (NaN when there are none).
double finite_mean(const std::vector<double>& v);

ReportData report_load(const std::string& experiment_dir, const ReportOptions& options);

// The page.
std::string report_render(const ReportData& data, const ReportOptions& options, const std::string& date);

}  // namespace emlab::report_detail
