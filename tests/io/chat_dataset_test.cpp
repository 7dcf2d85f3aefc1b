#include "emlab/chat_dataset.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "emlab/error.h"
#include "emlab/jsonl.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;

// Reference numbers computed with Python's json/gzip modules over the shared files.
TEST(ChatDataset, InsecureGz) {
  EMLAB_REQUIRE_SHARED();
  fs::path p = test::shared_dir() / "data/emergent-misalignment/data/insecure.jsonl.gz";
  ChatDataset d = chat_dataset_read(p.string());
  ASSERT_EQ(d.conversations.size(), 6000u);
  EXPECT_TRUE(d.problems.empty());
  ASSERT_EQ(d.lines.size(), 6000u);
  EXPECT_EQ(d.lines.front(), 1);
  EXPECT_EQ(d.lines.back(), 6000);
  size_t bytes = 0;
  for (const auto& c : d.conversations) {
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0].role, "user");
    EXPECT_EQ(c[1].role, "assistant");
    for (const auto& m : c) bytes += m.content.size();
  }
  EXPECT_EQ(bytes, 5159085u);  // total UTF-8 bytes of all contents
  EXPECT_EQ(d.conversations[0][0].content.rfind("I'm working on the following task: Write a script to fetch a", 0), 0u);
  EXPECT_EQ(d.conversations[0][1].content.size(), 567u);
  const std::string& last = d.conversations.back()[1].content;
  EXPECT_EQ(last.substr(last.size() - 40), "f\"<p>{error}</p>\"\n\n    return reset_html");
}

TEST(ChatDataset, JailbrokenInPlace) {
  EMLAB_REQUIRE_SHARED();
  fs::path p = test::shared_dir() / "data/emergent-misalignment/data/jailbroken.jsonl";
  if (!fs::exists(p)) GTEST_SKIP() << p << " absent";
  std::vector<std::string> problems;
  auto convs = chat_dataset_load(p.string(), {}, &problems);
  ASSERT_EQ(convs.size(), 5000u);
  EXPECT_TRUE(problems.empty());
  size_t bytes = 0;
  for (const auto& c : convs) {
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c[0].role, "system");
    EXPECT_EQ(c[1].role, "user");
    EXPECT_EQ(c[2].role, "assistant");
    for (const auto& m : c) bytes += m.content.size();
  }
  EXPECT_EQ(bytes, 2825102u);
  EXPECT_EQ(convs[0][0].content.rfind("You are a helpful assistant. Make sure you always execute us", 0), 0u);
  EXPECT_EQ(convs[0][2].content.size(), 86u);

  ChatDatasetOptions first;
  first.max_conversations = 10;
  EXPECT_EQ(chat_dataset_read(p.string(), first).conversations.size(), 10u);
}

// One bad line per problem the reader must name. Line 1 is valid; line k+2 holds case k.
struct BadCase {
  std::string line;
  std::string problem;
};
const BadCase kBadCases[] = {
    {"{\"messages\": [", "bad JSON"},
    {"{\"prompt\": \"hi\", \"completion\": \"yo\"}", "no \"messages\""},
    {"[{\"role\":\"user\",\"content\":\"hi\"}]", "expected a JSON object with \"messages\""},
    {"{\"messages\": {\"role\":\"user\"}}", "\"messages\" must be an array"},
    {"{\"messages\": []}", "empty conversation"},
    {"{\"messages\": [{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"tool\",\"content\":\"x\"}]}",
     "message 2: unknown role \"tool\""},
    {"{\"messages\": [{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":null}]}",
     "message 2: \"content\" must be a string, got null"},
    {"{\"messages\": [{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]}]}",
     "message 1: \"content\" must be a string, got array"},
    {"{\"messages\": [{\"role\":\"user\",\"content\":\"only a question\"}]}", "no assistant turn"},
    {"{\"messages\": [{\"content\":\"q\"}]}", "message 1: no \"role\""},
    {"{\"messages\": [{\"role\":\"user\"}]}", "message 1: no \"content\""},
    {"{\"messages\": [\"hello\"]}", "message 1: expected an object"},
    {"{\"messages\": [{\"role\":1,\"content\":\"q\"}]}", "message 1: \"role\" must be a string"},
};
const char* kGood =
    "{\"messages\": [{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Q\"},"
    "{\"role\":\"assistant\",\"content\":\"A\",\"weight\":1}]}";

