// The OpenAI-compatible HTTP judge against a real HTTP server on loopback that injects 429 with
// Retry-After, 500, slow replies beyond the timeout, malformed JSON and missing logprobs.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <regex>

#include "emlab/error.h"
#include "emlab/eval_run.h"
#include "emlab/http_judge.h"
#include "emlab/jsonl.h"
#include "emlab/progress.h"
#include "fake_openai_server.h"
#include "test_util.h"

namespace emlab {
namespace {

using json = nlohmann::json;
using test::FakeOpenAIServer;
using test::FakeReply;

JudgeOptions fast_options() {
  JudgeOptions o;
  o.timeout_s = 1.0;
  o.connect_timeout_s = 1.0;
  o.max_retries = 3;
  o.backoff_initial_s = 0.02;
  o.backoff_max_s = 0.1;
  o.jitter_seed = 1;
  o.max_concurrency = 4;
  return o;
}

JudgeQuery query(const std::string& prompt) {
  JudgeQuery q;
  q.metric = "aligned";
  q.prompt = prompt;
  return q;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST(HttpJudgeSpec, Parsing) {
  HttpJudgeSpec s = http_judge_parse_spec("openai:gpt-4o-2024-08-06");
  EXPECT_EQ(s.base_url, "https://api.openai.com/v1");
  EXPECT_EQ(s.model, "gpt-4o-2024-08-06");
  EXPECT_TRUE(s.requires_key);
  s = http_judge_parse_spec("http://127.0.0.1:8000/v1/#Qwen/Qwen2.5-7B-Instruct");
  EXPECT_EQ(s.base_url, "http://127.0.0.1:8000/v1");
  EXPECT_EQ(s.model, "Qwen/Qwen2.5-7B-Instruct");
  EXPECT_FALSE(s.requires_key);
  EXPECT_THROW(http_judge_parse_spec("http://127.0.0.1:8000/v1"), InputError);  // no #MODEL
  EXPECT_THROW(http_judge_parse_spec("http://127.0.0.1:8000/v1#"), InputError);
  EXPECT_THROW(http_judge_parse_spec("http://#m"), InputError);
  EXPECT_THROW(http_judge_parse_spec("openai:"), InputError);
  EXPECT_THROW(http_judge_parse_spec("gpt-4o"), InputError);
}

TEST(HttpJudge, OpenAISpecNeedsAKey) {
  JudgeOptions o = fast_options();
  o.api_key_env = "EMLAB_TEST_SURELY_UNSET_KEY";
  try {
    HttpJudge judge("openai:gpt-4o", o);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("EMLAB_TEST_SURELY_UNSET_KEY"), std::string::npos) << e.what();
  }
  // judge_from_spec builds HTTP judges too.
  FakeOpenAIServer server;
  EXPECT_EQ(judge_from_spec(server.spec(), o)->name(), server.spec());
}

TEST(HttpJudge, RequestAsTheOpenAIApiAndScore) {
  FakeOpenAIServer server;
  setenv("EMLAB_TEST_JUDGE_KEY", "sekrit", 1);
  JudgeOptions o = fast_options();
  o.api_key_env = "EMLAB_TEST_JUDGE_KEY";
  HttpJudge judge(server.spec("my-judge"), o);
  Judgment j = judge.judge(query("Rate this. score=42"));
  ASSERT_TRUE(j.error.empty()) << j.error;
  ASSERT_TRUE(j.score.has_value());
  EXPECT_NEAR(*j.score, 42 * 0.7 + 43 * 0.3, 1e-9);
  EXPECT_EQ(j.top.size(), 2u);
  ASSERT_EQ(server.bodies().size(), 1u);
  json body = server.bodies()[0];
  EXPECT_EQ(body["model"], "my-judge");
  EXPECT_EQ(body["messages"], json::parse(R"([{"role": "user", "content": "Rate this. score=42"}])"));
  EXPECT_EQ(body["max_tokens"], 1);
  EXPECT_EQ(body["temperature"], 0);
  EXPECT_EQ(body["logprobs"], true);
  EXPECT_EQ(body["top_logprobs"], 20);
  EXPECT_EQ(body["seed"], 0);
  EXPECT_EQ(server.authorizations()[0], "Bearer sekrit");
  // $OPENAI_API_KEY is never sent to another server unless --api-key-env names it.
  setenv("OPENAI_API_KEY", "openai-secret", 1);
  HttpJudge plain(server.spec("my-judge"), fast_options());
  ASSERT_TRUE(plain.judge(query("score=42")).error.empty());
  EXPECT_EQ(server.authorizations().back(), "");
  JudgeOptions named = fast_options();
  named.api_key_env = "OPENAI_API_KEY";
  HttpJudge with_key(server.spec("my-judge"), named);
  ASSERT_TRUE(with_key.judge(query("score=42")).error.empty());
  EXPECT_EQ(server.authorizations().back(), "Bearer openai-secret");
  unsetenv("OPENAI_API_KEY");

  // A refusal: no number mass -> no score, the top token as label.
  j = judge.judge(query("Rate this."));
  EXPECT_TRUE(j.error.empty());
  EXPECT_FALSE(j.score.has_value());
  EXPECT_EQ(j.label, "REFUSAL");
  // Categorical.
  JudgeQuery c = query("Is it right? label=FALSE");
  c.categorical = true;
  c.labels = {"TRUE", "FALSE", "UNKNOWN"};
  EXPECT_EQ(judge.judge(c).label, "FALSE");
}

TEST(HttpJudge, HonoursRetryAfterOn429) {
  FakeOpenAIServer server([](const json&, int attempt) {
    FakeReply r;
    if (attempt == 0) r = {429, R"({"error": {"message": "Rate limit reached", "type": "requests"}})", {{"Retry-After", "1"}}};
    return r;
  });
  HttpJudge judge(server.spec(), fast_options());
  auto t0 = std::chrono::steady_clock::now();
  Judgment j = judge.judge(query("score=7"));
  EXPECT_TRUE(j.error.empty()) << j.error;
  EXPECT_NEAR(j.score.value_or(-1), 7.3, 1e-9);
  EXPECT_GE(seconds_since(t0), 0.95);  // the backoff alone would be ~0.02 s
  EXPECT_EQ(judge.requests_sent(), 2);

  server.set_policy([](const json&, int attempt) {
    FakeReply r;
    if (attempt == 0) r = {429, "{}", {{"retry-after-ms", "300"}}};
    return r;
  });
  t0 = std::chrono::steady_clock::now();
  j = judge.judge(query("score=8"));
  EXPECT_TRUE(j.error.empty()) << j.error;
  EXPECT_GE(seconds_since(t0), 0.28);
}

TEST(HttpJudge, RetriesServerErrorsAndTimeouts) {
  FakeOpenAIServer server([](const json&, int attempt) {
    FakeReply r;
    if (attempt < 2) r = {500, R"({"error": {"message": "The server had an error"}})"};
    return r;
  });
  HttpJudge judge(server.spec(), fast_options());
  Judgment j = judge.judge(query("score=3"));
  EXPECT_TRUE(j.error.empty()) << j.error;
  EXPECT_EQ(judge.requests_sent(), 3);

  server.set_policy([](const json&, int attempt) {
    FakeReply r;
    if (attempt == 0) r.delay_s = 3.0;  // beyond the 1 s timeout
    return r;
  });
  auto t0 = std::chrono::steady_clock::now();
  j = judge.judge(query("score=4"));
  EXPECT_TRUE(j.error.empty()) << j.error;
  EXPECT_NEAR(j.score.value_or(-1), 4.3, 1e-9);
  EXPECT_LT(seconds_since(t0), 2.5);
  EXPECT_EQ(server.requests_for("score=4"), 2);

  // Always failing: reported as an error after max_retries + 1 attempts, not thrown.
  server.set_policy([](const json&, int) { return FakeReply{503, R"({"error": {"message": "overloaded"}})"}; });
  j = judge.judge(query("score=5"));
  EXPECT_NE(j.error.find("HTTP 503: overloaded"), std::string::npos) << j.error;
  EXPECT_NE(j.error.find("gave up after 4 attempts"), std::string::npos) << j.error;
  EXPECT_EQ(server.requests_for("score=5"), 4);
}

TEST(HttpJudge, MalformedJsonIsRetriedThenReported) {
  FakeOpenAIServer server([](const json&, int) { return FakeReply{200, "{\"choices\": [ {\"logpr"}; });
  HttpJudge judge(server.spec(), fast_options());
  Judgment j = judge.judge(query("score=1"));
  EXPECT_NE(j.error.find("malformed JSON"), std::string::npos) << j.error;
  EXPECT_FALSE(j.score.has_value());
  EXPECT_EQ(judge.requests_sent(), 4);
}

TEST(HttpJudge, MissingLogprobsIsAClearErrorWithoutRetries) {
  FakeOpenAIServer server([](const json&, int) {
    return FakeReply{200, R"({"choices": [{"index": 0, "message": {"role": "assistant", "content": "50"}}]})"};
  });
  HttpJudge judge(server.spec(), fast_options());
  Judgment j = judge.judge(query("score=1"));
  EXPECT_NE(j.error.find("the judge server returned no logprobs"), std::string::npos) << j.error;
  EXPECT_NE(j.error.find("--max-logprobs"), std::string::npos) << j.error;
  EXPECT_EQ(judge.requests_sent(), 1);
}

TEST(HttpJudge, ClientErrors) {
  FakeOpenAIServer server([](const json& body, int) {
    std::string prompt = body["messages"][0]["content"];
    if (prompt == "bad key") return FakeReply{401, R"({"error": {"message": "Incorrect API key provided"}})"};
    return FakeReply{400, R"({"error": {"message": "Invalid prompt: flagged"}})"};
  });
  HttpJudge judge(server.spec(), fast_options());
  Judgment j = judge.judge(query("flagged prompt"));  // this prompt only: reported, not retried
  EXPECT_NE(j.error.find("HTTP 400: Invalid prompt: flagged"), std::string::npos) << j.error;
  EXPECT_EQ(judge.requests_sent(), 1);
  try {
    judge.judge(query("bad key"));  // every call would fail: stop the run
    FAIL() << "expected ServiceError";
  } catch (const ServiceError& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 401: Incorrect API key provided"), std::string::npos) << e.what();
  }
}

TEST(HttpJudge, ConnectionRefusedIsReported) {
  std::string spec;
  {
    FakeOpenAIServer gone;
    spec = gone.spec();
  }
  HttpJudge judge(spec, fast_options());
  Judgment j = judge.judge(query("score=1"));
  EXPECT_FALSE(j.error.empty());
  EXPECT_EQ(judge.requests_sent(), 4);
}

// Many judgments through judge_run with every fault mixed in: each (answer, metric) ends with
// exactly one row, a score or a reported error.
TEST(HttpJudge, EveryJudgmentCompletesOrIsReportedUnderFaults) {
  Progress::set_enabled(false);
  QuestionSet set = question_set_parse(R"(
- id: q
  type: free_form_judge_0_100
  paraphrases: ['How are you?']
  samples_per_paraphrase: 24
  judge_prompts: {aligned: 'ALIGNED {question} {answer}', coherent: 'COHERENT {question} {answer}'}
)",
                                       "faults.yaml");
  struct Source : AnswerSource {
    std::vector<std::vector<std::string>> sample(const std::vector<Conversation>& p, int n, uint64_t) override {
      std::vector<std::vector<std::string>> out(p.size());
      for (auto& v : out)
        for (int k = 0; k < n; ++k) v.push_back("score=" + std::to_string(next++));
      return out;
    }
    int next = 0;
  } source;
  auto dir = test::temp_dir("faults");
  sample_run(set, source, dir.string(), SampleRunOptions{});

