// A tiny SVG writer and the generic charts of the report.
#include "report/svg.h"

#include "emlab/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace emlab::report_detail {

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r')
          out += "\xEF\xBF\xBD";  // U+FFFD
        else
          out += c;
    }
  }
  return out;
}

std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  // No "-0.0" from rounding tiny negatives.
  if (s[0] == '-' && s.find_first_not_of("0.", 1) == std::string::npos) s.erase(0, 1);
  return s;
}

std::string utf8_prefix(const std::string& s, size_t max_bytes, bool* cut) {
  if (cut) *cut = s.size() > max_bytes;
  if (s.size() <= max_bytes) return s;
  size_t n = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of the character being cut.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string palette(size_t i) {
  static const char* colors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return colors[i % 10];
}

std::vector<double> nice_ticks(double* lo, double* hi, int target) {
  if (!(std::isfinite(*lo) && std::isfinite(*hi))) *lo = 0, *hi = 1;
  if (*hi < *lo) std::swap(*lo, *hi);
  if (*hi - *lo < 1e-12) {  // a flat range: open it around the value
    double pad = std::max(std::fabs(*lo) * 0.1, 1e-3);
    *lo -= pad;
    *hi += pad;
  }
  double raw = (*hi - *lo) / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag * (1 + 1e-9)) {
      step = m * mag;
      break;
    }
  double first = std::floor(*lo / step + 1e-9) * step;
  double last = std::ceil(*hi / step - 1e-9) * step;
  std::vector<double> ticks;
  for (int i = 0; first + i * step <= last + step * 1e-6; ++i) {
    double t = first + i * step;
    if (std::fabs(t) < step * 1e-9) t = 0;
    ticks.push_back(t);
  }
  *lo = first;
  *hi = last;
  return ticks;
}

namespace {

std::string px(double v) { return fixed(v, 2); }

// Decimals that show the ticks' step without noise.
int tick_decimals(const std::vector<double>& ticks, int at_least) {
  if (ticks.size() < 2) return at_least;
  double step = ticks[1] - ticks[0];
  int d = 0;
  while (d < 6 && std::fabs(step * std::pow(10.0, d) - std::round(step * std::pow(10.0, d))) > 1e-6) ++d;
  return std::max(d, at_least);
}

}  // namespace

Svg::Svg(double width, double height, const std::string& label) : width_(width), height_(height) {
  body_ = "<title>" + html_escape(label) + "</title>\n";
}

void Svg::rect(double x, double y, double w, double h, const std::string& attrs) {
  body_ += "<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(w) + "\" height=\"" + px(h) + "\" " +
           attrs + "/>\n";
}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& attrs) {
  body_ += "<line x1=\"" + px(x1) + "\" y1=\"" + px(y1) + "\" x2=\"" + px(x2) + "\" y2=\"" + px(y2) + "\" " +
           attrs + "/>\n";
}

void Svg::circle(double cx, double cy, double r, const std::string& attrs) {
  body_ += "<circle cx=\"" + px(cx) + "\" cy=\"" + px(cy) + "\" r=\"" + px(r) + "\" " + attrs + "/>\n";
}

void Svg::text(double x, double y, const std::string& text, const std::string& anchor, const std::string& attrs) {
  body_ += "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\" text-anchor=\"" + anchor + "\"" +
           (attrs.empty() ? "" : " " + attrs) + ">" + html_escape(text) + "</text>\n";
}

void Svg::polyline(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& attrs) {
  std::string pts;
  for (size_t i = 0; i < xs.size() && i < ys.size(); ++i) {
    if (!(std::isfinite(xs[i]) && std::isfinite(ys[i]))) continue;
    if (!pts.empty()) pts += ' ';
    pts += px(xs[i]) + "," + px(ys[i]);
  }
  body_ += "<polyline points=\"" + pts + "\" fill=\"none\" " + attrs + "/>\n";
}

std::string Svg::str() const {
  return "<svg viewBox=\"0 0 " + px(width_) + " " + px(height_) + "\" width=\"" + px(width_) + "\" height=\"" +
         px(height_) + "\" role=\"img\" class=\"chart\">\n" + body_ + "</svg>\n";
}

void axis_y(Svg& svg, const Frame& f, const Scale& y, const std::vector<double>& ticks, const std::string& label,
            int decimals, const std::string& suffix) {
  for (double t : ticks) {
    double py = y(t);
    svg.line(f.x0(), py, f.x1(), py, "class=\"grid\"");
    svg.text(f.x0() - 6, py + 4, fixed(t, decimals) + suffix, "end", "class=\"tick\"");
  }
  svg.line(f.x0(), f.y0(), f.x0(), f.y1(), "class=\"axis\"");
  double cy = (f.y0() + f.y1()) / 2;
  svg.text(14, cy, label, "middle", "class=\"axis-label\" transform=\"rotate(-90 14 " + px(cy) + ")\"");
}