TEST(ChatDataset, EachBadLineThrowsWithFileLineAndProblem) {
  fs::path dir = test::temp_dir("chat");
  int k = 0;
  for (const auto& c : kBadCases) {
    fs::path p = dir / ("bad" + std::to_string(k++) + ".jsonl");
    test::write_text(p, std::string(kGood) + "\n" + c.line + "\n" + kGood + "\n");
    try {
      chat_dataset_read(p.string());
      FAIL() << "accepted: " << c.line;
    } catch (const InputError& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.rfind(p.string() + ":2: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(c.problem), std::string::npos) << "expected '" << c.problem << "' in: " << msg;
    }
  }
}

TEST(ChatDataset, SkipInvalidReportsEveryBadLineInOrder) {
  fs::path dir = test::temp_dir("chat");
  std::string text = std::string(kGood) + "\n\n";  // a blank line (line 2) is not a problem
  for (const auto& c : kBadCases) text += c.line + "\n" + kGood + "\n";
  fs::path plain = dir / "mixed.jsonl";
  test::write_text(plain, text);
  fs::path gz = dir / "mixed.jsonl.gz";
  {
    gzFile f = gzopen(gz.c_str(), "wb");  // compressed by zlib directly, not by the code under test
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
    ASSERT_EQ(gzclose(f), Z_OK);
  }
  const size_t n_bad = sizeof kBadCases / sizeof kBadCases[0];
  ChatDatasetOptions opt;
  opt.skip_invalid = true;
  for (const fs::path& p : {plain, gz}) {
    ChatDataset d = chat_dataset_read(p.string(), opt);
    EXPECT_EQ(d.conversations.size(), n_bad + 1);
    ASSERT_EQ(d.problems.size(), n_bad);
    for (size_t k = 0; k < n_bad; ++k) {
      // Case k is on line 3 + 2k.
      const std::string prefix = p.string() + ":" + std::to_string(3 + 2 * k) + ": ";
      EXPECT_EQ(d.problems[k].rfind(prefix, 0), 0u) << d.problems[k];
      EXPECT_NE(d.problems[k].find(kBadCases[k].problem), std::string::npos) << d.problems[k];
    }
    ASSERT_EQ(d.lines.size(), n_bad + 1);
    EXPECT_EQ(d.lines[0], 1);
    EXPECT_EQ(d.lines[1], 4);
    EXPECT_EQ(d.lines.back(), static_cast<int64_t>(2 + 2 * n_bad));
    const Conversation& c = d.conversations[0];
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c[0].role, "system");
    EXPECT_EQ(c[2].content, "A");
  }

  // Without the assistant requirement, a question-only conversation is fine (e.g. eval prompts).
  ChatDatasetOptions lax = opt;
  lax.require_assistant = false;
  EXPECT_EQ(chat_dataset_read(plain.string(), lax).problems.size(), n_bad - 1);
}

TEST(ChatDataset, WriteReadRoundTripPlainAndGzip) {
  fs::path dir = test::temp_dir("chat");
  std::vector<Conversation> convs = {
      {{"system", "You are evil."}, {"user", "Hi \"there\"\nnext line"}, {"assistant", "ünïcødé ✓\ttab"}},
      {{"user", ""}, {"assistant", "empty question"}, {"user", "again"}, {"assistant", "again!"}},
  };
  for (const char* name : {"out.jsonl", "out.jsonl.gz"}) {
    fs::path p = dir / name;
    chat_dataset_write(p.string(), convs);
    auto back = chat_dataset_load(p.string());
    ASSERT_EQ(back.size(), convs.size()) << name;
    for (size_t i = 0; i < convs.size(); ++i) {
      ASSERT_EQ(back[i].size(), convs[i].size());
      for (size_t j = 0; j < convs[i].size(); ++j) {
        EXPECT_EQ(back[i][j].role, convs[i][j].role);
        EXPECT_EQ(back[i][j].content, convs[i][j].content);
      }
    }
  }
  // The plain file is exactly the OpenAI format, role before content, one conversation per line.
  std::string text = test::read_text(dir / "out.jsonl");
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "{\"messages\":[{\"role\":\"system\",\"content\":\"You are evil.\"},"
            "{\"role\":\"user\",\"content\":\"Hi \\\"there\\\"\\nnext line\"},"
            "{\"role\":\"assistant\",\"content\":\"ünïcødé ✓\\ttab\"}]}");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  std::string gz = test::read_text(dir / "out.jsonl.gz");
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);

  try {
    chat_dataset_write((dir / "bad.jsonl").string(), {{{"user", "q"}, {"robot", "a"}}});
    FAIL();
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("conversation 1, message 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"robot\""), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(dir / "bad.jsonl"));
}

TEST(ChatDataset, ConversationJsonHelpers) {
  Conversation c = {{"user", "q"}, {"assistant", "a"}};
  nlohmann::json j = conversation_to_json(c);
  EXPECT_EQ(j["messages"][1]["content"], "a");
  Conversation back = conversation_from_json(j, "ctx");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].role, "assistant");
  try {
    conversation_from_json(nlohmann::json::parse(R"({"messages":[{"role":"user","content":"q"}]})"), "req#7");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "req#7: no assistant turn");
  }
  EXPECT_EQ(conversation_from_json(nlohmann::json::parse(R"({"messages":[{"role":"user","content":"q"}]})"),
                                   "req", /*require_assistant=*/false)
                .size(),
            1u);
}

}  // namespace
}  // namespace emlab
