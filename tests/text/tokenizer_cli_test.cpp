// The CLI: `emlab tokenizer train`, then `emlab tokenize` (encode and --decode) on its output.
#include <gtest/gtest.h>

#include "emlab/bpe_trainer.h"
#include "emlab/tokenizer.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;

std::string corpus() {
  std::string s;
  for (int i = 0; i < 800; ++i)
    s += "The model writes " + std::to_string(i * 37 % 1000) + " lines of code.\n<|im_start|>user\nhello<|im_end|>\n";
  return s;
}

TEST(TokenizerCli, TrainTokenizeDecode) {
  std::string bin;
  try {
    bin = test::emlab_binary();
  } catch (const std::exception&) {
    GTEST_SKIP() << "EMLAB_BINARY not set";
  }
  if (!fs::exists(bin)) GTEST_SKIP() << "the CLI is not built: " << bin;
  fs::path dir = test::temp_dir("bpe-cli");
  test::write_text(dir / "corpus.txt", corpus());
  std::string out;
  ASSERT_EQ(test::run_command(bin + " --quiet tokenizer train --input " + (dir / "corpus.txt").string() +
                                  " --vocab-size 400 --out " + (dir / "tok").string(), &out), 0) << out;
  // The same training through the library writes the same bytes.
  BpeTrainOptions o;
  o.vocab_size = 400;
  o.progress = false;
  BpeTrainer trainer(o);
  trainer.add_text(corpus());
  trainer.train();
  trainer.save((dir / "lib").string());
  EXPECT_EQ(test::read_text(dir / "tok/tokenizer.json"), test::read_text(dir / "lib/tokenizer.json"));
  EXPECT_EQ(test::read_text(dir / "tok/tokenizer_config.json"), test::read_text(dir / "lib/tokenizer_config.json"));
  auto tok = Tokenizer::load((dir / "tok").string());
  EXPECT_GT(tok->vocab_size(), 300);  // the corpus is repetitive: merges run out before 400

  ASSERT_EQ(test::run_command(bin + " tokenize --tokenizer " + (dir / "tok").string() + " --text 'The model<|im_end|>'", &out), 0) << out;
  std::string expected;
  for (auto id : tok->encode("The model<|im_end|>")) expected += (expected.empty() ? "" : " ") + std::to_string(id);
  EXPECT_EQ(out, expected + "\n");
  ASSERT_EQ(test::run_command(bin + " tokenize --tokenizer " + (dir / "tok").string() + " --decode '" + expected + "'", &out), 0);
  EXPECT_EQ(out, "The model<|im_end|>");
  EXPECT_EQ(test::run_command(bin + " tokenize --tokenizer " + (dir / "tok").string() + " --decode '1 x'", &out), 2) << out;
  EXPECT_NE(out.find("'x' is not a token id"), std::string::npos) << out;
}

}  // namespace
}  // namespace emlab