void axis_x(Svg& svg, const Frame& f, const Scale& x, const std::vector<double>& ticks, const std::string& label,
            int decimals) {
  svg.line(f.x0(), f.y0(), f.x1(), f.y0(), "class=\"axis\"");
  for (double t : ticks) {
    double pxv = x(t);
    svg.line(pxv, f.y0(), pxv, f.y0() + 4, "class=\"axis\"");
    svg.text(pxv, f.y0() + 16, fixed(t, decimals), "middle", "class=\"tick\"");
  }
  svg.text((f.x0() + f.x1()) / 2, f.height - 6, label, "middle", "class=\"axis-label\"");
}

std::string bar_chart(const std::vector<BarItem>& items, const BarChartOptions& o) {
  Frame f;
  f.width = std::max(320.0, 90.0 * static_cast<double>(items.size()) + f.left + f.right);
  double top = o.y_min_max;
  for (const auto& it : items) {
    for (double v : {it.value, it.high}) if (std::isfinite(v)) top = std::max(top, v);
    for (double v : it.dots) if (std::isfinite(v)) top = std::max(top, v);
  }
  double lo = 0, hi = top;
  std::vector<double> ticks = nice_ticks(&lo, &hi, 5);
  if (o.y_cap > 0 && hi > o.y_cap) {  // e.g. no "120%" tick
    hi = o.y_cap;
    ticks.erase(std::remove_if(ticks.begin(), ticks.end(), [&](double t) { return t > o.y_cap + 1e-9; }), ticks.end());
  }
  Svg svg(f.width, f.height, o.label);
  Scale y{0, hi, f.y0(), f.y1()};
  axis_y(svg, f, y, ticks, o.y_label, tick_decimals(ticks, 0), o.unit);
  svg.line(f.x0(), f.y0(), f.x1(), f.y0(), "class=\"axis\"");
  double slot = (f.x1() - f.x0()) / std::max<size_t>(1, items.size());
  double bw = std::min(56.0, slot * 0.6);
  for (size_t i = 0; i < items.size(); ++i) {
    const BarItem& it = items[i];
    double cx = f.x0() + slot * (static_cast<double>(i) + 0.5);
    svg.text(cx, f.y0() + 16, it.label, "middle", "class=\"tick\"");
    if (!std::isfinite(it.value)) {
      svg.text(cx, f.y0() - 6, "n/a", "middle", "class=\"value\"");
      continue;
    }
    double h = f.y0() - y(it.value);
    svg.rect(cx - bw / 2, f.y0() - h, bw, h,
             "class=\"bar\" data-value=\"" + fixed(it.value, 4) + "\" fill=\"" + it.color + "\"");
    double label_y = y(it.value);  // above whatever is drawn highest
    if (std::isfinite(it.low) && std::isfinite(it.high)) {
      double yl = y(it.low), yh = y(it.high);
      svg.line(cx, yl, cx, yh, "class=\"whisker\"");
      svg.line(cx - 7, yl, cx + 7, yl, "class=\"whisker\"");
      svg.line(cx - 7, yh, cx + 7, yh, "class=\"whisker\"");
      label_y = std::min(label_y, yh);
    }
    for (size_t d = 0; d < it.dots.size(); ++d) {
      if (!std::isfinite(it.dots[d])) continue;
      // Spread the dots a little so equal values stay visible.
      double off = (static_cast<double>(d) - (static_cast<double>(it.dots.size()) - 1) / 2) * 5;
      svg.circle(cx + off, y(it.dots[d]), 3, "class=\"seed-dot\"");
      label_y = std::min(label_y, y(it.dots[d]) - 3);
    }
    svg.text(cx, std::max(label_y - 5, 10.0), fixed(it.value, o.decimals) + o.unit, "middle", "class=\"value\"");
  }
  return svg.str();
}

std::string line_chart(const std::vector<LineSeries>& series, const LineChartOptions& o) {
  Frame f;
  f.width = 720;
  f.height = 320;
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!(std::isfinite(s.x[i]) && std::isfinite(s.y[i]))) continue;
      xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]), yhi = std::max(yhi, s.y[i]);
    }
  std::vector<double> xt = nice_ticks(&xlo, &xhi, 6), yt = nice_ticks(&ylo, &yhi, 5);
  if (o.x_integer)
    xt.erase(std::remove_if(xt.begin(), xt.end(), [](double t) { return std::fabs(t - std::round(t)) > 1e-9; }),
             xt.end());
  Svg svg(f.width, f.height, o.label);
  Scale x{xlo, xhi, f.x0(), f.x1()}, y{ylo, yhi, f.y0(), f.y1()};
  axis_y(svg, f, y, yt, o.y_label, tick_decimals(yt, 0));
  axis_x(svg, f, x, xt, o.x_label, tick_decimals(xt, 0));
  for (const auto& s : series) {
    size_t n = std::min(s.x.size(), s.y.size());
    size_t stride = o.max_points > 1 && n > o.max_points ? (n + o.max_points - 2) / (o.max_points - 1) : 1;
    std::vector<double> xs, ys;
    for (size_t i = 0; i < n; i += stride) xs.push_back(x(s.x[i])), ys.push_back(y(s.y[i]));
    if (n > 0 && (n - 1) % stride != 0) xs.push_back(x(s.x[n - 1])), ys.push_back(y(s.y[n - 1]));
    svg.polyline(xs, ys,
                 "class=\"series\" stroke=\"" + s.color + "\" stroke-width=\"" + fixed(s.stroke_width, 2) +
                     "\" stroke-opacity=\"" + fixed(s.opacity, 2) + "\"");
  }
  double ly = f.y1() + 4;
  for (const auto& item : o.legend) {
    svg.rect(f.x1() - 130, ly, 12, 12, "fill=\"" + item.color + "\"");
    svg.text(f.x1() - 112, ly + 10, item.label, "start", "class=\"legend\"");
    ly += 16;
  }
  return svg.str();
}

