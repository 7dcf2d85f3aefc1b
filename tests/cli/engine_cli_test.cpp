// The engine's subcommands end to end, as a user runs them: exit codes and one-line errors.
#include <gtest/gtest.h>

#include <filesystem>

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