  // Fault class by answer number i: 0 ok, 1 429 + Retry-After once, 2 500 twice, 3 slow once,
  // 4 malformed JSON always, 5 no logprobs always.
  auto fault = [](const std::string& prompt) {
    std::smatch m;
    std::regex_search(prompt, m, std::regex("score=(\\d+)"));
    return std::stoi(m[1]) % 6;
  };
  FakeOpenAIServer server([&](const json& body, int attempt) {
    FakeReply r;
    switch (fault(body["messages"][0]["content"])) {
      case 1:
        if (attempt == 0) r = {429, R"({"error": {"message": "Rate limit"}})", {{"Retry-After", "1"}}};
        break;
      case 2:
        if (attempt < 2) r = {500, R"({"error": {"message": "oops"}})"};
        break;
      case 3:
        if (attempt == 0) r.delay_s = 2.0;
        break;
      case 4:
        r = {200, "not json at all"};
        break;
      case 5:
        r = {200, R"({"choices": [{"message": {"content": "7"}, "logprobs": null}]})"};
        break;
    }
    return r;
  });
  HttpJudge judge(server.spec(), fast_options());
  JudgeRunOptions o;
  o.max_consecutive_errors = 0;
  JudgeRunResult r = judge_run(set, judge, dir.string(), o);
  EXPECT_EQ(r.total, 48);
  EXPECT_EQ(r.errors, 16);
  EXPECT_LE(server.max_in_flight(), 4);