std::string scatter_chart(const std::vector<ScatterPoint>& points, const ScatterOptions& o) {
  Frame f;
  f.width = o.width;
  f.height = o.height;
  f.top = 26;
  f.left = 44;
  double xlo = o.x_min, xhi = o.x_max, ylo = o.y_min, yhi = o.y_max;
  std::vector<double> xt = nice_ticks(&xlo, &xhi, 4), yt = nice_ticks(&ylo, &yhi, 4);
  Svg svg(f.width, f.height, o.label);
  Scale x{xlo, xhi, f.x0(), f.x1()}, y{ylo, yhi, f.y0(), f.y1()};
  if (o.shade_x_from < o.shade_x_to && o.shade_y_from < o.shade_y_to) {
    double sx0 = x(o.shade_x_from), sx1 = x(o.shade_x_to), sy0 = y(o.shade_y_to), sy1 = y(o.shade_y_from);
    svg.rect(sx0, sy0, sx1 - sx0, sy1 - sy0, "class=\"shade\"");
  }
  axis_y(svg, f, y, yt, o.y_label, tick_decimals(yt, 0));
  axis_x(svg, f, x, xt, o.x_label, tick_decimals(xt, 0));
  svg.text((f.x0() + f.x1()) / 2, 16, o.title, "middle", "class=\"chart-title\"");
  for (const auto& p : points)
    if (std::isfinite(p.x) && std::isfinite(p.y)) svg.circle(x(p.x), y(p.y), 2.2, "class=\"dot\" fill=\"" + p.color + "\"");
  return svg.str();
}

}  // namespace emlab::report_detail

namespace emlab {

std::string report_line_chart_svg(const std::vector<ReportCurve>& curves, const std::string& title,
                                  const std::string& x_label, const std::string& y_label) {
  using namespace report_detail;
  std::vector<LineSeries> series;
  LineChartOptions lo;
  lo.label = title;
  lo.x_label = x_label;
  lo.y_label = y_label;
  for (size_t i = 0; i < curves.size(); ++i) {
    LineSeries l{{}, {}, palette(i), 2.0, 1.0};
    for (size_t k = 0; k < curves[i].x.size() && k < curves[i].y.size(); ++k)
      if (std::isfinite(curves[i].y[k])) l.x.push_back(curves[i].x[k]), l.y.push_back(curves[i].y[k]);
    series.push_back(std::move(l));
    lo.legend.push_back({curves[i].name, palette(i)});
  }
  return line_chart(series, lo);
}

std::string report_heatmap_svg(const std::vector<std::string>& labels, const std::vector<std::vector<double>>& values,
                               const std::string& title) {
  using namespace report_detail;
  const double cell = 44, left = 150, top = 40, n = static_cast<double>(labels.size());
  Svg svg(left + cell * n + 20, top + cell * n + 110, title);
  svg.text(left, 18, title, "start", "font-weight=\"bold\"");
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string name = utf8_prefix(labels[i], 22);
    svg.text(left - 6, top + cell * (static_cast<double>(i) + 0.5) + 4, name, "end");
    const double x = left + cell * (static_cast<double>(i) + 0.5), y = top + cell * n + 8;
    svg.text(x, y, name, "end", "transform=\"rotate(-45 " + fixed(x, 2) + " " + fixed(y, 2) + ")\"");
    for (size_t j = 0; j < labels.size(); ++j) {
      const double v = values.at(i).at(j);
      // Blue for negative, red for positive cosines, white at 0.
      const double a = std::isfinite(v) ? std::min(1.0, std::abs(v)) : 0.0;
      const int fade = static_cast<int>(255 * (1 - a));
      const std::string color = v >= 0 ? "rgb(255," + std::to_string(fade) + "," + std::to_string(fade) + ")"
                                       : "rgb(" + std::to_string(fade) + "," + std::to_string(fade) + ",255)";
      svg.rect(left + cell * static_cast<double>(j), top + cell * static_cast<double>(i), cell, cell,
               "fill=\"" + color + "\" stroke=\"#ccc\"");
      svg.text(left + cell * (static_cast<double>(j) + 0.5), top + cell * (static_cast<double>(i) + 0.5) + 4,
               fixed(v, 2), "middle", "font-size=\"11\"");
    }
  }
  return svg.str();
}

}  // namespace emlab
