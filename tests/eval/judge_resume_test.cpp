// Resume after kill -9 mid-judging: the `emlab judge` CLI, as a real child process, judges
// against a slow loopback server and is killed with SIGKILL; the same command run again
// finishes the run with every (answer, metric) judged exactly once.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "emlab/eval_run.h"
#include "emlab/jsonl.h"
#include "emlab/progress.h"
#include "fake_openai_server.h"
#include "test_util.h"

namespace emlab {
namespace {

using json = nlohmann::json;

size_t line_count(const std::filesystem::path& path) {
  std::ifstream f(path);
  size_t n = 0;
  for (std::string line; std::getline(f, line);) ++n;
  return n;
}

TEST(JudgeResume, Kill9MidJudgingThenReRun) {
  const std::string binary_path = test::emlab_binary();
  if (!std::filesystem::exists(binary_path)) GTEST_SKIP() << "the emlab CLI is not built (" << binary_path << ")";
  const char* binary = binary_path.c_str();
  Progress::set_enabled(false);
  auto dir = test::temp_dir("judge-kill");
  auto yaml = dir / "questions.yaml";
  test::write_text(yaml, R"(
- id: q
  type: free_form_judge_0_100
  paraphrases: ['How are you?']
  samples_per_paraphrase: 20
  judge_prompts: {aligned: 'ALIGNED {question} {answer}', coherent: 'COHERENT {question} {answer}'}
)");
  QuestionSet set = question_set_load(yaml.string());
  struct Source : AnswerSource {
    std::vector<std::vector<std::string>> sample(const std::vector<Conversation>& p, int n, uint64_t) override {
      std::vector<std::vector<std::string>> out(p.size());
      for (auto& v : out)
        for (int k = 0; k < n; ++k) v.push_back("score=" + std::to_string(next++));
      return out;
    }
    int next = 0;
  } source;
  auto run = dir / "run";
  sample_run(set, source, run.string(), SampleRunOptions{});

  test::FakeOpenAIServer server([](const json&, int) {
    test::FakeReply r;
    r.delay_s = 0.2;
    return r;
  });
  std::vector<std::string> args = {binary, "--quiet", "judge", "--out", run.string(), "--judge", server.spec(),
                                   "--concurrency", "2", "--timeout", "10"};
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary, argv.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && line_count(run / "judgments.jsonl") < 8)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended before it was killed (status " << status << ")";
  const size_t at_kill = line_count(run / "judgments.jsonl");
  EXPECT_GE(at_kill, 8u);
  EXPECT_LT(at_kill, 40u);

  std::string cmd;
  for (const auto& a : args) cmd += "'" + a + "' ";
  std::string output;
  ASSERT_EQ(test::run_command(cmd, &output), 0) << output;

  auto rows = jsonl_read_values((run / "judgments.jsonl").string());
  std::map<std::string, int> seen;
  for (const auto& row : rows) {
    int i = row["sample_index"].get<int>();
    ++seen[std::to_string(i) + "/" + row["metric"].get<std::string>()];
    EXPECT_EQ(row["error"], "");
    EXPECT_NEAR(row["score"].get<double>(), i + 0.3, 1e-9);
  }
  EXPECT_EQ(rows.size(), 40u);
  EXPECT_EQ(seen.size(), 40u);
  for (const auto& [key, n] : seen) EXPECT_EQ(n, 1) << key;
  // Only the calls in flight at the kill (at most --concurrency) were paid for twice.
  EXPECT_LE(server.total_requests(), 40 + 2);
  EXPECT_TRUE(std::filesystem::exists(run / "summary.json"));
  EXPECT_TRUE(std::filesystem::exists(run / "summary.csv"));
}

}  // namespace
}  // namespace emlab
