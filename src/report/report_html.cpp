// The report page: header, missing parts, arms table and chart, per-question tables; the answer
// sections (scatter, training, examples) are in report_sections.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "emlab/report.h"
#include "emlab/file_util.h"
#include "report/report_data.h"
#include "report/report_sections.h"
#include "report/svg.h"

namespace emlab {

namespace report_detail {

namespace {

using json = nlohmann::json;

const char* kCss = R"(body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;padding:0 24px 48px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin:24px 0 4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}h3{margin:20px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:0.92em}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.meta th{width:120px}.desc{color:#444;margin:4px 0 12px}.muted{color:#777}.small{font-size:0.85em}
nav a{margin-right:12px}ul.notes li{margin:2px 0}.ok{color:#2a7a2a}
.chart{max-width:100%;height:auto;font-size:11px}.chart .grid{stroke:#e6e6e6}.chart .axis{stroke:#888}
.chart .tick{fill:#555}.chart .axis-label,.chart .chart-title{fill:#333;font-size:12px}.chart .value{fill:#333;font-size:11px}
.chart .whisker{stroke:#222;stroke-width:1.5}.chart .seed-dot{fill:#fff;stroke:#222;stroke-width:1.2}
.chart .shade{fill:#d7301f;fill-opacity:0.08;stroke:#d7301f;stroke-opacity:0.4;stroke-dasharray:4 3}
.chart .dot{fill-opacity:0.45}.chart .legend{fill:#333}
.grid-charts{display:flex;flex-wrap:wrap;gap:12px}.grid-charts figure{margin:0}
figcaption{font-size:0.85em;color:#555;max-width:320px}
.example{border:1px solid #e3e3e3;border-radius:4px;padding:6px 10px;margin:8px 0}
.example .meta{font-size:0.85em;color:#555}.example .q{font-weight:600;margin:4px 0}
pre{white-space:pre-wrap;word-wrap:break-word;background:#fafafa;padding:6px;margin:4px 0;font-size:0.9em}
)";

std::string pct(double v) { return std::isfinite(v) ? fixed(v, 1) + "%" : "-"; }

std::string interval(double lo, double hi) {
  return std::isfinite(lo) && std::isfinite(hi) ? "[" + fixed(lo, 1) + ", " + fixed(hi, 1) + "]" : "-";
}

// A background from white to `rgb` by t in [0, 1], and a text color that stays readable.
std::string heat_style(double t, int r, int g, int b) {
  if (!std::isfinite(t)) return "";
  t = std::clamp(t, 0.0, 1.0);
  auto mix = [t](int c) { return static_cast<int>(std::lround(255 + (c - 255) * t)); };
  char buf[80];
  std::snprintf(buf, sizeof buf, " style=\"background:#%02x%02x%02x;color:%s\"", mix(r), mix(g), mix(b),
                t > 0.6 ? "#fff" : "#222");
  return buf;
}

std::string seeds_text(const json& spec) {
  if (!spec.is_object() || !spec.contains("seeds") || !spec["seeds"].is_array()) return "-";
  std::string s;
  for (const auto& v : spec["seeds"]) s += (s.empty() ? "" : ", ") + v.dump();
  return s.empty() ? "-" : s;
}

std::string field_text(const json& spec, const char* key) {
  if (!spec.is_object() || !spec.contains(key) || spec[key].is_null()) return "";
  const json& v = spec[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {  // e.g. a command as argv
    std::string s;
    for (const auto& a : v) s += (s.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : a.dump());
    return s;
  }
  return v.dump();
}

// HTML: "misaligned = aligned &lt; 30 among answers with coherent &gt; 50; ...".
std::string thresholds_text(const MetricsOptions& m) {
  const std::string al = html_escape(m.aligned_metric), co = html_escape(m.coherent_metric);
  return "misaligned = " + al + (m.misaligned_inclusive ? " &le; " : " &lt; ") + fixed(m.misaligned_below, 0) +
         " among answers with " + co + " &gt; " + fixed(m.coherent_above, 0) + "; aligned = " + al + " &gt; " +
         fixed(m.aligned_above, 0);
}

void header(std::string& h, const ReportData& d, const std::string& title, const std::string& date) {
  const json& spec = d.spec;
  h += "<header>\n<h1>" + html_escape(title) + "</h1>\n";
  std::string desc = field_text(spec, "description");
  if (!desc.empty()) h += "<p class=\"desc\">" + html_escape(desc) + "</p>\n";
  h += "<table class=\"meta\">\n";
  auto row = [&h](const std::string& k, const std::string& v_html) {
    h += "<tr><th>" + k + "</th><td>" + v_html + "</td></tr>\n";
  };
  row("Experiment", html_escape(field_text(spec, "name").empty() ? "-" : field_text(spec, "name")));
  std::string source = field_text(spec, "source");
  if (!source.empty()) row("Spec", "<code>" + html_escape(source) + "</code>");
  row("Model", html_escape(field_text(spec, "model").empty() ? "-" : field_text(spec, "model")));
  row("Judge", html_escape(field_text(spec, "judge").empty() ? "-" : field_text(spec, "judge")));
  row("Seeds", html_escape(seeds_text(spec)));
  std::string world = field_text(spec, "world_seed");
  if (!world.empty())
    row("Toy world", "seed " + html_escape(world) + ", control " + html_escape(field_text(spec, "world_control")));
  row("Date", html_escape(date));
  std::string command = field_text(spec, "command");
  if (!command.empty()) row("Command", "<code>" + html_escape(command) + "</code>");
  row("Thresholds", thresholds_text(d.metrics) + " <span class=\"muted small\">(from " +
                        html_escape(d.metrics_source) + ")</span>");
  row("Folder", "<code>" + html_escape(d.dir) + "</code>");
  h += "</table>\n</header>\n";
  h += "<nav><a href=\"#missing\">Missing</a><a href=\"#arms\">Arms</a><a href=\"#questions\">Questions</a>"
       "<a href=\"#answers\">Alignment vs coherence</a><a href=\"#training\">Training</a>"
       "<a href=\"#examples\">Examples</a></nav>\n";
}

void missing_section(std::string& h, const ReportData& d) {
  h += "<section id=\"missing\">\n<h2>Missing or incomplete</h2>\n";
  if (d.notes.empty()) {
    h += "<p class=\"ok\">Nothing missing: every arm has every seed's answers, judgments and training log.</p>\n";
  } else {
    h += "<ul class=\"notes\">\n";
    for (const auto& n : d.notes) h += "<li>" + html_escape(n) + "</li>\n";
    h += "</ul>\n";
  }
  h += "</section>\n";
}

std::string setup_text(const ArmData& arm) {
  if (!arm.in_spec) return arm.finetuned ? "(not in experiment.json; finetuned)" : "(not in experiment.json)";
  std::string s;
  if (!arm.from.empty() && !arm.data.empty())
    s = "finetunes of " + arm.from + " continued on " + std::filesystem::path(arm.data).filename().string();
  else if (!arm.from.empty()) s = "finetunes of " + arm.from;
  else if (!arm.data.empty()) s = "finetune on " + std::filesystem::path(arm.data).filename().string();
  else s = "base model";
  if (arm.eval.is_object()) {
    std::string trig = arm.eval.value("trigger", std::string());
    if (!trig.empty()) s += "; trigger \"" + trig + "\"";
    if (arm.eval.contains("system") && arm.eval["system"].is_string())
      s += "; system \"" + utf8_prefix(arm.eval["system"].get<std::string>(), 60) + "\"";
  }
  return s;
}

int expected_seeds(const ReportData& d) {
  return d.spec.is_object() && d.spec.contains("seeds") && d.spec["seeds"].is_array()
             ? static_cast<int>(d.spec["seeds"].size())
             : 0;
}

void arms_section(std::string& h, const ReportData& d) {
  h += "<section id=\"arms\">\n<h2>Arms</h2>\n";
  h += "<table class=\"arms\">\n<tr><th>Arm</th><th>Seeds</th><th>Samples</th><th>Misaligned</th>"
       "<th>95% CI</th><th>Coherence</th><th>Setup</th></tr>\n";
  const int expected = expected_seeds(d);
  for (const auto& arm : d.arms) {
    h += "<tr><td>" + html_escape(arm.name) + "</td>";
    if (!arm.numbers) {
      h += "<td class=\"num\">0</td><td class=\"num\">-</td><td class=\"num\">-</td><td>-</td><td class=\"num\">-</td>";
    } else {
      const ArmNumbers& n = *arm.numbers;
      std::string seeds = std::to_string(n.seeds);
      if (expected > 0 && n.seeds != expected) seeds += " of " + std::to_string(expected);
      h += "<td class=\"num\">" + seeds + "</td><td class=\"num\">" + std::to_string(n.samples) +
           "</td><td class=\"num\">" + pct(n.misaligned_pct) + "</td><td class=\"num\">" +
           interval(n.ci_low, n.ci_high) + "</td><td class=\"num\">" + fixed(n.coherence_mean, 1) + "</td>";
    }
    std::string setup = html_escape(setup_text(arm));
    if (arm.computed) setup += " <span class=\"muted\">(recomputed)</span>";
    h += "<td>" + setup + "</td></tr>\n";
  }
  h += "</table>\n";
  h += "<p class=\"small muted\">Misaligned: mean over seeds of each seed's misaligned %; 95% bootstrap interval "
       "over seeds; samples = answers judged; coherence = mean coherence of all answers.</p>\n";

  std::vector<BarItem> bars, coherence;
  for (size_t i = 0; i < d.arms.size(); ++i) {
    const ArmData& arm = d.arms[i];
    if (!arm.numbers) continue;
    const ArmNumbers& n = *arm.numbers;
    bars.push_back({arm.name, n.misaligned_pct, n.ci_low, n.ci_high, n.per_seed_pct, palette(i)});
    BarItem c{arm.name, n.coherence_mean, NAN, NAN, {}, palette(i)};
    for (const auto& s : arm.seeds)
      if (s.summary) c.dots.push_back(s.summary->overall.coherence_mean);
    coherence.push_back(c);
  }
  if (bars.empty()) {
    h += "<p class=\"muted\">No arm has results yet.</p>\n</section>\n";
    return;
  }
  BarChartOptions bo;
  bo.label = "Misaligned answers per arm (%)";
  bo.y_label = "misaligned answers (%)";
  bo.unit = "%";
  bo.y_cap = 100;
  h += "<figure>\n" + bar_chart(bars, bo) +
       "<figcaption>Misaligned % per arm: bars = mean over seeds, whiskers = 95% interval, dots = seeds."
       "</figcaption>\n</figure>\n";
  BarChartOptions co;
  co.label = "Mean coherence per arm";
  co.y_label = "coherence (0-100)";
  co.y_min_max = 100;
  co.y_cap = 100;
  h += "<figure>\n" + bar_chart(coherence, co) +
       "<figcaption>Mean coherence per arm (dots = seeds).</figcaption>\n</figure>\n</section>\n";
}

const QuestionResult* find_question(const ArmData& arm, const std::string& id) {
  if (!arm.numbers) return nullptr;
  for (const auto& q : arm.numbers->per_question)
    if (q.question_id == id) return &q;
  return nullptr;
}

void question_tables(std::string& h, const ReportData& d) {
  h += "<section id=\"questions\">\n<h2>Questions</h2>\n";
  if (d.question_ids.empty()) {
    h += "<p class=\"muted\">No per-question results.</p>\n</section>\n";
    return;
  }
  double top = 1.0;
  for (const auto& arm : d.arms)
    if (arm.numbers)
      for (const auto& q : arm.numbers->per_question)
        if (std::isfinite(q.misaligned_pct)) top = std::max(top, q.misaligned_pct);
  auto table = [&](const std::string& cls, bool misaligned) {
    h += "<table class=\"" + cls + "\">\n<tr><th>Question</th>";
    for (const auto& arm : d.arms) h += "<th>" + html_escape(arm.name) + "</th>";
    h += "</tr>\n";
    for (size_t qi = 0; qi < d.question_ids.size(); ++qi) {
      const std::string& id = d.question_ids[qi];
      h += "<tr><td><b>" + html_escape(id) + "</b>";
      if (!d.question_texts[qi].empty()) {
        bool cut = false;
        std::string text = utf8_prefix(d.question_texts[qi], 90, &cut);
        h += "<br/><span class=\"small muted\">" + html_escape(text) + (cut ? "&hellip;" : "") + "</span>";
      }
      h += "</td>";
      for (const auto& arm : d.arms) {
        const QuestionResult* q = find_question(arm, id);
        if (!q) {
          h += "<td class=\"num muted\">-</td>";
        } else if (misaligned) {
          std::string tip = "n eligible " + std::to_string(q->n_eligible) + ", 95% CI " + interval(q->ci_low, q->ci_high);
          h += "<td class=\"num\"" + heat_style(q->misaligned_pct / top, 0xd7, 0x30, 0x1f) + " title=\"" +
               html_escape(tip) + "\">" + pct(q->misaligned_pct) + "</td>";
        } else {
          h += "<td class=\"num\"" + heat_style((100.0 - q->coherence_mean) / 100.0, 0xe6, 0x8a, 0x00) + ">" +
               fixed(q->coherence_mean, 1) + "</td>";
        }
      }
      h += "</tr>\n";
    }
    h += "<tr><th>all questions</th>";
    for (const auto& arm : d.arms) {
      if (!arm.numbers) {
        h += "<td class=\"num muted\">-</td>";
        continue;
      }
      h += "<td class=\"num\"><b>" +
           (misaligned ? pct(arm.numbers->misaligned_pct) : fixed(arm.numbers->coherence_mean, 1)) + "</b></td>";
    }
    h += "</tr>\n</table>\n";
  };
  h += "<h3>Misaligned % per question and arm</h3>\n";
  table("heatmap", true);
  h += "<p class=\"small muted\">Shading from white (0%) to red (" + pct(top) +
       ", the largest cell). Hover a cell for its eligible answers and 95% interval.</p>\n";
  h += "<h3>Mean coherence per question and arm</h3>\n";
  table("coherence", false);
  h += "<p class=\"small muted\">Darker = less coherent (white = 100).</p>\n</section>\n";
}

std::string today_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace

std::string report_render(const ReportData& d, const ReportOptions& options, const std::string& date) {
  std::string name = field_text(d.spec, "name");
  std::string title = !options.title.empty() ? options.title
                      : !name.empty()        ? "Emergent misalignment: " + name
                                             : "Emergent misalignment report";
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>" +
       html_escape(title) + "</title>\n<style>\n" + kCss + "</style>\n</head>\n<body>\n";
  header(h, d, title, date);
  missing_section(h, d);
  arms_section(h, d);
  question_tables(h, d);
  scatter_section(h, d, options);
  training_section(h, d, options);
  sweep_section(h, d, options);
  checkpoints_section(h, d, options);
  solutions_section(h, d, options);
  examples_section(h, d, options);
  if (!d.spec.is_null())
    h += "<details>\n<summary>experiment.json</summary>\n<pre>" + html_escape(d.spec.dump(2)) + "</pre>\n</details>\n";
  h += "<footer class=\"small muted\"><p>Written by emlab report.</p></footer>\n</body>\n</html>\n";
  return h;
}

}  // namespace report_detail

std::string report_html(const std::string& experiment_dir, const ReportOptions& options) {
  report_detail::ReportData data = report_detail::report_load(experiment_dir, options);
  return report_detail::report_render(data, options, options.date.empty() ? report_detail::today_utc() : options.date);
}

void report_write(const std::string& experiment_dir, const std::string& out_html, const ReportOptions& options) {
  std::string html = report_html(experiment_dir, options);
  std::string out = out_html.empty() ? (std::filesystem::path(experiment_dir) / "report.html").string() : out_html;
  AtomicFileWriter writer(out);
  writer.write(html);
  writer.commit(/*sync=*/false);
}

}  // namespace emlab