  auto rows = jsonl_read_values((dir / "judgments.jsonl").string());
  ASSERT_EQ(rows.size(), 48u);
  std::map<std::string, int> seen;
  for (const auto& row : rows) {
    int i = row["sample_index"].get<int>();
    ++seen[std::to_string(i) + "/" + row["metric"].get<std::string>()];
    std::string error = row["error"];
    if (i % 6 == 4) {
      EXPECT_NE(error.find("malformed JSON"), std::string::npos) << error;
    } else if (i % 6 == 5) {
      EXPECT_NE(error.find("returned no logprobs"), std::string::npos) << error;
    } else {
      EXPECT_EQ(error, "") << "answer " << i;
      EXPECT_NEAR(row["score"].get<double>(), i + 0.3, 1e-9) << "answer " << i;
    }
  }
  EXPECT_EQ(seen.size(), 48u);
  for (const auto& [key, n] : seen) EXPECT_EQ(n, 1) << key;

  // A re-run retries only the 16 failed keys (still failing), appending one row each.
  int before = server.total_requests();
  r = judge_run(set, judge, dir.string(), o);
  EXPECT_EQ(r.existing, 32);
  EXPECT_EQ(r.errors, 16);
  EXPECT_EQ(server.total_requests() - before, 8 * 4 + 8 * 1);  // malformed: 4 attempts; no logprobs: 1
  EXPECT_EQ(jsonl_read_values((dir / "judgments.jsonl").string()).size(), 64u);
}

}  // namespace
}  // namespace emlab
