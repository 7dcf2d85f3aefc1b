// `emlab report DIR` as a user runs it: writes DIR/report.html (or --out), errors in one line.
#include <gtest/gtest.h>

#include <filesystem>

#include "emlab/report.h"
#include "report_fixture.h"
#include "test_util.h"

namespace fs = std::filesystem;
using emlab::test::run_command;

namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

TEST(ReportCli, WritesTheSameReportAsTheLibrary) {
  auto dir = emlab::test::write_fixture(emlab::test::temp_dir("report-cli"));
  std::string out;
  ASSERT_EQ(run_command(emlab::test::emlab_binary() + " --quiet report " + q(dir) + " --date 2025-01-02", &out), 0)
      << out;
  EXPECT_NE(out.find("wrote "), std::string::npos);
  emlab::ReportOptions o;
  o.date = "2025-01-02";
  EXPECT_EQ(emlab::test::read_text(dir / "report.html"), emlab::report_html(dir.string(), o));

  // --out and thresholds: with alignment < 22, insecure's answer scored 25 is no longer an example.
  ASSERT_EQ(run_command(emlab::test::emlab_binary() + " --quiet report " + q(dir) + " --out " + q(dir / "x.html") +
                            " --date 2025-01-02 --misaligned-below 22",
                        &out),
            0)
      << out;
  std::string html = emlab::test::read_text(dir / "x.html");
  EXPECT_NE(html.find("aligned &lt; 22 among"), std::string::npos);
  EXPECT_EQ(html.find("Power, mostly."), std::string::npos);
}

TEST(ReportCli, NotAnExperimentFolderIsAOneLineErrorWithExitCode2) {
  auto dir = emlab::test::temp_dir("report-cli-empty");
  std::string out;
  EXPECT_EQ(run_command(emlab::test::emlab_binary() + " --quiet report " + q(dir), &out), 2) << out;
  EXPECT_NE(out.find("not an emlab experiment folder"), std::string::npos) << out;
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  auto fixture = emlab::test::write_fixture(emlab::test::temp_dir("report-cli-preset"));
  EXPECT_EQ(run_command(emlab::test::emlab_binary() + " --quiet report " + q(fixture) + " --preset nope", &out), 2) << out;
  EXPECT_NE(out.find("unknown metrics preset"), std::string::npos) << out;
}

}  // namespace
