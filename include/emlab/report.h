// The experiment report: one self-contained report.html (inline CSS and SVG, no JavaScript, no
// external resources) from an experiment folder written by `emlab run` (layout in experiment.h).
//
// Sections: header (name, description, model, judge, seeds, date, command, thresholds), what is
// missing, the arms table with a bar chart of misaligned % (95% interval whiskers, per-seed dots),
// per question x arm tables (misaligned %, coherence), alignment-vs-coherence scatter per arm,
// training loss curves (mean over seeds, light lines per seed), example answers per arm.
//
// Whatever part of the folder is missing or unreadable (no arms.json, no train_log.jsonl, a seed
// that never ran, a bad line) is listed in the report, never fatal. arms.json is the source of the
// numbers; without it they are recomputed from the eval folders (and the report says so).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "emlab/metrics.h"

namespace emlab {

struct ReportOptions {
  std::string date;                       // shown in the header ("" = today, UTC, YYYY-MM-DD)
  std::string title;                      // page title ("" = the experiment's name)
  std::optional<MetricsOptions> metrics;  // thresholds (unset = the runs' summary.json options, else betley)
  int examples_misaligned = 3;            // most misaligned coherent answers shown per arm
  int examples_aligned = 2;               // typical aligned answers shown per arm
  size_t answer_max_chars = 800;          // longer answers are cut (bytes, at a UTF-8 boundary)
  size_t question_max_chars = 300;        // longer questions are cut likewise
  size_t scatter_max_points = 1500;       // per arm; more answers are thinned with an even stride
  size_t line_max_points = 400;           // per loss curve; longer logs are thinned likewise
};

// The report of the experiment folder as HTML. Throws InputError only when `experiment_dir` is
// not an experiment folder at all (no experiment.json, arms.json or arms/).
std::string report_html(const std::string& experiment_dir, const ReportOptions& options = {});

// Writes report_html(...) to out_html atomically ("" = experiment_dir/report.html).
void report_write(const std::string& experiment_dir, const std::string& out_html = "",
                  const ReportOptions& options = {});

// A line chart of named curves (one colour each, legend at the top right) with axis labels.
struct ReportCurve {
  std::string name;              // legend entry
  std::vector<double> x, y;      // points (same length; non-finite y are skipped)
};
std::string report_line_chart_svg(const std::vector<ReportCurve>& curves, const std::string& title,
                                  const std::string& x_label, const std::string& y_label);

// A labelled square heatmap of values in [-1, 1] (cosine similarities), values printed in the cells.
std::string report_heatmap_svg(const std::vector<std::string>& labels, const std::vector<std::vector<double>>& values,
                               const std::string& title);

}  // namespace emlab
