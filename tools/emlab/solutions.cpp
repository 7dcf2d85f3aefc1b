// emlab solutions compare: loss, efficiency, stability, influence and direction of trained
// solutions of one narrow task (emlab/solutions.h); table on stdout, CSV and SVG curves in --out.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli_options.h"
#include "command.h"
#include "emlab/chat_model.h"
#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/report.h"
#include "emlab/solutions.h"

namespace fs = std::filesystem;

namespace {

struct Options {
  emlab::cli::ModelFlags model;
  std::string data, text, direction, out;
  std::vector<std::string> solutions;
  int64_t max_examples = 200, max_text = 200;
  double holdout = 0;           // use this held-out split of --data (as train --holdout made it)
  uint64_t split_seed = 0;      // ... with this training seed
  emlab::SolutionsCompareOptions compare;
};

std::string fmt(double x, int digits = 4) {
  if (!std::isfinite(x)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

EMLAB_COMMAND("solutions compare",
              "Loss, efficiency, stability, influence and direction of steering vectors or LoRA adapters at one norm",
              [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  emlab::cli::add_model_flags(app, o->model);
  app.add_option("solutions", o->solutions, "solution folders as emlab train writes them (one kind)")->required();
  app.add_option("--data", o->data, "the narrow dataset (chat JSONL; give held-out rows)")->required();
  app.add_option("--holdout", o->holdout,
                 "use the held-out split of --data that `train --holdout F --seed S` made (give --split-seed S)");
  app.add_option("--split-seed", o->split_seed, "the training seed of that split")->capture_default_str();
  app.add_option("--text", o->text, "generic text for the influence (JSONL {\"text\"} or chat rows)");
  app.add_option("--direction", o->direction, "direction file: the solutions' shift of the residual stream against it");
  app.add_option("--direction-layer", o->compare.direction_layer, "its layer (default: best_layer, else the middle)");
  app.add_option("--norm", o->compare.norm, "the common norm (default: the mean of the solutions' norms)");
  app.add_option("--scales", o->compare.scales, "scales of the efficiency and influence curves")->capture_default_str();
  app.add_option("--epsilons", o->compare.epsilons, "perturbation sizes of the stability")->capture_default_str();
  app.add_option("--perturbations", o->compare.perturbation_seeds, "perturbations per epsilon")->capture_default_str();
  app.add_option("--seed", o->compare.seed, "seed of the perturbations")->capture_default_str();
  app.add_option("--batch-size", o->compare.batch_size, "examples per forward pass")->capture_default_str();
  app.add_option("--max-examples", o->max_examples, "narrow rows used (0 = all)")->capture_default_str();
  app.add_option("--max-text", o->max_text, "text rows used (0 = all)")->capture_default_str();
  app.add_option("--out", o->out, "folder for summary.csv, efficiency/stability/influence.csv and .svg");
  return [o]() {
    auto chat = emlab::cli::load_chat_model(o->model);
    emlab::CausalLM& model = chat->model();
    std::vector<emlab::Solution> solutions;
    for (const auto& dir : o->solutions) solutions.push_back(emlab::solution_load(dir, model));
    const emlab::SftDataset narrow =
        emlab::solutions_rows(*chat, o->data, o->holdout, o->split_seed, o->max_examples);
    const emlab::SftDataset text =
        o->text.empty() ? emlab::SftDataset{} : emlab::solutions_rows(*chat, o->text, 0, 0, o->max_text);
    std::optional<emlab::Direction> direction;
    if (!o->direction.empty()) direction = emlab::direction_load(o->direction);
    const auto results =
        emlab::solutions_compare(model, solutions, narrow, text, direction ? &*direction : nullptr, o->compare);

    std::printf("%-24s %10s %10s %10s %10s %12s %12s %10s %10s\n", "solution", "norm was", "norm", "loss", "base loss",
                "stab@0.1", "KL@s=1", "cos(dir)", "proj(dir)");
    for (const auto& r : results) {
      double stab = NAN, kl = NAN;
      for (const auto& s : r.stability)
        if (std::abs(s.eps - 0.1) < 1e-9) stab = s.mean;
      for (const auto& [m, v] : r.influence)
        if (m == 1.0) kl = v;
      std::printf("%-24s %10s %10s %10s %10s %12s %12s %10s %10s\n", r.name.substr(0, 24).c_str(),
                  fmt(r.original_norm).c_str(), fmt(r.norm).c_str(), fmt(r.loss).c_str(), fmt(r.loss_base).c_str(),
                  fmt(stab).c_str(), fmt(kl, 6).c_str(), fmt(r.shift_cosine, 3).c_str(), fmt(r.shift_projection, 3).c_str());
    }
    if (!o->out.empty()) {
      emlab::solutions_write(o->out, results);
      const fs::path out(o->out);
      std::vector<emlab::ReportCurve> eff, stab, infl;
      for (const auto& r : results) {
        emlab::ReportCurve e{r.name, {}, {}}, s{r.name, {}, {}}, k{r.name, {}, {}};
        for (const auto& [m, v] : r.efficiency) e.x.push_back(m), e.y.push_back(v);
        for (const auto& p : r.stability) s.x.push_back(std::log10(p.eps)), s.y.push_back(p.mean);
        for (const auto& [m, v] : r.influence) k.x.push_back(m), k.y.push_back(v);
        eff.push_back(e), stab.push_back(s), infl.push_back(k);
      }
      emlab::file_write_atomic(out / "efficiency.svg",
                               emlab::report_line_chart_svg(eff, "Loss on the narrow data against the scale", "scale s",
                                                            "loss"));
      emlab::file_write_atomic(out / "stability.svg",
                               emlab::report_line_chart_svg(stab, "Relative loss increase under perturbation",
                                                            "log10 epsilon", "(L_pert - L) / (L_base - L)"));
      if (!text.examples.empty())
        emlab::file_write_atomic(out / "influence.svg",
                                 emlab::report_line_chart_svg(infl, "KL(base || with the solution) on generic text",
                                                              "scale s", "KL per token"));
      std::cout << "written: " << o->out << "/summary.csv and the curves (.csv, .svg)\n";
    }
    return 0;
  };
});

}  // namespace
