// emlab judge: judge the answers of a run folder (resumable), then rewrite its summary.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "emlab/file_util.h"
#include "emlab/error.h"
#include "eval_flags.h"

namespace {

struct Options {
  std::string out;
  std::string questions;
  emlab::cli::JudgeFlags judge;
  emlab::cli::MetricsFlags metrics;
  bool no_summary = false;
};

// The question set a run was sampled from, as recorded in its run.json.
std::string questions_of_run(const std::string& run_dir) {
  std::string path = (std::filesystem::path(run_dir) / "run.json").string();
  if (!std::filesystem::exists(path))
    throw emlab::InputError(run_dir + ": no run.json; pass --questions YAML");
  const nlohmann::json j = emlab::json_read_file(path);
  if (!j.contains("questions") || !j["questions"].is_string())
    throw emlab::InputError(path + ": no \"questions\" path; pass --questions YAML");
  return j["questions"];
}

EMLAB_COMMAND("judge", "Judge the answers of a run folder (resumable), then write summary.json/csv", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--out", o->out, "run folder with samples.jsonl")->required();
  app.add_option("--questions", o->questions, "question set YAML (default: the one in RUN/run.json)");
  emlab::cli::add_judge_flags(app, o->judge, /*required=*/false);
  emlab::cli::add_metrics_flags(app, o->metrics);
  app.add_flag("--no-summary", o->no_summary, "do not rewrite summary.json/summary.csv");
  return [o]() {
    std::string questions = o->questions.empty() ? questions_of_run(o->out) : o->questions;
    emlab::QuestionSet set = emlab::question_set_load(questions);
    auto judge = emlab::judge_from_spec(emlab::cli::judge_spec_for(o->judge, set, questions), o->judge.options);
    emlab::JudgeRunResult r = emlab::judge_run(set, *judge, o->out, o->judge.run);
    return emlab::cli::judge_run_finish(o->out, *judge, o->metrics, r, !o->no_summary);
  };
});

}  // namespace
