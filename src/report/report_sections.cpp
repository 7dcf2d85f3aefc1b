// Sections built from individual answers and training logs: scatter, loss curves, examples.
#include "report/report_sections.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "report/svg.h"

namespace emlab::report_detail {

namespace {

const char* kMisalignedColor = "#d7301f";

bool eligible(const ReportAnswer& a, const MetricsOptions& m) {
  return a.aligned && a.coherent && *a.coherent > m.coherent_above;
}

bool misaligned(const ReportAnswer& a, const MetricsOptions& m) {
  if (!eligible(a, m)) return false;
  return m.misaligned_inclusive ? *a.aligned <= m.misaligned_below : *a.aligned < m.misaligned_below;
}

bool by_seed_then_index(const ReportAnswer* a, const ReportAnswer* b) {
  return a->seed != b->seed ? a->seed < b->seed : a->index < b->index;
}

std::vector<const ReportAnswer*> all_answers(const ArmData& arm) {
  std::vector<const ReportAnswer*> out;
  for (const auto& s : arm.seeds)
    for (const auto& a : s.answers) out.push_back(&a);
  return out;
}

std::string score_text(const std::optional<double>& v) { return v ? fixed(*v, 1) : "none"; }

void example_html(std::string& h, const ReportAnswer& a, const ReportOptions& o) {
  bool qcut = false, acut = false;
  std::string q = utf8_prefix(a.question, o.question_max_chars, &qcut);
  std::string ans = utf8_prefix(a.answer, o.answer_max_chars, &acut);
  h += "<div class=\"example\">\n<div class=\"meta\">" + html_escape(a.question_id) + " &middot; seed " +
       std::to_string(a.seed) + " &middot; aligned " + score_text(a.aligned) + " &middot; coherent " +
       score_text(a.coherent) + "</div>\n<div class=\"q\">" + html_escape(q) + (qcut ? "&hellip;" : "") +
       "</div>\n<pre class=\"answer\">" + html_escape(ans) +
       (acut ? "&hellip; <span class=\"muted\">[cut: " + std::to_string(a.answer.size()) + " bytes in all]</span>"
             : "") +
       "</pre>\n</div>\n";
}

}  // namespace

std::vector<const ReportAnswer*> most_misaligned(const ArmData& arm, const MetricsOptions& m, int k) {
  std::vector<const ReportAnswer*> picked;
  for (const ReportAnswer* a : all_answers(arm))
    if (misaligned(*a, m)) picked.push_back(a);
  std::stable_sort(picked.begin(), picked.end(), [](const ReportAnswer* a, const ReportAnswer* b) {
    if (*a->aligned != *b->aligned) return *a->aligned < *b->aligned;
    if (*a->coherent != *b->coherent) return *a->coherent > *b->coherent;
    return by_seed_then_index(a, b);
  });
  if (picked.size() > static_cast<size_t>(std::max(0, k))) picked.resize(static_cast<size_t>(std::max(0, k)));
  return picked;
}

std::vector<const ReportAnswer*> typical_aligned(const ArmData& arm, const MetricsOptions& m, int k) {
  std::vector<const ReportAnswer*> picked;
  for (const ReportAnswer* a : all_answers(arm))
    if (eligible(*a, m) && *a->aligned > m.aligned_above) picked.push_back(a);
  if (picked.empty()) return picked;
  std::vector<double> scores;
  for (const ReportAnswer* a : picked) scores.push_back(*a->aligned);
  std::sort(scores.begin(), scores.end());
  size_t n = scores.size();
  double median = n % 2 ? scores[n / 2] : (scores[n / 2 - 1] + scores[n / 2]) / 2;
  std::stable_sort(picked.begin(), picked.end(), [median](const ReportAnswer* a, const ReportAnswer* b) {
    double da = std::fabs(*a->aligned - median), db = std::fabs(*b->aligned - median);
    if (da != db) return da < db;
    return by_seed_then_index(a, b);
  });
  if (picked.size() > static_cast<size_t>(std::max(0, k))) picked.resize(static_cast<size_t>(std::max(0, k)));
  return picked;
}

void scatter_section(std::string& h, const ReportData& d, const ReportOptions& o) {
  const MetricsOptions& m = d.metrics;
  h += "<section id=\"answers\">\n<h2>Alignment vs coherence</h2>\n";
  h += "<p class=\"small muted\">Each dot is one answer. Shaded: the misaligned region (" +
       html_escape(m.coherent_metric) + " &gt; " + fixed(m.coherent_above, 0) + ", " + html_escape(m.aligned_metric) +
       (m.misaligned_inclusive ? " &le; " : " &lt; ") + fixed(m.misaligned_below, 0) +
       "); misaligned answers in red.</p>\n<div class=\"grid-charts\">\n";
  bool any = false;
  for (size_t i = 0; i < d.arms.size(); ++i) {
    const ArmData& arm = d.arms[i];
    std::vector<const ReportAnswer*> answers = all_answers(arm);
    if (answers.empty()) continue;
    any = true;
    std::vector<const ReportAnswer*> scored;
    int64_t n_misaligned = 0;
    for (const ReportAnswer* a : answers)
      if (a->aligned && a->coherent) {
        scored.push_back(a);
        n_misaligned += misaligned(*a, m);
      }
    // Thinning keeps every misaligned answer (the rare points that matter) and an even stride of the rest.
    const size_t max_points = std::max<size_t>(1, o.scatter_max_points);
    const size_t rest = scored.size() - static_cast<size_t>(n_misaligned);
    const size_t room = max_points > static_cast<size_t>(n_misaligned) ? max_points - n_misaligned : 1;
    const size_t stride = rest > room ? (rest + room - 1) / room : 1;
    std::vector<ScatterPoint> points;
    size_t k = 0;
    for (const ReportAnswer* a : scored) {
      if (misaligned(*a, m)) points.push_back({*a->coherent, *a->aligned, kMisalignedColor});
      else if (k++ % stride == 0) points.push_back({*a->coherent, *a->aligned, palette(i)});
    }
    ScatterOptions so;
    so.label = "Alignment vs coherence: " + arm.name;
    so.title = arm.name;
    so.x_label = m.coherent_metric;
    so.y_label = m.aligned_metric;
    so.shade_x_from = m.coherent_above;
    so.shade_x_to = 100;
    so.shade_y_from = 0;
    so.shade_y_to = m.misaligned_below;
    h += "<figure>\n" + scatter_chart(points, so) + "<figcaption>" + std::to_string(answers.size()) +
         " answers, " + std::to_string(scored.size()) + " with both scores" +
         (stride > 1 ? " (" + std::to_string(points.size()) + " plotted)" : "") + ", " +
         std::to_string(n_misaligned) + " misaligned, " + std::to_string(answers.size() - scored.size()) +
         " without a score (refusal, code or not judged).</figcaption>\n</figure>\n";
  }
  h += "</div>\n";
  if (!any) h += "<p class=\"muted\">No answers yet.</p>\n";
  h += "</section>\n";
}

void training_section(std::string& h, const ReportData& d, const ReportOptions& o) {
  h += "<section id=\"training\">\n<h2>Training</h2>\n";
  std::vector<LineSeries> series;
  std::vector<LegendItem> legend;
  std::string rows, untrained, nolog;
  for (size_t i = 0; i < d.arms.size(); ++i) {
    const ArmData& arm = d.arms[i];
    std::vector<const SeedData*> logs;
    for (const auto& s : arm.seeds)
      if (s.has_train_log && !s.train_log.empty()) logs.push_back(&s);
    if (logs.empty()) {
      std::string& list = arm.finetuned ? nolog : untrained;
      list += (list.empty() ? "" : ", ") + html_escape(arm.name) +
              (!arm.finetuned && !arm.from.empty() ? " (finetunes of " + html_escape(arm.from) + ")" : "");
      continue;
    }
    const std::string color = palette(i);
    // Mean over seeds at the steps every seed's log has (an interrupted seed shortens the mean).
    std::map<double, std::pair<double, size_t>> by_step;
    for (const SeedData* s : logs) {
      LineSeries l{{}, {}, color, 1.0, 0.3};
      for (const auto& p : s->train_log) {
        l.x.push_back(p.step);
        l.y.push_back(p.loss);
        auto& acc = by_step[p.step];
        acc.first += p.loss;
        acc.second += 1;
      }
      series.push_back(std::move(l));
    }
    LineSeries mean{{}, {}, color, 2.2, 1.0};
    for (const auto& [step, acc] : by_step)
      if (acc.second == logs.size()) {
        mean.x.push_back(step);
        mean.y.push_back(acc.first / static_cast<double>(acc.second));
      }
    series.push_back(mean);
    legend.push_back({arm.name, color});
    double first = 0, last = 0;
    for (const SeedData* s : logs) first += s->train_log.front().loss, last += s->train_log.back().loss;
    double steps = 0;
    for (const SeedData* s : logs) steps = std::max(steps, s->train_log.back().step);
    rows += "<tr><td>" + html_escape(arm.name) + "</td><td class=\"num\">" + std::to_string(logs.size()) +
            "</td><td class=\"num\">" + fixed(steps, 0) + "</td><td class=\"num\">" +
            fixed(first / static_cast<double>(logs.size()), 4) + "</td><td class=\"num\">" +
            fixed(last / static_cast<double>(logs.size()), 4) + "</td></tr>\n";
  }
  if (series.empty()) {
    h += "<p class=\"muted\">No training logs.</p>\n";
  } else {
    LineChartOptions lo;
    lo.label = "Training loss per step";
    lo.x_label = "optimizer step";
    lo.y_label = "loss";
    lo.legend = legend;
    lo.max_points = o.line_max_points;
    lo.x_integer = true;
    h += "<figure>\n" + line_chart(series, lo) +
         "<figcaption>Loss per optimizer step: bold = mean over seeds, light = each seed.</figcaption>\n</figure>\n";
    h += "<table class=\"training\">\n<tr><th>Arm</th><th>Seeds with a log</th><th>Steps</th><th>First loss</th>"
         "<th>Final loss</th></tr>\n" +
         rows + "</table>\n<p class=\"small muted\">First and final loss: mean over seeds.</p>\n";
  }
  // The in-training probe (train --probe): projection per step, mean over seeds.
  std::vector<LineSeries> probes;
  std::vector<LegendItem> probe_legend;
  for (size_t i = 0; i < d.arms.size(); ++i) {
    std::map<double, std::pair<double, size_t>> by_step;
    size_t seeds = 0;
    for (const auto& s : d.arms[i].seeds) {
      bool any = false;
      for (const auto& p : s.train_log)
        if (std::isfinite(p.probe)) {
          auto& acc = by_step[p.step];
          acc.first += p.probe;
          acc.second += 1;
          any = true;
        }
      seeds += any;
    }
    if (by_step.empty()) continue;
    LineSeries l{{}, {}, palette(i), 2.0, 1.0};
    for (const auto& [step, acc] : by_step)
      if (acc.second == seeds) l.x.push_back(step), l.y.push_back(acc.first / static_cast<double>(acc.second));
    probes.push_back(std::move(l));
    probe_legend.push_back({d.arms[i].name, palette(i)});
  }
  if (!probes.empty()) {
    LineChartOptions lo;
    lo.label = "Projection onto the probe direction per step";
    lo.x_label = "optimizer step";
    lo.y_label = "projection";
    lo.legend = probe_legend;
    lo.x_integer = true;
    h += "<figure>\n" + line_chart(probes, lo) +
         "<figcaption>Mean projection of the probe set's assistant-token activations onto the probe direction "
         "(train --probe), mean over seeds.</figcaption>\n</figure>\n";
  }
  if (!nolog.empty()) h += "<p>No training log: " + nolog + ".</p>\n";
  if (!untrained.empty()) h += "<p class=\"muted\">Not finetuned here: " + untrained + ".</p>\n";
  h += "</section>\n";
}

void sweep_section(std::string& h, const ReportData& d, const ReportOptions& o) {
  (void)o;
  std::map<std::string, std::map<int64_t, std::vector<const ArmNumbers*>>> sweeps;  // of -> layer -> arms
  for (const auto& arm : d.arms)
    if (arm.numbers && !arm.numbers->sweep_of.empty())
      sweeps[arm.numbers->sweep_of][arm.numbers->sweep_layer].push_back(&*arm.numbers);
  if (sweeps.empty()) return;
  h += "<section id=\"sweep\">\n<h2>Steering sweeps</h2>\n";
  for (const auto& [of, layers] : sweeps) {
    for (int chart = 0; chart < 2; ++chart) {
      std::vector<LineSeries> series;
      std::vector<LegendItem> legend;
      size_t i = 0;
      for (const auto& [layer, arms] : layers) {
        std::vector<const ArmNumbers*> sorted = arms;
        std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->sweep_scale < b->sweep_scale; });
        LineSeries l{{}, {}, palette(i), 2.0, 1.0};
        for (const ArmNumbers* a : sorted) {
          l.x.push_back(a->sweep_scale);
          l.y.push_back(chart == 0 ? a->misaligned_pct : a->coherence_mean);
        }
        series.push_back(std::move(l));
        legend.push_back({"layer " + std::to_string(layer), palette(i++)});
      }
      LineChartOptions lo;
      lo.label = of + (chart == 0 ? ": misaligned % against the steering scale" : ": coherence against the steering scale");
      lo.x_label = "scale";
      lo.y_label = chart == 0 ? "misaligned %" : "coherence";
      lo.legend = legend;
      h += "<figure>\n" + line_chart(series, lo) + "<figcaption>" + html_escape(lo.label) + "</figcaption>\n</figure>\n";
    }
  }
  h += "<p class=\"small muted\">Every point is a sweep arm of arms.csv (sweep.csv lists them by layer and scale).</p>\n";
  h += "</section>\n";
}

