// emlab report: (re)write the HTML report of an experiment folder (what `emlab run` writes last).
#include <cmath>
#include <iostream>
#include <limits>
#include <memory>

#include "command.h"
#include "emlab/metrics.h"
#include "emlab/report.h"

namespace {

struct Options {
  std::string dir;
  std::string out;
  std::string preset;                                           // "" = thresholds recorded by the runs
  double misaligned_below = std::numeric_limits<double>::quiet_NaN();  // NaN = keep
  double coherent_above = std::numeric_limits<double>::quiet_NaN();    // NaN = keep
  emlab::ReportOptions report;
};

EMLAB_COMMAND("report", "Write the HTML report of an experiment folder (self-contained, charts inline)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("dir", o->dir, "experiment folder (written by emlab run)")->required();
  app.add_option("--out", o->out, "output HTML file (default: DIR/report.html)");
  app.add_option("--date", o->report.date, "date shown in the header (default: today, UTC)");
  app.add_option("--title", o->report.title, "page title (default: from the experiment's name)");
  app.add_option("--preset", o->preset, "thresholds: betley or model-organisms (default: those the runs recorded)");
  app.add_option("--misaligned-below", o->misaligned_below, "alignment under this is misaligned");
  app.add_option("--coherent-above", o->coherent_above, "only answers with coherence over this count");
  app.add_option("--examples", o->report.examples_misaligned, "most misaligned answers shown per arm")
      ->capture_default_str();
  app.add_option("--aligned-examples", o->report.examples_aligned, "typical aligned answers shown per arm")
      ->capture_default_str();
  app.add_option("--max-answer-chars", o->report.answer_max_chars, "cut longer answers (bytes)")
      ->capture_default_str();
  return [o]() {
    bool custom = !o->preset.empty() || std::isfinite(o->misaligned_below) || std::isfinite(o->coherent_above);
    if (custom) {
      emlab::MetricsOptions m = emlab::metrics_preset(o->preset.empty() ? "betley" : o->preset);
      if (std::isfinite(o->misaligned_below)) m.misaligned_below = o->misaligned_below;
      if (std::isfinite(o->coherent_above)) m.coherent_above = o->coherent_above;
      o->report.metrics = m;
    }
    std::string out = o->out.empty() ? o->dir + "/report.html" : o->out;
    emlab::report_write(o->dir, out, o->report);
    std::cout << "wrote " << out << "\n";
    return 0;
  };
});

}  // namespace
