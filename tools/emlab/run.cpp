// emlab run: an experiment spec end to end (arms x seeds -> finetune -> sample -> judge -> report).
#include <filesystem>
#include <iostream>

#include "command.h"
#include "emlab/error.h"
#include "emlab/experiment.h"

namespace {

struct Options {
  std::string spec;
  std::string model;  // replaces the spec's model ("" = the spec's)
  emlab::ExperimentOptions run;
};

EMLAB_COMMAND("run", "Run an experiment YAML: finetune each arm per seed, sample, judge, write arms.csv and report.html",
              [](CLI::App& app) {
                auto o = std::make_shared<Options>();
                app.add_option("spec", o->spec, "experiment YAML (experiments/*.yaml)")->required();
                app.add_option("--out", o->run.out, "output folder (resumable: re-run to continue)")->required();
                app.add_option("--model", o->model,
                               "base model folder instead of the spec's (the same experiment on another pretraining)");
                app.add_option("--arms", o->run.only_arms, "only these arms")->delimiter(',');
                app.add_option("--max-seeds", o->run.max_seeds, "use only the first N seeds (0 = all)");
                app.add_option("--device", o->run.device, "cpu or cuda")->capture_default_str();
                app.add_option("--jobs", o->run.jobs,
                               "finetunes/evaluations at once, one CPU thread each (small models: the number of cores)")
                    ->capture_default_str();
                app.add_flag("!--no-report", o->run.report, "skip report.html");
                return [o]() {
                  auto spec = emlab::ExperimentSpec::load(o->spec, o->run.out);
                  if (!o->model.empty()) {
                    if (!std::filesystem::is_directory(o->model))
                      throw emlab::InputError("--model " + o->model + ": no such model folder");
                    spec.model = std::filesystem::absolute(o->model).lexically_normal().string();
                  }
                  auto rows = emlab::experiment_run(spec, o->run);
                  std::cout << emlab::arms_table(rows);
                  std::cout << "results: " << o->run.out << "/arms.csv";
                  if (o->run.report) std::cout << ", report: " << o->run.out << "/report.html";
                  std::cout << "\n";
                  return 0;
                };
              });

}  // namespace