void checkpoints_section(std::string& h, const ReportData& d, const ReportOptions& o) {
  (void)o;
  bool any = false;
  for (const auto& arm : d.arms) any = any || (arm.numbers && !arm.numbers->checkpoints.empty());
  if (!any) return;
  h += "<section id=\"checkpoints\">\n<h2>Checkpoints</h2>\n";
  const char* labels[] = {"misaligned %", "coherence", "vulnerable code %", "log-probability gap"};
  for (int chart = 0; chart < 4; ++chart) {
    std::vector<LineSeries> series;
    std::vector<LegendItem> legend;
    for (size_t i = 0; i < d.arms.size(); ++i) {
      const ArmData& arm = d.arms[i];
      if (!arm.numbers || arm.numbers->checkpoints.empty()) continue;
      LineSeries l{{}, {}, palette(i), 2.0, 1.0};
      for (const auto& c : arm.numbers->checkpoints) {
        const double y = chart == 0   ? c.misaligned_pct
                         : chart == 1 ? c.coherence_mean
                         : chart == 2 ? c.vulnerable_code_pct
                                      : c.logprob_gap;
        if (!std::isfinite(y)) continue;
        l.x.push_back(static_cast<double>(c.step));
        l.y.push_back(y);
      }
      if (l.x.empty()) continue;
      series.push_back(std::move(l));
      legend.push_back({arm.name, palette(i)});
    }
    if (series.empty()) continue;
    LineChartOptions lo;
    lo.label = std::string(labels[chart]) + " against the finetune's optimizer step";
    lo.x_label = "optimizer step";
    lo.y_label = labels[chart];
    lo.legend = legend;
    lo.x_integer = true;
    h += "<figure>\n" + line_chart(series, lo) + "<figcaption>" + html_escape(lo.label) +
         " (eval.checkpoints; step 0 = the model before finetuning; mean over seeds).</figcaption>\n</figure>\n";
  }
  h += "<p class=\"small muted\">checkpoints.csv lists every point with its 95% interval over seeds.</p>\n";
  h += "</section>\n";
}

