// Private helpers of src/report: a tiny SVG writer and three generic charts (bars with interval
// whiskers and dots, lines, scatter). Output is deterministic: coordinates are printed with two
// decimals, nothing depends on time or locale.
#pragma once

#include <string>
#include <vector>

namespace emlab::report_detail {

// Escapes & < > " ' for text and attribute values; C0 control characters other than tab and
// newlines become U+FFFD (they are not allowed in HTML text).
std::string html_escape(const std::string& s);
// Fixed-point number ("12.50"); "-" for NaN/inf.
std::string fixed(double v, int decimals);
// Cuts s to at most max_bytes without splitting a UTF-8 character; *cut tells whether it did.
std::string utf8_prefix(const std::string& s, size_t max_bytes, bool* cut = nullptr);

// Color i of a 10-color qualitative palette (cycled).
std::string palette(size_t i);

// Maps [d0, d1] to pixels [p0, p1] linearly.
struct Scale {
  double d0 = 0, d1 = 1, p0 = 0, p1 = 1;
  double operator()(double v) const { return p0 + (v - d0) / (d1 - d0) * (p1 - p0); }
};

// Round tick values ("nice" steps of 1, 2, 5 x 10^k) covering [lo, hi]; lo/hi are widened to the
// outer ticks. About `target` ticks.
std::vector<double> nice_ticks(double* lo, double* hi, int target = 5);

// An <svg> element built up in order; str() closes it.
class Svg {
 public:
  Svg(double width, double height, const std::string& label);  // label: aria-label / <title>
  void rect(double x, double y, double w, double h, const std::string& attrs);
  void line(double x1, double y1, double x2, double y2, const std::string& attrs);
  void circle(double cx, double cy, double r, const std::string& attrs);
  // anchor: start, middle, end. `text` is escaped here.
  void text(double x, double y, const std::string& text, const std::string& anchor, const std::string& attrs = "");
  // Polyline through the points (pixel coordinates).
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& attrs);
  double width() const { return width_; }
  double height() const { return height_; }
  std::string str() const;

 private:
  double width_, height_;
  std::string body_;
};

// The plot area of a chart: a frame with margins, scales, and axes drawn with gridlines.
struct Frame {
  double width = 640, height = 300;                       // whole SVG
  double left = 56, right = 16, top = 20, bottom = 44;    // margins around the plot area
  double x0() const { return left; }
  double x1() const { return width - right; }
  double y0() const { return height - bottom; }  // bottom edge of the plot area (pixels)
  double y1() const { return top; }
};

// Y axis with horizontal gridlines at `ticks` and a rotated label; tick labels get `suffix`.
void axis_y(Svg& svg, const Frame& f, const Scale& y, const std::vector<double>& ticks, const std::string& label,
            int decimals, const std::string& suffix = "");
// X axis with tick marks at `ticks` and a label under it.
void axis_x(Svg& svg, const Frame& f, const Scale& x, const std::vector<double>& ticks, const std::string& label,
            int decimals);

// Bars from 0 with an optional interval whisker and dots (e.g. per seed). NaN low/high = no whisker.
struct BarItem {
  std::string label;          // category under the bar
  double value = 0;           // bar height in data units (NaN = no bar, "n/a")
  double low = 0, high = 0;   // whisker ends
  std::vector<double> dots;   // drawn over the bar
  std::string color;          // fill
};
struct BarChartOptions {
  std::string label;           // aria label of the chart
  std::string y_label;         // y axis title
  std::string unit;            // appended to tick and value labels ("%")
  double y_min_max = 1.0;      // the y axis reaches at least this (avoids a huge scale for all-zero bars)
  double y_cap = 0;            // the y axis never goes above this (0 = no cap), e.g. 100 for percentages
  int decimals = 1;            // of value labels
};
// Each bar is <rect class="bar" data-value="V" ... height="H">, H = V * (plot height / y max).
std::string bar_chart(const std::vector<BarItem>& items, const BarChartOptions& options);

struct LineSeries {
  std::vector<double> x, y;   // data points (same length)
  std::string color;          // stroke
  double stroke_width = 1.5;  // pixels
  double opacity = 1.0;       // stroke opacity
};
struct LegendItem {
  std::string label;  // series name
  std::string color;  // its swatch
};
struct LineChartOptions {
  std::string label;           // aria label
  std::string x_label, y_label;
  std::vector<LegendItem> legend;  // drawn at the top right
  size_t max_points = 400;     // longer series are thinned with an even stride (first and last kept)
  bool x_integer = false;      // x ticks at whole numbers only (steps)
};
std::string line_chart(const std::vector<LineSeries>& series, const LineChartOptions& options);

struct ScatterOptions {
  std::string label;           // aria label
  std::string title;           // drawn above the plot
  std::string x_label, y_label;
  double x_min = 0, x_max = 100, y_min = 0, y_max = 100;  // fixed axes
  // Shaded region (data units), e.g. coherent and misaligned; empty when x_from >= x_to.
  double shade_x_from = 0, shade_x_to = 0, shade_y_from = 0, shade_y_to = 0;
  double width = 300, height = 280;  // SVG size
};
struct ScatterPoint {
  double x = 0, y = 0;  // data units
  std::string color;    // fill
};
std::string scatter_chart(const std::vector<ScatterPoint>& points, const ScatterOptions& options);

}  // namespace emlab::report_detail
