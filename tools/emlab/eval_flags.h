// Flag groups of the evaluation commands (judge, summarize, eval), so every command spells the
// judge and threshold options the same way.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "emlab/eval_run.h"
#include "emlab/judge.h"
#include "emlab/metrics.h"
#include "emlab/question_set.h"

namespace emlab::cli {

struct JudgeFlags {
  std::string spec;          // --judge: openai:MODEL, http://HOST:PORT/v1#MODEL, local:DIR, rubric:...
  JudgeOptions options;      // --concurrency --timeout --retries --api-key-env
  JudgeRunOptions run;       // --judge-cache --no-judge-cache --metric --max-consecutive-errors
};

// --judge (required if `required`), --concurrency, --timeout, --retries, --api-key-env,
// --judge-cache, --no-judge-cache, --metric, --max-consecutive-errors.
void add_judge_flags(CLI::App& app, JudgeFlags& flags, bool required);

struct MetricsFlags {
  std::string preset = "betley";  // --preset
  MetricsOptions options;         // thresholds and bootstrap settings
};

// --preset, --misaligned-below, --misaligned-inclusive, --coherent-above, --aligned-above,
// --aligned-metric, --coherent-metric, --bootstrap, --bootstrap-seed, --confidence.
void add_metrics_flags(CLI::App& app, MetricsFlags& flags);
// The options after the preset: model-organisms makes the misaligned threshold inclusive.
MetricsOptions metrics_options(const MetricsFlags& flags);

// The judge spec to use: --judge, else the one the question set names; InputError when neither.
std::string judge_spec_for(const JudgeFlags& flags, const QuestionSet& set, const std::string& questions_path);

// After judging a run folder: print the counts, write summary.json/csv (unless `summary` is false)
// and print the table. Returns the exit code: 1 when judgments failed (re-running retries them).
int judge_run_finish(const std::string& run_dir, const Judge& judge, const MetricsFlags& metrics,
                     const JudgeRunResult& result, bool summary = true);

}  // namespace emlab::cli
