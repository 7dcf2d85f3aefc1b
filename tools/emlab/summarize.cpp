// emlab summarize: compare run folders (seeds, conditions) in one table with bootstrap intervals.
#include <iostream>

#include "command.h"
#include "emlab/error.h"
#include "eval_flags.h"

namespace {

struct Options {
  std::vector<std::string> runs;
  emlab::cli::MetricsFlags metrics;
  std::string judge;
  bool by_question = false;
  bool write = false;
};

EMLAB_COMMAND("summarize", "Compare evaluation runs: misaligned fraction with bootstrap intervals (95% by default)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("runs", o->runs, "run folders (samples.jsonl + judgments.jsonl)")->required();
  emlab::cli::add_metrics_flags(app, o->metrics);
  app.add_option("--judge", o->judge, "use this judge's judgments (default: the last judge of each run)");
  app.add_flag("--by-question", o->by_question, "also print one line per question and category of each run, and of all runs together");
  app.add_flag("--write", o->write, "rewrite summary.json/summary.csv in each run folder");
  return [o]() {
    emlab::MetricsOptions mo = emlab::cli::metrics_options(o->metrics);
    mo.judge = o->judge;
    emlab::RunsComparison c = emlab::runs_compare(o->runs, mo);
    std::cout << emlab::runs_compare_table(c);
    if (o->by_question) {
      for (const auto& run : c.runs) {
        std::cout << "\n" << run.run_dir << " (judge " << run.judge << ")\n";
        std::cout << emlab::run_groups_table(run, mo.confidence);
      }
      if (c.runs.size() > 1) std::cout << "\n" << emlab::runs_compare_groups_table(c);
    }
    if (o->write)
      for (const auto& run : c.runs) emlab::summary_write(run, mo, run.run_dir);
    return 0;
  };
});

}  // namespace
