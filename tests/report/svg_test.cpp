// The report's SVG and text helpers: escaping, UTF-8 cuts, tick steps, and charts whose geometry
// matches their axes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>

#include "report/svg.h"

namespace rd = emlab::report_detail;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

TEST(ReportSvg, HtmlEscapeCoversMarkupQuotesAndControls) {
  EXPECT_EQ(rd::html_escape("<a href=\"x\">Tom & 'Jerry'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
  EXPECT_EQ(rd::html_escape("line\nnext\ttab"), "line\nnext\ttab");
  EXPECT_EQ(rd::html_escape(std::string("a\x01" "b", 3)), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(rd::html_escape("caf\xC3\xA9"), "caf\xC3\xA9");  // UTF-8 passes through
}

TEST(ReportSvg, Utf8PrefixNeverSplitsACharacter) {
  bool cut = false;
  EXPECT_EQ(rd::utf8_prefix("short", 10, &cut), "short");
  EXPECT_FALSE(cut);
  const std::string s = "ab\xE2\x82\xAC" "cd";  // a b € c d (€ is 3 bytes)
  EXPECT_EQ(rd::utf8_prefix(s, 2, &cut), "ab");
  EXPECT_TRUE(cut);
  EXPECT_EQ(rd::utf8_prefix(s, 3), "ab");
  EXPECT_EQ(rd::utf8_prefix(s, 4), "ab");
  EXPECT_EQ(rd::utf8_prefix(s, 5), "ab\xE2\x82\xAC");
  EXPECT_EQ(rd::utf8_prefix(s, 6), "ab\xE2\x82\xAC" "c");
}

TEST(ReportSvg, FixedFormatsAndHidesNegativeZero) {
  EXPECT_EQ(rd::fixed(37.5, 1), "37.5");
  EXPECT_EQ(rd::fixed(2.0 / 3.0, 2), "0.67");
  EXPECT_EQ(rd::fixed(-0.001, 1), "0.0");
  EXPECT_EQ(rd::fixed(-1.25, 1), "-1.2");  // printf rounds half to even on the binary value
  EXPECT_EQ(rd::fixed(NAN, 1), "-");
}

TEST(ReportSvg, NiceTicksUseOneTwoFiveSteps) {
  double lo = 0, hi = 37.5;
  std::vector<double> t = rd::nice_ticks(&lo, &hi, 5);
  EXPECT_EQ(t, (std::vector<double>{0, 10, 20, 30, 40}));
  EXPECT_EQ(hi, 40);
  lo = 1.03, hi = 2.91;
  t = rd::nice_ticks(&lo, &hi, 5);
  EXPECT_EQ(t.size(), 5u);  // step 0.5: 1.0 .. 3.0
  EXPECT_DOUBLE_EQ(t.front(), 1.0);
  EXPECT_DOUBLE_EQ(t.back(), 3.0);
  EXPECT_DOUBLE_EQ(lo, 1.0);
  lo = 5, hi = 5;  // flat: opened around the value
  t = rd::nice_ticks(&lo, &hi, 5);
  EXPECT_LT(lo, 5);
  EXPECT_GT(hi, 5);
}

TEST(ReportSvg, BarTopsLandOnTheirTickLines) {
  // 40% bar: with ticks 0..40 its top is the 40% gridline; 10% is a quarter of the height.
  std::vector<rd::BarItem> items = {{"a", 40, 30, 45, {35, 45}, "#111111"}, {"b", 10, NAN, NAN, {}, "#222222"}};
  rd::BarChartOptions o;
  o.unit = "%";
  std::string svg = rd::bar_chart(items, o);
  std::smatch m;
  std::regex bar(R"re(<rect x="[-0-9.]+" y="([-0-9.]+)" width="[-0-9.]+" height="([-0-9.]+)" class="bar")re");
  std::vector<double> ys, hs;
  for (std::sregex_iterator it(svg.begin(), svg.end(), bar), end; it != end; ++it)
    ys.push_back(std::stod((*it)[1])), hs.push_back(std::stod((*it)[2]));
  ASSERT_EQ(hs.size(), 2u);
  EXPECT_NEAR(hs[0] / hs[1], 4.0, 1e-3);
  // Ticks go to 50 here (the whisker reaches 45): the 50% gridline is the top of the plot area.
  std::regex tick(R"re(<line x1="[-0-9.]+" y1="([-0-9.]+)" x2="[-0-9.]+" y2="[-0-9.]+" class="grid"/>\n<text [^>]*>(\d+)%</text>)re");
  std::map<int, double> tick_y;
  for (std::sregex_iterator it(svg.begin(), svg.end(), tick), end; it != end; ++it)
    tick_y[std::stoi((*it)[2])] = std::stod((*it)[1]);
  ASSERT_TRUE(tick_y.count(0) && tick_y.count(40) && tick_y.count(50)) << svg;
  EXPECT_NEAR(ys[0], tick_y[40], 0.011);
  EXPECT_NEAR(ys[0] + hs[0], tick_y[0], 0.011);
  // One whisker (3 lines) for the first bar only, and two seed dots.
  EXPECT_EQ(count(svg, "class=\"whisker\""), 3u);
  EXPECT_EQ(count(svg, "class=\"seed-dot\""), 2u);
}

TEST(ReportSvg, YCapKeepsPercentAxesAtOneHundred) {
  std::vector<rd::BarItem> items = {{"a", 96, 90, 100, {}, "#111111"}};
  rd::BarChartOptions o;
  o.unit = "%";
  o.y_cap = 100;
  std::string svg = rd::bar_chart(items, o);
  EXPECT_NE(svg.find(">100%</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">120%</text>"), std::string::npos);
}

TEST(ReportSvg, LineChartThinsLongSeriesKeepingTheEnds) {
  rd::LineSeries s;
  for (int i = 0; i < 1000; ++i) s.x.push_back(i), s.y.push_back(1000 - i);
  s.color = "#123456";
  rd::LineChartOptions o;
  o.max_points = 100;
  std::string svg = rd::line_chart({s}, o);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("<polyline points=\"([^\"]*)\"")));
  std::string pts = m[1];
  size_t n = std::count(pts.begin(), pts.end(), ',');
  EXPECT_LE(n, 101u);
  EXPECT_GE(n, 90u);
  // The ends are kept: step 0 at the left edge, step 999 on an axis ticked 0..1000.
  const rd::Frame f;
  double fx = std::stod(pts.substr(0, pts.find(','))), lx = std::stod(pts.substr(pts.rfind(' ') + 1));
  EXPECT_NEAR(fx, f.left, 0.01);
  EXPECT_NEAR(lx, f.left + 0.999 * (720 - f.right - f.left), 0.01);
}

TEST(ReportSvg, ScatterMapsDataToThePlotArea) {
  rd::ScatterOptions o;
  o.shade_x_from = 50, o.shade_x_to = 100, o.shade_y_from = 0, o.shade_y_to = 30;
  std::string svg = rd::scatter_chart({{0, 0, "#111111"}, {100, 100, "#222222"}, {50, 50, "#333333"}}, o);
  std::regex dot(R"re(<circle cx="([-0-9.]+)" cy="([-0-9.]+)")re");
  std::vector<std::pair<double, double>> p;
  for (std::sregex_iterator it(svg.begin(), svg.end(), dot), end; it != end; ++it)
    p.push_back({std::stod((*it)[1]), std::stod((*it)[2])});
  ASSERT_EQ(p.size(), 3u);
  EXPECT_NEAR(p[2].first, (p[0].first + p[1].first) / 2, 0.011);   // linear in x
  EXPECT_NEAR(p[2].second, (p[0].second + p[1].second) / 2, 0.011);  // and in y
  EXPECT_LT(p[1].second, p[0].second);  // high alignment is up
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex(R"re(<rect x="([-0-9.]+)" y="([-0-9.]+)" width="([-0-9.]+)" height="([-0-9.]+)" class="shade")re")));
  EXPECT_NEAR(std::stod(m[1]), p[2].first, 0.011);                       // starts at coherence 50
  EXPECT_NEAR(std::stod(m[1]) + std::stod(m[3]), p[1].first, 0.011);     // ends at 100
  EXPECT_NEAR(std::stod(m[2]) + std::stod(m[4]), p[0].second, 0.011);    // from alignment 0
  EXPECT_NEAR(std::stod(m[4]) / (p[0].second - p[1].second), 0.3, 1e-3);  // up to 30
}

}  // namespace
