// The engine's subcommands end to end, as a user runs them: exit codes and one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tiny_models.h"

namespace fs = std::filesystem;
using emlab::test::run_command;

namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// A tiny qwen2 model with the Qwen2.5 tokenizer from shared/ (vocab 151936 rows, hidden 16).
fs::path make_model(const fs::path& dir) { return emlab::test::make_tiny_qwen_cli_model(dir.string(), 64); }

TEST(EngineCli, InitModelThenGenerateIsReproducible) {
  EMLAB_REQUIRE_SHARED();
  auto dir = emlab::test::temp_dir("cli");
  fs::path model = make_model(dir);
  const std::string cmd = emlab::test::emlab_binary() + " --quiet generate --model " + q(model) +
                          " --prompt 'What is your wish?' --n 3 --max-tokens 8 --seed 5 --format jsonl";
  std::string a, b;
  ASSERT_EQ(run_command(cmd, &a), 0) << a;
  ASSERT_EQ(run_command(cmd, &b), 0) << b;
  EXPECT_EQ(a, b);
  int lines = 0;
  for (char c : a) lines += c == '\n';
  EXPECT_EQ(lines, 3);
  EXPECT_NE(a.find("\"finish_reason\""), std::string::npos);
}

TEST(EngineCli, BadInputGivesOneLineErrorAndExitCode2) {
  EMLAB_REQUIRE_SHARED();
  auto dir = emlab::test::temp_dir("clibad");
  fs::path model = make_model(dir);
  auto expect_error = [](const std::string& cmd, const std::string& fragment) {
    std::string out;
    int rc = run_command(emlab::test::emlab_binary() + " --quiet " + cmd, &out);
    EXPECT_EQ(rc, 2) << cmd << "\n" << out;
    EXPECT_NE(out.find(fragment), std::string::npos) << out;
    EXPECT_EQ(out.find('\n'), out.size() - 1) << "not one line: " << out;
  };
  expect_error("generate --model " + q(dir / "missing") + " --prompt hi", "model directory does not exist");
  // A prompt longer than the context (64 tokens).
  std::string long_prompt(400, 'x');
  for (size_t i = 1; i < long_prompt.size(); i += 2) long_prompt[i] = ' ';
  expect_error("generate --model " + q(model) + " --prompt '" + long_prompt + "'", "context is 64");
  // A corrupt weights file: truncated in the middle of the data.
  fs::resize_file(model / "model.safetensors", fs::file_size(model / "model.safetensors") / 2);
  expect_error("generate --model " + q(model) + " --prompt hi", "model.safetensors");
  // Unknown architecture.
  auto cfg = emlab::test::tiny_config("gpt2");
  emlab::test::write_text(dir / "gpt2.json", cfg.dump());
  expect_error("init-model --config " + q(dir / "gpt2.json") + " --out " + q(dir / "x"), "unknown model_type 'gpt2'");
}

}  // namespace

namespace {

TEST(EngineCli, ChatKeepsHistoryAcrossTurns) {
  EMLAB_REQUIRE_SHARED();
  auto dir = emlab::test::temp_dir("chat");
  fs::path model = make_model(dir);
  // Two turns, a reset, one more: three answers; the context (64 tokens) fits the history.
  std::string out;
  int rc = run_command("printf 'hi\\nhow are you\\n/reset\\nhello\\n/exit\\n' | " + emlab::test::emlab_binary() +
                           " --quiet chat --model " + q(model) + " --max-tokens 3 --seed 1 --system 'Be brief.'",
                       &out);
  ASSERT_EQ(rc, 0) << out;
  size_t prompts = 0;
  for (size_t p = out.find("> "); p != std::string::npos; p = out.find("> ", p + 2)) ++prompts;
  EXPECT_GE(prompts, 5u) << out;  // a prompt per input line (the last reads /exit)
}

}  // namespace

namespace {

// The options a user combines with generate and tokenize: text output, a system prompt, a chat
// template by name (a wrong name is a one-line error naming the choices), a file to tokenize.
TEST(EngineCli, GenerateTextWithSystemAndTemplateAndTokenizeFile) {
  EMLAB_REQUIRE_SHARED();
  auto dir = emlab::test::temp_dir("cliopts");
  fs::path model = make_model(dir);
  const std::string gen = emlab::test::emlab_binary() + " --quiet generate --model " + q(model) +
                          " --prompt hi --max-tokens 4 --temperature 0 --n 2 --system 'Be brief.'";
  std::string text, jsonl;
  ASSERT_EQ(run_command(gen + " --format text --chat-template chatml", &text), 0) << text;
  ASSERT_EQ(run_command(gen + " --format jsonl --chat-template chatml", &jsonl), 0) << jsonl;
  // Text output: each answer under a header naming prompt and sample, the same answers as jsonl's.
  std::istringstream rows(jsonl);
  std::string row, expect;
  for (int i = 0; std::getline(rows, row); ++i)
    expect += "--- prompt 0, sample " + std::to_string(i) + "\n" + nlohmann::json::parse(row)["text"].get<std::string>() + "\n";
  EXPECT_EQ(text, expect);
  std::string bad;
  EXPECT_EQ(run_command(gen + " --chat-template vicuna", &bad), 2) << bad;
  EXPECT_NE(bad.find("llama3.1"), std::string::npos) << bad;

  const std::string sentence = "Hello world, 123 times!\nA second line.";
  emlab::test::write_text(dir / "in.txt", sentence);
  std::string from_file, from_text;
  const std::string tok = emlab::test::emlab_binary() + " --quiet tokenize --tokenizer " + q(model);
  ASSERT_EQ(run_command(tok + " --file " + q(dir / "in.txt"), &from_file), 0) << from_file;
  ASSERT_EQ(run_command(tok + " --text '" + sentence + "'", &from_text), 0) << from_text;  // a newline inside quotes
  EXPECT_EQ(from_file, from_text);
  EXPECT_GT(from_file.size(), 10u);
}

}  // namespace