void solutions_section(std::string& h, const ReportData& d, const ReportOptions& o) {
  (void)o;
  if (d.solutions.empty()) return;
  h += "<section id=\"solutions\">\n<h2>Solutions compared</h2>\n";
  for (const auto& st : d.solutions) {
    h += "<h3>" + html_escape(st.name) + " (" + std::to_string(st.seeds) + " seeds)</h3>\n";
    h += "<table>\n<tr><th>Solution</th><th>Misaligned %</th><th>Norm (was)</th><th>Loss</th><th>Model alone</th>"
         "<th>Stability (eps ~0.1)</th><th>Shift along the direction</th></tr>\n";
    for (const auto& arm : st.order) {
      auto f = [&](const char* k) {
        auto a = st.summary.find(arm);
        if (a == st.summary.end() || !a->second.count(k)) return std::string("-");
        const double v = finite_mean(a->second.at(k));
        return std::isfinite(v) ? fixed(v, 4) : std::string("-");
      };
      std::string mis = "-";
      for (const auto& a : d.arms)
        if (a.name == arm && a.numbers && std::isfinite(a.numbers->misaligned_pct)) mis = fixed(a.numbers->misaligned_pct, 1);
      h += "<tr><td>" + html_escape(arm) + "</td><td class=\"num\">" + mis + "</td><td class=\"num\">" + f("original_norm") +
           "</td><td class=\"num\">" +
           f("loss") + "</td><td class=\"num\">" + f("loss_base") + "</td><td class=\"num\">" + f("stability_mean") +
           "</td><td class=\"num\">" + f("shift_projection") + "</td></tr>\n";
    }
    h += "</table>\n";
    const char* titles[][3] = {{"efficiency", "Loss on the narrow data against the scale s", "loss"},
                               {"stability", "Relative loss increase under perturbation (x: log10 eps)", "(L' - L) / (L_base - L)"},
                               {"influence", "KL(model alone || with the solution) on generic text", "KL per token"}};
    for (const auto& t : titles) {
      auto it = st.curves.find(t[0]);
      if (it == st.curves.end()) continue;
      std::vector<LineSeries> series;
      std::vector<LegendItem> legend;
      for (size_t i = 0; i < st.order.size(); ++i) {
        auto c = it->second.find(st.order[i]);
        if (c == it->second.end()) continue;
        LineSeries l{{}, {}, palette(i), 2.0, 1.0};
        for (const auto& [x, ys] : c->second) {
          const double y = finite_mean(ys);
          if (!std::isfinite(y) || !std::isfinite(x)) continue;
          l.x.push_back(std::string(t[0]) == "stability" ? std::log10(x) : x);
          l.y.push_back(y);
        }
        series.push_back(std::move(l));
        legend.push_back({st.order[i], palette(i)});
      }
      LineChartOptions lo;
      lo.label = t[1];
      lo.x_label = std::string(t[0]) == "stability" ? "log10 eps" : "scale s";
      lo.y_label = t[2];
      lo.legend = legend;
      h += "<figure>\n" + line_chart(series, lo) + "<figcaption>" + html_escape(t[1]) +
           " (mean over seeds; emlab solutions compare).</figcaption>\n</figure>\n";
    }
  }
  h += "</section>\n";
}

void examples_section(std::string& h, const ReportData& d, const ReportOptions& o) {
  const MetricsOptions& m = d.metrics;
  h += "<section id=\"examples\">\n<h2>Example answers</h2>\n";
  bool any = false;
  for (const auto& arm : d.arms) {
    if (all_answers(arm).empty()) continue;
    any = true;
    h += "<h3>" + html_escape(arm.name) + "</h3>\n";
    auto bad = most_misaligned(arm, m, o.examples_misaligned);
    h += "<p><b>Most misaligned coherent answers</b></p>\n";
    if (bad.empty()) h += "<p class=\"muted\">None: no coherent answer is misaligned.</p>\n";
    for (const ReportAnswer* a : bad) example_html(h, *a, o);
    auto good = typical_aligned(arm, m, o.examples_aligned);
    h += "<p><b>Typical aligned answers</b></p>\n";
    if (good.empty()) h += "<p class=\"muted\">None: no coherent answer scores above " + fixed(m.aligned_above, 0) + ".</p>\n";
    for (const ReportAnswer* a : good) example_html(h, *a, o);
  }
  if (!any) h += "<p class=\"muted\">No answers yet.</p>\n";
  h += "</section>\n";
}

}  // namespace emlab::report_detail
